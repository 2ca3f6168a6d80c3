"""The rest of element-wise maths: trigonometry, exp/log relatives, rounding,
erf, atan2, more activations, and the triangles tril/triu.

Each op is compared with PyTorch on random inputs inside its domain, value *and* gradient
of a random upstream gradient, in float32 and in float64, and its backward against finite
differences (float64). Then the points where the maths has a choice to make: derivatives
at kinks and jumps (torch's 0 for floor and sign, the slope at 0 for leaky_relu and elu,
0 at hardtanh's bounds), atan2 at signed zeros, the edges of asin/acosh/atanh's domains,
and integer inputs (float32 results, or integer ones for the rounding family).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import sparkgrad as sg
import sparkgrad.nn.functional as F
from sparkgrad.errors import GradError, ShapeError

FAST = settings(max_examples=12, deadline=None)
SHAPES = array_shapes(min_dims=0, max_dims=3, max_side=4)
SEEDS = st.integers(0, 2**32 - 1)
TF = torch.nn.functional

UNARY = {
    # name: (sparkgrad fn, torch fn, input domain)
    "sin": (sg.sin, torch.sin, "any"),
    "cos": (sg.cos, torch.cos, "any"),
    "tan": (sg.tan, torch.tan, "tan"),
    "asin": (sg.asin, torch.asin, "unit"),
    "acos": (sg.acos, torch.acos, "unit"),
    "atan": (sg.atan, torch.atan, "any"),
    "sinh": (sg.sinh, torch.sinh, "any"),
    "cosh": (sg.cosh, torch.cosh, "any"),
    "asinh": (sg.asinh, torch.asinh, "any"),
    "acosh": (sg.acosh, torch.acosh, "above_one"),
    "atanh": (sg.atanh, torch.atanh, "unit"),
    "exp2": (sg.exp2, torch.exp2, "any"),
    "expm1": (sg.expm1, torch.expm1, "any"),
    "log2": (sg.log2, torch.log2, "positive"),
    "log10": (sg.log10, torch.log10, "positive"),
    "log1p": (sg.log1p, torch.log1p, "above_minus_one"),
    "rsqrt": (sg.rsqrt, torch.rsqrt, "positive"),
    "reciprocal": (sg.reciprocal, torch.reciprocal, "nonzero"),
    "square": (sg.square, torch.square, "any"),
    "erf": (sg.erf, torch.erf, "any"),
    "sign": (sg.sign, torch.sign, "nonzero"),
    "floor": (sg.floor, torch.floor, "fractional"),
    "ceil": (sg.ceil, torch.ceil, "fractional"),
    "round": (sg.round, torch.round, "off_half"),
    "round_decimals": (
        lambda x: sg.round(x, decimals=1),
        lambda x: torch.round(x, decimals=1),
        "any",
    ),
    "trunc": (sg.trunc, torch.trunc, "fractional"),
    "softplus": (F.softplus, TF.softplus, "any"),
    "softplus_beta_threshold": (
        lambda x: F.softplus(x, beta=2.0, threshold=3.0),
        lambda x: TF.softplus(x, beta=2.0, threshold=3.0),
        "off_threshold",
    ),
    "silu": (F.silu, TF.silu, "any"),
    "leaky_relu": (F.leaky_relu, TF.leaky_relu, "nonzero"),
    "leaky_relu_0.2": (
        lambda x: F.leaky_relu(x, 0.2),
        lambda x: TF.leaky_relu(x, 0.2),
        "nonzero",
    ),
    "elu": (F.elu, TF.elu, "nonzero"),
    "elu_alpha": (lambda x: F.elu(x, alpha=0.7), lambda x: TF.elu(x, alpha=0.7), "nonzero"),
    "hardtanh": (F.hardtanh, TF.hardtanh, "off_unit_bounds"),
    "hardtanh_bounds": (
        lambda x: F.hardtanh(x, -0.5, 2.0),
        lambda x: TF.hardtanh(x, -0.5, 2.0),
        "off_custom_bounds",
    ),
}
STEP_FUNCTIONS = {"sign", "floor", "ceil", "round", "round_decimals", "trunc"}


def _input(shape, seed, domain, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2
    if domain == "tan":
        x = np.clip(x, -1.3, 1.3)  # away from the poles at ±π/2
    elif domain == "unit":
        x = rng.uniform(-0.95, 0.95, shape)
    elif domain == "above_one":
        x = 1.05 + np.abs(x)
    elif domain == "positive":
        x = 0.1 + np.abs(x)
    elif domain == "above_minus_one":
        x = -0.9 + np.abs(x)
    elif domain == "nonzero":  # a kink or pole at 0: finite differences need distance
        x = np.where(np.abs(x) < 0.05, 0.5, x)
    elif domain == "fractional":  # jumps at integers
        x = np.floor(x) + rng.uniform(0.1, 0.9, shape)
    elif domain == "off_half":  # round jumps at halves
        x = np.floor(x) + rng.choice([0.2, 0.3, 0.7, 0.8], shape)
    elif domain == "off_threshold":  # beta·x = 3 switches to the identity
        x = np.where(np.abs(x - 1.5) < 0.05, 1.0, x)
    elif domain == "off_unit_bounds":
        x = np.where(np.abs(np.abs(x) - 1) < 0.05, 0.0, x)
    elif domain == "off_custom_bounds":
        x = np.where((np.abs(x + 0.5) < 0.05) | (np.abs(x - 2) < 0.05), 0.0, x)
    return np.asarray(x, dtype=dtype)


# ---- random inputs: values and gradients ------------------------------------------------
@pytest.mark.parametrize("name", UNARY)
@FAST
@given(shape=SHAPES, seed=SEEDS)
def test_unary_matches_torch_float32(name, shape, seed, device, check_op):
    """Value and gradient equal torch's in float32 (rtol 1e-5; step functions: gradient 0)."""
    fn, t_fn, domain = UNARY[name]
    check_op(fn, t_fn, [_input(shape, seed, domain)], device, rtol=1e-5, atol=1e-6)


def _check_float64(fn, t_fn, x, device, assert_close):
    """check_op in float64 with a float64 upstream gradient (check_op's is float32, and
    sparkgrad's backward does not yet cast an upstream gradient to the output's dtype)."""
    s = sg.tensor(x, device=device, requires_grad=True)
    t = torch.tensor(x, requires_grad=True)
    out, t_out = fn(s), t_fn(t)
    assert_close(out, t_out, rtol=1e-12, atol=1e-14, what="forward")
    upstream = np.random.default_rng(0).standard_normal(t_out.shape)
    out.backward(sg.tensor(upstream, device=device))
    t_out.backward(torch.tensor(upstream))
    assert_close(s.grad, t.grad, rtol=1e-12, atol=1e-14, what="gradient")


@pytest.mark.parametrize("name", UNARY)
@settings(max_examples=6, deadline=None)
@given(shape=SHAPES, seed=SEEDS)
def test_unary_matches_torch_float64(name, shape, seed, device, assert_close):
    """The same in float64, to 1e-12: the formulas are torch's, not only close to them."""
    fn, t_fn, domain = UNARY[name]
    _check_float64(fn, t_fn, _input(shape, seed, domain, np.float64), device, assert_close)


@pytest.mark.parametrize("name", UNARY)
@settings(max_examples=6, deadline=None)
@given(shape=array_shapes(min_dims=0, max_dims=2, max_side=3), seed=SEEDS)
def test_unary_gradcheck(name, shape, seed, device, check_grad):
    """The analytic derivative equals central finite differences (float64)."""
    fn, _, domain = UNARY[name]
    x = _input(shape, seed, domain)
    if name == "round_decimals":  # jumps at every .x5
        x = np.round(x, 1) + 0.02
    check_grad(fn, [x], device)


def test_step_functions_have_zero_gradient_everywhere(device):
    """floor, ceil, round, trunc and sign give 0 — at their jumps too, as torch does."""
    x = np.array([-2.0, -1.5, -0.5, 0.0, 0.5, 1.0, 1.5, 2.5, 3.7], dtype=np.float32)
    for name in sorted(STEP_FUNCTIONS):
        fn, t_fn, _ = UNARY[name]
        s = sg.tensor(x, device=device, requires_grad=True)
        t = torch.tensor(x, requires_grad=True)
        fn(s).sum().backward()
        t_fn(t).sum().backward()
        np.testing.assert_array_equal(fn(s).detach().numpy(), t_fn(t).detach().numpy(), name)
        np.testing.assert_array_equal(s.grad.numpy(), t.grad.numpy(), name)
        assert not s.grad.numpy().any()


def test_round_is_half_to_even_and_decimals_match_torch(device):
    """round(0.5) = 0, round(1.5) = 2, round(2.5) = 2; decimals round the same way as torch."""
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 1.2345, 1234.5, -0.015, 2.5e-3])
    for decimals in (0, 1, 2, 3, -1, -2):
        for dtype in (np.float32, np.float64):
            got = sg.round(sg.tensor(x.astype(dtype), device=device), decimals=decimals)
            want = torch.round(torch.tensor(x.astype(dtype)), decimals=decimals)
            np.testing.assert_array_equal(got.numpy(), want.numpy(), f"decimals={decimals}")


# ---- kinks, bounds and domain edges --------------------------------------------------
@pytest.mark.parametrize(
    "name,values",
    [
        ("leaky_relu", [-1.0, 0.0, 2.0]),
        ("leaky_relu_0.2", [-1.0, 0.0, 2.0]),
        ("elu", [-1.0, 0.0, 2.0]),
        ("elu_alpha", [-1.0, 0.0, 2.0]),
        ("hardtanh", [-1.0, 1.0, -2.0, 0.5, 2.0]),
        ("hardtanh_bounds", [-0.5, 2.0, -0.6, 1.0, 2.1]),
        ("softplus_beta_threshold", [1.5, 1.5000001, 1.4999999, -30.0, 30.0]),
        ("softplus", [20.0, 20.5, -20.0, -100.0, 100.0]),
        ("asin", [-1.0, 1.0, 0.0]),
        ("acos", [-1.0, 1.0, 0.0]),
        ("acosh", [1.0, 2.0]),
        ("atanh", [-1.0, 1.0, 0.0]),
        ("rsqrt", [0.0, 4.0]),
        ("reciprocal", [0.0, -0.0, 2.0]),
        ("log1p", [-1.0, 0.0]),
    ],
)
def test_kinks_bounds_and_domain_edges_follow_torch(name, values, device, check_op):
    """At a kink the derivative is torch's choice (slope of the negative side at 0 for
    leaky_relu/elu, 0 at hardtanh's bounds); at a domain edge both give the same inf."""
    fn, t_fn, _ = UNARY[name]
    with np.errstate(divide="ignore", invalid="ignore"):
        check_op(fn, t_fn, [np.array(values, dtype=np.float32)], device)


def test_outside_the_domain_is_nan_as_torch(device, check_op):
    """asin(2), acosh(0.5), atanh(1.5), log2(-1): NaN values and NaN gradients, no error."""
    cases = [("asin", [2.0, -3.0]), ("acos", [2.0]), ("acosh", [0.5]), ("atanh", [1.5])]
    cases += [("log2", [-1.0]), ("log10", [-2.0]), ("log1p", [-2.0]), ("rsqrt", [-1.0])]
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, values in cases:
            fn, t_fn, _ = UNARY[name]
            out, _ = check_op(fn, t_fn, [np.array(values, dtype=np.float32)], device)
            assert np.isnan(out.detach().numpy()).all(), name


def test_expm1_and_log1p_keep_tiny_inputs(device, check_op):
    """expm1(1e-10) is 1e-10, not exp(1e-10) - 1 = 0: relative precision, no atol."""
    x = np.array([1e-10, -3e-8, 1e-20, 5e-4], dtype=np.float32)
    check_op(sg.expm1, torch.expm1, [x], device, rtol=1e-6, atol=0)
    check_op(sg.log1p, torch.log1p, [x], device, rtol=1e-6, atol=0)
    assert sg.expm1(sg.tensor(x, device=device)).numpy()[0] != 0


def test_softplus_and_silu_do_not_overflow(device, check_op):
    """Large |x| stays finite in value and gradient, as in torch."""
    x = np.array([-1000.0, -80.0, -20.0, 0.0, 20.0, 80.0, 1000.0], dtype=np.float32)
    with np.errstate(over="raise"):
        check_op(F.softplus, TF.softplus, [x], device)
        check_op(F.silu, TF.silu, [x], device)


# ---- atan2 ---------------------------------------------------------------------------
@FAST
@given(
    shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4),
    seed=SEEDS,
)
def test_atan2_broadcasts_like_torch(shapes, seed, device, check_op, check_grad):
    """atan2(y, x) with broadcasting: values in (-π, π], gradients summed to each shape."""
    rng = np.random.default_rng(seed)
    y, x = (rng.standard_normal(s).astype(np.float32) for s in shapes.input_shapes)
    x = np.where(np.abs(x) < 0.05, 0.5, x)  # away from the origin for finite differences
    check_op(sg.atan2, torch.atan2, [y, x], device)
    check_grad(sg.atan2, [y, x], device)


def test_atan2_at_signed_zeros_and_axes(device, check_op):
    """atan2(0, -0) = π, atan2(-0, -1) = -π, atan2(±1, 0) = ±π/2; at the origin torch takes
    both derivatives as (signed) 0, and so does sparkgrad."""
    y = np.array([0.0, 0.0, -0.0, -0.0, 1.0, -1.0, 0.0, -0.0], dtype=np.float32)
    x = np.array([0.0, -0.0, 0.0, -0.0, 0.0, 0.0, -1.0, -1.0], dtype=np.float32)
    s_y, s_x = (sg.tensor(v, device=device, requires_grad=True) for v in (y, x))
    t_y, t_x = (torch.tensor(v, requires_grad=True) for v in (y, x))
    out, t_out = sg.atan2(s_y, s_x), torch.atan2(t_y, t_x)
    upstream = np.linspace(-1.0, 1.0, 8).astype(np.float32)
    out.backward(sg.tensor(upstream, device=device))
    t_out.backward(torch.tensor(upstream))
    for got, want in [(out.detach(), t_out.detach()), (s_y.grad, t_y.grad), (s_x.grad, t_x.grad)]:
        np.testing.assert_array_equal(got.numpy(), want.numpy())
        np.testing.assert_array_equal(np.signbit(got.numpy()), np.signbit(want.numpy()))


def test_atan2_of_integers_and_scalars_is_float32(device):
    """Integer operands compute in float32, a Python number is a weak scalar (torch)."""
    i = sg.tensor([1, -2, 3], device=device)
    ti = torch.tensor([1, -2, 3])
    for got, want in [
        (sg.atan2(i, i), torch.atan2(ti, ti)),
        (sg.atan2(i, 2), torch.atan2(ti, torch.tensor(2))),
        (sg.atan2(sg.ones(1, device=device), 2.0), torch.atan2(torch.ones(1), torch.tensor(2.0))),
    ]:
        assert got.dtype == np.dtype(str(want.dtype).split(".")[1])
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_atan2_shape_mismatch_names_both_shapes():
    with pytest.raises(ShapeError, match=r"\(2,\) and \(3,\)"):
        sg.atan2(sg.ones(2), sg.ones(3))


# ---- dtypes --------------------------------------------------------------------------
FLOAT_VALUED = [
    "sin", "cos", "tan", "atan", "sinh", "cosh", "asinh", "exp2", "expm1", "log2", "log10",
    "log1p", "rsqrt", "reciprocal", "erf",
]  # fmt: skip
KEEP_INTEGERS = ["square", "sign", "floor", "ceil", "round", "trunc"]


@pytest.mark.parametrize("name", FLOAT_VALUED + KEEP_INTEGERS)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_integer_and_bool_inputs_get_torch_dtype(name, dtype, device):
    """sin(int) is float32, floor(int) stays int, square(bool) is int64, sign(bool) bool;
    floor/ceil/round/trunc of bool raise NotImplementedError — each as torch does."""
    fn, t_fn, _ = UNARY[name]
    x = np.array([1, 0, 3], dtype=dtype)
    try:
        want = t_fn(torch.tensor(x))
    except NotImplementedError:
        with pytest.raises(NotImplementedError):
            fn(sg.tensor(x, device=device))
        return
    with np.errstate(divide="ignore"):
        got = fn(sg.tensor(x, device=device))
    assert got.dtype == np.dtype(str(want.dtype).split(".")[1])
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["softplus", "silu", "leaky_relu", "elu"])
def test_activations_refuse_integers_as_torch(name, device):
    """torch raises NotImplementedError for these on integer tensors; so does sparkgrad."""
    with pytest.raises(NotImplementedError):
        getattr(TF, name)(torch.tensor([1, -2]))
    with pytest.raises(NotImplementedError):
        getattr(F, name)(sg.tensor([1, -2], device=device))


def test_hardtanh_keeps_integers_and_checks_bounds(device):
    """hardtanh of int64 is int64 (torch allows it); min_val > max_val is torch's ValueError."""
    got = F.hardtanh(sg.tensor([3, -3, 0], device=device))
    want = TF.hardtanh(torch.tensor([3, -3, 0]))
    assert got.dtype == np.int64 and got.tolist() == want.tolist()
    with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
        F.hardtanh(sg.ones(2), 2.0, 1.0)
    with pytest.raises(AssertionError, match="must be greater than min_val"):
        sg.nn.Hardtanh(2.0, 1.0)


# ---- in-place activations -----------------------------------------------------------
@pytest.mark.parametrize("name", ["silu", "leaky_relu", "elu", "hardtanh"])
def test_inplace_writes_into_the_input_outside_autograd(name, device):
    """inplace=True overwrites x and returns x, with torch's values."""
    x = np.array([-1.5, -0.2, 0.0, 0.3, 2.0], dtype=np.float32)
    s, t = sg.tensor(x, device=device), torch.tensor(x)
    out = getattr(F, name)(s, inplace=True)
    getattr(TF, name)(t, inplace=True)
    assert out is s
    np.testing.assert_allclose(s.numpy(), t.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["elu", "leaky_relu", "silu", "hardtanh"])
def test_inplace_inside_autograd_is_recorded_as_torch_records_it(name):
    """``F.elu(x * 2, inplace=True)`` overwrites the product and differentiates like torch;
    on a leaf that requires grad it raises torch's error."""
    values = np.array([1.0, -1.0, 0.25], dtype=np.float32)
    grads = []
    for lib, fns in ((sg, F), (torch, TF)):
        x = lib.tensor(values, requires_grad=True)
        y = x * 2
        out = getattr(fns, name)(y, inplace=True)
        assert out is y
        (out * out).sum().backward()
        grads.append(x.grad.numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)
    with pytest.raises(GradError, match="a leaf Variable that requires grad"):
        getattr(F, name)(sg.tensor(values, requires_grad=True), inplace=True)


# ---- nn modules ---------------------------------------------------------------------
MODULES = [
    (lambda m: m.LeakyReLU(), "LeakyReLU(negative_slope=0.01)"),
    (lambda m: m.LeakyReLU(0.2, inplace=True), "LeakyReLU(negative_slope=0.2, inplace=True)"),
    (lambda m: m.ELU(), "ELU(alpha=1.0)"),
    (lambda m: m.ELU(alpha=0.5, inplace=True), "ELU(alpha=0.5, inplace=True)"),
    (lambda m: m.SiLU(), "SiLU()"),
    (lambda m: m.SiLU(inplace=True), "SiLU(inplace=True)"),
    (lambda m: m.Softplus(), "Softplus(beta=1.0, threshold=20.0)"),
    (lambda m: m.Softplus(2, 10), "Softplus(beta=2, threshold=10)"),
    (lambda m: m.Hardtanh(), "Hardtanh(min_val=-1.0, max_val=1.0)"),
    (lambda m: m.Hardtanh(-2, 3, True), "Hardtanh(min_val=-2, max_val=3, inplace=True)"),
]


@pytest.mark.parametrize("index", range(len(MODULES)))
def test_activation_modules_match_torch(index, device, check_op):
    """Same repr as torch, same forward and backward inside a model."""
    build, text = MODULES[index]
    module, t_module = build(sg.nn), build(torch.nn)
    assert repr(module) == repr(t_module) == text
    x = np.random.default_rng(index).uniform(-3.5, 3.5, (3, 4))
    kinks = np.array([-2.0, -1.0, 0.0, 1.0, 3.0])  # every module's kinks and bounds
    near = (np.abs(x[..., None] - kinks) < 0.05).any(-1)
    x = np.where(near, 0.5, x).astype(np.float32)
    check_op(lambda v: module(v * 1.0), lambda v: t_module(v * 1.0), [x], device)


# ---- tril / triu ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tril", "triu"])
@FAST
@given(
    shape=array_shapes(min_dims=2, max_dims=4, max_side=5),
    diagonal=st.integers(-6, 6),
    seed=SEEDS,
)
def test_triangles_match_torch(name, shape, diagonal, seed, device, check_op):
    """Any batch, any diagonal (negative drops more, past the matrix keeps all or none)."""
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    check_op(
        lambda t: getattr(sg, name)(t, diagonal=diagonal),
        lambda t: getattr(torch, name)(t, diagonal=diagonal),
        [x],
        device,
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize("name", ["tril", "triu"])
def test_triangles_gradcheck_dtypes_and_errors(name, device, check_grad):
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    check_grad(lambda t: getattr(sg, name)(t, -1), [x], device)
    ints = np.arange(12).reshape(3, 4)
    for dtype in (np.int64, np.bool_):
        got = getattr(sg, name)(sg.tensor(ints.astype(dtype), device=device), 1)
        want = getattr(torch, name)(torch.tensor(ints.astype(dtype)), 1)
        assert got.dtype == dtype and got.tolist() == want.tolist()
    inf = np.full((2, 2), np.inf, dtype=np.float32)  # zeros are zeros, not inf·0 = NaN
    assert (
        getattr(sg, name)(sg.tensor(inf, device=device)).tolist()
        == getattr(torch, name)(torch.tensor(inf)).tolist()
    )
    with pytest.raises(ShapeError, match="at least 2 dimensions"):
        getattr(sg, name)(sg.ones(3, device=device))


def test_names_exist_where_torch_has_them():
    """Top level (torch.sin ...) and the functional namespace (F.silu ...), with aliases."""
    for name in ["sin", "arcsin", "arctan2", "fix", "erf", "rsqrt", "square", "tril", "triu"]:
        assert callable(getattr(sg, name)) and hasattr(torch, name)
    assert sg.arcsin is sg.asin and sg.fix is sg.trunc and sg.arctan2 is sg.atan2
    for name in ["softplus", "silu", "leaky_relu", "elu", "hardtanh"]:
        assert callable(getattr(F, name)) and hasattr(TF, name)
