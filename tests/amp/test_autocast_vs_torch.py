"""``sg.autocast`` against ``torch.autocast(device_type="cpu")``, op by op.

For every op on the lists (and a few unlisted ones, whose rule is "keep the input dtype"):
the same float32 inputs go into both libraries under autocast with bfloat16 and float16;
the output dtype must be torch's, the values close at the low precision's tolerance, and
the gradients of the float32 leaves must be float32 (torch's dtype) and close to torch's.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import sparkgrad as sg
import sparkgrad.nn.functional as F
from sparkgrad.autodiff.amp.op_lists import POLICIES
from sparkgrad.autodiff.function import Function

DTYPES = [
    ("bfloat16", sg.bfloat16, torch.bfloat16, 3e-2),
    ("float16", sg.float16, torch.float16, 4e-3),
]
R = np.random.default_rng(0)


def _x(*shape: int) -> np.ndarray:
    return R.standard_normal(shape).astype(np.float32)


Y = np.array([0, 3, 1, 2], dtype=np.int64)
SOFT = np.abs(_x(4, 5)) / 3  # targets in [0, 1] for binary cross entropy
SOFT = np.clip(SOFT, 0, 1).astype(np.float32)

# name: (float32 inputs, sparkgrad fn, torch fn); each fn gets (library namespace, *tensors)
CASES = {
    "linear": ((_x(4, 6), _x(5, 6), _x(5)), lambda x, w, b: F.linear(x, w, b), TF.linear),
    "matmul": ((_x(2, 4, 6), _x(6, 3)), lambda a, b: a @ b, lambda a, b: a @ b),
    "mm": ((_x(4, 6), _x(6, 3)), sg.mm, torch.mm),
    "bmm": ((_x(2, 4, 6), _x(2, 6, 3)), sg.bmm, torch.bmm),
    "matmul_vectors": ((_x(6), _x(6)), sg.matmul, torch.matmul),
    "dot": ((_x(6), _x(6)), sg.dot, torch.dot),  # unlisted on the CPU: stays float32
    "conv2d": ((_x(2, 3, 6, 6), _x(4, 3, 3, 3), _x(4)), F.conv2d, TF.conv2d),
    "sdpa": (
        (_x(2, 3, 5, 4), _x(2, 3, 5, 4), _x(2, 3, 5, 4)),
        F.scaled_dot_product_attention,
        TF.scaled_dot_product_attention,
    ),
    "sdpa_causal": (
        (_x(2, 5, 4), _x(2, 5, 4), _x(2, 5, 4)),
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True),
    ),
    # float32 list: the loss of a lowered linear's output comes back float32
    "cross_entropy": (
        (_x(4, 6), _x(5, 6)),
        lambda x, w: F.cross_entropy(F.linear(x, w), sg.tensor(Y)),
        lambda x, w: TF.cross_entropy(TF.linear(x, w), torch.tensor(Y)),
    ),
    "nll_loss": (
        (_x(4, 6), _x(5, 6)),
        lambda x, w: F.nll_loss(F.log_softmax(F.linear(x, w), dim=1), sg.tensor(Y)),
        lambda x, w: TF.nll_loss(TF.log_softmax(TF.linear(x, w), dim=1), torch.tensor(Y)),
    ),
    **{
        name: (
            (_x(4, 6), _x(5, 6), _x(4, 5)),
            (lambda f: lambda x, w, t: f(F.linear(x, w), t))(getattr(F, name)),
            (lambda f: lambda x, w, t: f(TF.linear(x, w), t))(getattr(TF, name)),
        )
        for name in ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss")
    },
    "bce_with_logits": (
        (_x(4, 6), _x(5, 6), SOFT),
        lambda x, w, t: F.binary_cross_entropy_with_logits(F.linear(x, w), t),
        lambda x, w, t: TF.binary_cross_entropy_with_logits(TF.linear(x, w), t),
    ),
    "bce": (
        (_x(4, 6), _x(5, 6), SOFT),
        lambda x, w, t: F.binary_cross_entropy(sg.sigmoid(F.linear(x, w)), t),
        lambda x, w, t: TF.binary_cross_entropy(torch.sigmoid(TF.linear(x, w)), t),
    ),
    # promote: a lowered output next to a float32 one is joined in float32
    "cat": (
        (_x(4, 6), _x(5, 6), _x(4, 5)),
        lambda x, w, z: sg.cat([F.linear(x, w), z]),
        lambda x, w, z: torch.cat([TF.linear(x, w), z]),
    ),
    "stack": (
        (_x(4, 6), _x(5, 6), _x(4, 5)),
        lambda x, w, z: sg.stack([F.linear(x, w), z]),
        lambda x, w, z: torch.stack([TF.linear(x, w), z]),
    ),
    # unlisted on the CPU: they keep their input's dtype (low after a linear, fp32 on data)
    **{
        name: (
            (_x(4, 6), _x(5, 6)),
            (lambda f: lambda x, w: f(F.linear(x, w)))(fs),
            (lambda f: lambda x, w: f(TF.linear(x, w)))(ft),
        )
        for name, fs, ft in (
            ("softmax_of_low", lambda t: F.softmax(t, dim=-1), lambda t: TF.softmax(t, dim=-1)),
            ("log_softmax_of_low", lambda t: F.log_softmax(t, -1), lambda t: TF.log_softmax(t, -1)),
            (
                "layer_norm_of_low",
                lambda t: F.layer_norm(t, (5,)),
                lambda t: TF.layer_norm(t, (5,)),
            ),
            ("gelu_of_low", F.gelu, TF.gelu),
            ("relu_of_low", F.relu, TF.relu),
            ("exp_of_low", sg.exp, torch.exp),
            ("sum_of_low", lambda t: t.sum(), lambda t: t.sum()),
            ("mean_of_low", lambda t: t.mean(), lambda t: t.mean()),
        )
    },
    "softmax_of_fp32": ((_x(4, 6),), lambda t: F.softmax(t, -1), lambda t: TF.softmax(t, -1)),
    "layer_norm_of_fp32": (
        (_x(4, 6), _x(6), _x(6)),
        lambda t, w, b: F.layer_norm(t, (6,), w, b),
        lambda t, w, b: TF.layer_norm(t, (6,), w, b),
    ),
    "residual_add": (
        (_x(4, 6), _x(6, 6)),
        lambda x, w: x + F.linear(x, w),
        lambda x, w: x + TF.linear(x, w),
    ),
}


def _run(lib: str, fn, inputs, dtype):
    if lib == "sg":
        leaves = [sg.tensor(a, requires_grad=True) for a in inputs]
        ctx = sg.autocast(device_type="cpu", dtype=dtype)
    else:
        leaves = [torch.tensor(a, requires_grad=True) for a in inputs]
        ctx = torch.autocast(device_type="cpu", dtype=dtype)
    with ctx:
        out = fn(*leaves)
    upstream = np.linspace(-1, 1, int(np.prod(out.shape)) or 1, dtype=np.float32)
    upstream = upstream.reshape(tuple(out.shape))
    if lib == "sg":
        (out * sg.tensor(upstream).to(out.dtype)).sum().backward()
        grads = [(leaf.grad.dtype, np.asarray(leaf.grad.numpy(), np.float32)) for leaf in leaves]
        return np.dtype(out.dtype).name, np.asarray(out.float().detach().numpy()), grads
    (out * torch.tensor(upstream).to(out.dtype)).sum().backward()
    grads = [(leaf.grad.dtype, leaf.grad.float().numpy()) for leaf in leaves]
    return str(out.dtype).replace("torch.", ""), out.float().detach().numpy(), grads


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize(("dname", "sg_dtype", "torch_dtype", "tol"), DTYPES, ids=lambda d: d)
def test_op_under_autocast_matches_torch(name, dname, sg_dtype, torch_dtype, tol) -> None:
    inputs, fs, ft = CASES[name]
    got_dtype, got, got_grads = _run("sg", fs, inputs, sg_dtype)
    want_dtype, want, want_grads = _run("torch", ft, inputs, torch_dtype)
    assert got_dtype == want_dtype, f"{name}: output {got_dtype}, torch gives {want_dtype}"
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    for (gd, g), (wd, w) in zip(got_grads, want_grads):
        assert np.dtype(gd).name == str(wd).replace("torch.", "") == "float32"
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g, w, rtol=4 * tol, atol=4 * tol * scale)


def test_lowered_values_are_rounded_not_just_relabelled() -> None:
    """A lowered matmul's inputs are really rounded: 1 + 2⁻¹⁰ is 1 in bfloat16."""
    a = sg.tensor([[1.0 + 2.0**-10]])
    with sg.autocast("cpu", dtype=sg.bfloat16):
        out = a @ sg.tensor([[1.0]])
    assert out.dtype == sg.bfloat16 and float(out.float().item()) == 1.0
    with sg.autocast("cpu", dtype=sg.float16):  # float16 keeps 10 fraction bits: exact
        assert float((a @ sg.tensor([[1.0]])).float().item()) == 1.0 + 2.0**-10


def test_every_listed_op_exists() -> None:
    """A renamed op must not silently fall off the lists."""
    import sparkgrad.parallel.zero.shard_unit  # noqa: F401 - defines GatheredLinear

    names = set()
    todo = list(Function.__subclasses__())
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    for device, table in POLICIES.items():
        missing = sorted(set(table) - names)
        assert not missing, f"{device} list names ops that do not exist: {missing}"


def test_nesting_disable_and_threads() -> None:
    w = sg.randn(3, 3, requires_grad=True)
    with sg.autocast("cpu"):
        assert (w @ w).dtype == sg.bfloat16  # the CPU default dtype, as torch
        assert sg.is_autocast_enabled("cpu") and not sg.is_autocast_enabled("cuda")
        with sg.autocast("cpu", enabled=False):
            assert (w @ w).dtype == sg.float32
        with sg.autocast("cpu", dtype=sg.float16):
            assert (w @ w).dtype == sg.float16
        assert (w @ w).dtype == sg.bfloat16
        import threading

        seen = []
        t = threading.Thread(target=lambda: seen.append((w @ w).dtype))
        t.start()
        t.join()
        assert seen == [np.dtype(np.float32)]  # another thread is not inside the region
    assert (w @ w).dtype == sg.float32 and not sg.is_autocast_enabled("cpu")


def test_weight_cast_once_per_region_and_decorator() -> None:
    """The low copy of a weight is made once per region (PyTorch's cast cache)."""
    w = sg.randn(4, 4, requires_grad=True)

    @sg.autocast("cpu", dtype=sg.bfloat16)
    def twice(x):
        return x @ w, x @ w

    a, b = twice(sg.randn(2, 4))
    assert a.dtype == b.dtype == sg.bfloat16
    cast_a = a.grad_fn.next_functions[0][0].next_functions[1][0]
    cast_b = b.grad_fn.next_functions[0][0].next_functions[1][0]
    assert cast_a is cast_b  # one RoundTo node feeds both products
    (a.float().sum() + b.float().sum()).backward()
    assert w.grad.dtype == sg.float32


@pytest.mark.parametrize(
    ("name", "sg_dtype", "torch_dtype", "tol"), DTYPES, ids=[d[0] for d in DTYPES]
)
def test_two_backwards_through_one_cached_weight_cast_as_torch(name, sg_dtype, torch_dtype, tol):
    """Two forwards in one region share the weight's cached copy; two separate backwards
    (a pipeline's micro-batches) both pass through it, and the gradients are torch's."""
    w, b, x1, x2 = _x(3, 4), _x(3), _x(2, 4), _x(5, 4)
    lin, ref = sg.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    lin.load_state_dict({"weight": w, "bias": b})
    ref.load_state_dict({"weight": torch.tensor(w), "bias": torch.tensor(b)})
    with sg.autocast("cpu", dtype=sg_dtype):
        y1, y2 = lin(sg.tensor(x1)), lin(sg.tensor(x2))
    with torch.autocast("cpu", dtype=torch_dtype):
        z1, z2 = ref(torch.tensor(x1)), ref(torch.tensor(x2))
    for y, z in ((y1, z1), (y2, z2)):
        y.float().sum().backward()
        z.float().sum().backward()
        np.testing.assert_array_equal(lin.weight.grad.numpy(), ref.weight.grad.numpy())
        np.testing.assert_array_equal(lin.bias.grad.numpy(), ref.bias.grad.numpy())


def test_unsupported_dtype_warns_and_disables() -> None:
    w = sg.randn(2, 2)
    with pytest.warns(UserWarning, match="Disabling autocast"):
        with sg.autocast("cpu", dtype=sg.float64):
            assert (w @ w).dtype == sg.float32


def test_bfloat16_tensors_without_autocast() -> None:
    """``sg.bfloat16`` in factories and conversions; grads follow their tensor's dtype."""
    x = sg.ones(2, 3, dtype=sg.bfloat16, requires_grad=True)
    assert x.dtype == sg.bfloat16 and x.is_floating_point() and x.element_size() == 2
    y = sg.randn(2, 3).bfloat16()
    assert y.dtype == np.dtype(ml_dtypes.bfloat16)
    assert sg.randn(2, dtype=sg.bfloat16).dtype == sg.bfloat16
    assert y.half().dtype == sg.float16 and y.float().dtype == sg.float32
    z = (x * 2.0 + sg.exp(x)).sum()
    assert z.dtype == sg.bfloat16
    z.backward()
    assert x.grad.dtype == sg.bfloat16
    np.testing.assert_allclose(x.grad.float().numpy(), 2 + np.e, rtol=1e-2)
    leaf = sg.randn(3, requires_grad=True)
    leaf.to(sg.bfloat16).float().sum().backward()  # the cast is differentiable
    assert leaf.grad.dtype == sg.float32
    with pytest.raises(TypeError, match="found 'bfloat17'"):
        sg.zeros(2, dtype="bfloat17")
