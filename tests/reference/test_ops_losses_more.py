"""More losses: L1, smooth L1, Huber, binary cross-entropy (on probabilities and
on logits), and class weights for cross-entropy and nll.

Each is checked against ``torch.nn.functional`` (value, and the gradient of a random
upstream gradient for the input *and* the target) at every reduction, for random shapes
(0-dim included), and against finite differences in float64. The hard cases get their own
tests: the thresholds of the piecewise losses, probabilities of exactly 0 and 1 (PyTorch
clamps the logs at -100), logits of ±100 (the with-logits form must stay finite), weights
that broadcast, and PyTorch's weighted mean, which divides by the sum of the weights.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

import sparkgrad as sg
import sparkgrad.autodiff.functional as F
from sparkgrad.errors import ConfigError, GradError, ShapeError

SEEDS = st.integers(0, 2**32 - 1)
REDUCTIONS = ["mean", "sum", "none"]
SHAPES = array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def _x(shape, seed=0, scale=1.0):
    return np.asarray(np.random.default_rng(seed).standard_normal(shape) * scale, np.float32)


def _uniform(shape, seed, low=0.0, high=1.0):
    return np.asarray(np.random.default_rng(seed).uniform(low, high, shape), np.float32)


# ---- regression: l1, mse, smooth_l1, huber ---------------------------------------------
REGRESSION = {  # name: (ours, torch's), each f(input, target, reduction)
    "l1_loss": (
        lambda a, b, r: F.l1_loss(a, b, reduction=r),
        lambda a, b, r: TF.l1_loss(a, b, reduction=r),
    ),
    "mse_loss": (
        lambda a, b, r: F.mse_loss(a, b, reduction=r),
        lambda a, b, r: TF.mse_loss(a, b, reduction=r),
    ),
    "smooth_l1_loss": (
        lambda a, b, r: F.smooth_l1_loss(a, b, reduction=r),
        lambda a, b, r: TF.smooth_l1_loss(a, b, reduction=r),
    ),
    "smooth_l1_loss-beta=0.3": (
        lambda a, b, r: F.smooth_l1_loss(a, b, reduction=r, beta=0.3),
        lambda a, b, r: TF.smooth_l1_loss(a, b, reduction=r, beta=0.3),
    ),
    "smooth_l1_loss-beta=0": (
        lambda a, b, r: F.smooth_l1_loss(a, b, reduction=r, beta=0.0),
        lambda a, b, r: TF.smooth_l1_loss(a, b, reduction=r, beta=0.0),
    ),
    "huber_loss": (
        lambda a, b, r: F.huber_loss(a, b, reduction=r),
        lambda a, b, r: TF.huber_loss(a, b, reduction=r),
    ),
    "huber_loss-delta=2.5": (
        lambda a, b, r: F.huber_loss(a, b, r, 2.5),
        lambda a, b, r: TF.huber_loss(a, b, r, 2.5),
    ),
}


@pytest.mark.parametrize("name", REGRESSION)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=12, deadline=None)
@given(shape=SHAPES, seed=SEEDS)
def test_regression_losses_match_torch(name, reduction, shape, seed, device, check_op):
    """Differences of scale 2 straddle every threshold (beta, delta) in most draws."""
    ours, theirs = REGRESSION[name]
    check_op(
        lambda a, b: ours(a, b, reduction),
        lambda a, b: theirs(a, b, reduction),
        [_x(shape, seed, 2.0), _x(shape, seed + 1)],
        device,
    )


@pytest.mark.parametrize("name", REGRESSION)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses_gradcheck(name, reduction, device, check_grad):
    """Finite differences in float64, away from the kinks (|z| = beta, delta, 0)."""
    ours, _ = REGRESSION[name]
    a = np.array([[-3.1, -1.2, -0.55, -0.1], [0.05, 0.2, 0.9, 4.0]])
    check_grad(lambda x, t: ours(x, t, reduction), [a, np.full_like(a, 0.02)], device)


@pytest.mark.parametrize("name", REGRESSION)
def test_piecewise_losses_at_their_thresholds_match_torch(name, device, check_op):
    """z exactly 0, ±beta/±delta (0.3, 1, 2.5) and just around them: torch's side of each."""
    ours, theirs = REGRESSION[name]
    inputs = np.array([0.0, 0.3, -0.3, 1.0, -1.0, 2.5, -2.5, 0.9999, 1.0001, 2.4999, 2.5001])
    inputs, target = inputs.astype(np.float32), np.zeros(inputs.size, np.float32)
    for reduction in REDUCTIONS:
        check_op(
            lambda a, b, r=reduction: ours(a, b, r),
            lambda a, b, r=reduction: theirs(a, b, r),
            [inputs, target],
            device,
        )


def test_smooth_l1_with_beta_0_is_l1_loss_with_gradient_0_at_0(assert_close):
    a = sg.tensor([1.0, 2.0, -3.0], requires_grad=True)
    b = sg.tensor([1.0, 0.5, 0.0])
    F.smooth_l1_loss(a, b, beta=0.0, reduction="sum").backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 1.0, -1.0])
    assert_close(F.smooth_l1_loss(a, b, beta=0.0), F.l1_loss(a, b))


def test_huber_is_delta_times_smooth_l1_with_beta_delta(assert_close):
    a, b = sg.tensor(_x((5, 4), 0, 3.0)), sg.tensor(_x((5, 4), 1))
    for delta in (0.5, 1.0, 2.0):
        huber = F.huber_loss(a, b, reduction="none", delta=delta)
        smooth = F.smooth_l1_loss(a, b, reduction="none", beta=delta)
        assert_close(huber, smooth * delta, rtol=1e-6)


@pytest.mark.parametrize("name", ["l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"])
@pytest.mark.parametrize("target_shape", [(4,), (1, 4), (3, 1), (2, 3, 4)])
def test_regression_target_broadcasts_with_torchs_warning(
    name, target_shape, device, check_op, check_grad
):
    """A target of another shape broadcasts both ways (a warning, as torch): the output and
    the gradients have the broadcast shape, summed back to each operand's shape."""
    ours, theirs = getattr(F, name), getattr(TF, name)
    pred, target = _x((3, 4), 2, 2.0), _x(target_shape, 3)
    for reduction in REDUCTIONS:
        with pytest.warns(UserWarning, match="different to the input size"):
            ours(sg.tensor(pred), sg.tensor(target), reduction=reduction)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            check_op(
                lambda a, b, r=reduction: ours(a, b, reduction=r),
                lambda a, b, r=reduction: theirs(a, b, reduction=r),
                [pred, target],
                device,
            )
            check_grad(lambda a, b, r=reduction: ours(a, b, reduction=r), [pred, target], device)


@pytest.mark.parametrize("name", ["l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"])
@pytest.mark.filterwarnings("ignore:Using a target size")  # torch warns before it raises
def test_regression_target_that_cannot_broadcast_names_both_shapes(name):
    """torch raises a RuntimeError from its broadcast; sparkgrad its ShapeError (ValueError)."""
    with pytest.raises(RuntimeError, match="must match"):
        getattr(TF, name)(torch.ones(2, 3), torch.ones(4))
    with pytest.raises(ShapeError, match=r"\(2, 3\).*\(4,\)"):
        getattr(F, name)(sg.ones(2, 3), sg.ones(4))


@pytest.mark.parametrize("name", ["l1_loss", "mse_loss", "huber_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_element_weights_of_regression_losses_match_torch(name, reduction, device, check_op):
    """torch's ``weight=``: l1 and mse divide a weighted mean by Σ weight, huber by n."""
    w = _uniform((3, 4), 7, 0.1, 2.0)

    def ours(a, b):
        return getattr(F, name)(a, b, reduction=reduction, weight=sg.tensor(w, device=device))

    def theirs(a, b):
        return getattr(TF, name)(a, b, reduction=reduction, weight=torch.tensor(w))

    check_op(ours, theirs, [_x((3, 4), 4, 2.0), _x((3, 4), 5)], device)
    with pytest.raises(ValueError, match="Weights and input must have the same size"):
        getattr(F, name)(sg.ones(3, 4), sg.ones(3, 4), weight=sg.ones(4))


def test_smooth_l1_and_huber_parameters_are_checked_as_in_torch():
    with pytest.raises(RuntimeError, match="negative values for beta"):
        TF.smooth_l1_loss(torch.ones(2), torch.zeros(2), beta=-1.0)
    with pytest.raises(RuntimeError, match="negative values for beta"):
        F.smooth_l1_loss(sg.ones(2), sg.zeros(2), beta=-1.0)
    for delta in (0.0, -1.0):
        with pytest.raises(RuntimeError, match="non-positive values for delta"):
            TF.huber_loss(torch.ones(2), torch.zeros(2), delta=delta)
        with pytest.raises(RuntimeError, match="non-positive values for delta"):
            F.huber_loss(sg.ones(2), sg.zeros(2), delta=delta)


def test_integer_target_computes_in_the_inputs_dtype():
    """PyTorch's promotion: float32 input, int64 target -> a float32 loss."""
    loss = F.l1_loss(sg.tensor([1.5, 2.0]), sg.tensor([1, 3]))
    ref = TF.l1_loss(torch.tensor([1.5, 2.0]), torch.tensor([1, 3]))
    assert loss.dtype == np.float32 and loss.item() == ref.item()


# ---- binary cross-entropy on probabilities ----------------------------------------------
@st.composite
def probabilities(draw):
    shape = draw(SHAPES)
    seed = draw(SEEDS)
    p = _uniform(shape, seed, 0.02, 0.98)
    hard = draw(st.booleans())
    y = np.asarray(np.random.default_rng(seed + 1).random(shape), np.float32)
    return p, (np.round(y) if hard else y).astype(np.float32)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=15, deadline=None)
@given(case=probabilities())
def test_binary_cross_entropy_matches_torch(reduction, case, device, check_op):
    """Soft and hard targets, any shape; gradients of the input and of the target."""
    check_op(
        lambda p, y: F.binary_cross_entropy(p, y, reduction=reduction),
        lambda p, y: TF.binary_cross_entropy(p, y, reduction=reduction),
        list(case),
        device,
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight_shape", [(5, 3), (3,), (1, 3), (5, 1), ()])
def test_binary_cross_entropy_weights_broadcast_like_torch(
    reduction, weight_shape, device, check_op
):
    """``weight`` rescales each element and broadcasts; the mean still divides by n."""
    w = _uniform(weight_shape, 3, 0.0, 3.0)
    p, y = _uniform((5, 3), 1, 0.05, 0.95), _uniform((5, 3), 2)
    check_op(
        lambda a, b: F.binary_cross_entropy(
            a, b, sg.tensor(w, device=device), None, None, reduction
        ),
        lambda a, b: TF.binary_cross_entropy(a, b, torch.tensor(w), None, None, reduction),
        [p, y],
        device,
    )


def test_binary_cross_entropy_at_0_and_1_is_clamped_like_torch(device, check_op):
    """log(0) is clamped to -100: a loss of 100, not inf; the gradient is torch's (p - y) /
    max(p(1-p), 1e-12), and the target's gradient log(1-p) - log(p) is infinite there."""
    p = np.array([0.0, 1.0, 0.0, 1.0, 1e-30, 1 - 2**-24, 0.5], np.float32)
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.3], np.float32)
    out, _ = check_op(
        lambda a, b: F.binary_cross_entropy(a, b, reduction="none"),
        lambda a, b: TF.binary_cross_entropy(a, b, reduction="none"),
        [p, y],
        device,
    )
    np.testing.assert_allclose(out.detach().cpu().numpy()[:4], [0.0, 0.0, 100.0, 100.0])


def test_binary_cross_entropy_gradcheck(device, check_grad):
    p, y = _uniform((3, 4), 5, 0.05, 0.95), _uniform((3, 4), 6)
    w = sg.tensor(_uniform((4,), 7, 0.5, 2.0), dtype=np.float64, device=device)
    for reduction in REDUCTIONS:
        check_grad(
            lambda a, b, r=reduction: F.binary_cross_entropy(a, b, w, reduction=r), [p, y], device
        )


def test_binary_cross_entropy_rejects_what_torch_rejects():
    """Inputs or targets outside [0, 1] (NaN too): RuntimeError; another shape: ValueError."""
    bad_inputs = [
        ([0.2, 1.5], [0.0, 1.0], "input"),
        ([0.2, -0.1], [0.0, 1.0], "input"),
        ([0.2, float("nan")], [0.0, 1.0], "input"),
        ([0.2, 0.5], [0.0, 1.5], "target"),
    ]
    for p, y, what in bad_inputs:
        match = f"all elements of {what} should be between 0 and 1"
        with pytest.raises(RuntimeError, match=match):
            TF.binary_cross_entropy(torch.tensor(p), torch.tensor(y))
        with pytest.raises(RuntimeError, match=match):
            F.binary_cross_entropy(sg.tensor(p), sg.tensor(y))
    with pytest.raises(ValueError, match="same size"):
        TF.binary_cross_entropy(torch.full((2,), 0.5), torch.ones(3))
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\).*same size"):
        F.binary_cross_entropy(sg.full((2,), 0.5), sg.ones(3))


# ---- binary cross-entropy on logits -------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=15, deadline=None)
@given(case=probabilities(), scale=st.sampled_from([1.0, 5.0]))
def test_binary_cross_entropy_with_logits_matches_torch(reduction, case, scale, device, check_op):
    p, y = case
    logits = np.asarray((np.log(p) - np.log1p(-p)) * scale, np.float32)
    check_op(
        lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction=reduction),
        lambda x, t: TF.binary_cross_entropy_with_logits(x, t, reduction=reduction),
        [logits, y],
        device,
    )


WEIGHTS = [  # (weight shape, pos_weight shape) for input (4, 3): None is "not given"
    (None, None),
    (None, (3,)),
    (None, (1, 3)),
    (None, (4, 3)),
    ((3,), (3,)),
    ((4, 1), None),
    ((4, 3), (4, 3)),
    ((), ()),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight_shape,pos_shape", WEIGHTS)
def test_with_logits_weight_and_pos_weight_broadcast_like_torch(
    reduction, weight_shape, pos_shape, device, check_op, check_grad
):
    """``pos_weight`` per class (the last dim) or per element, with or without ``weight``."""
    w = None if weight_shape is None else _uniform(weight_shape, 8, 0.0, 2.0)
    pw = None if pos_shape is None else _uniform(pos_shape, 9, 0.2, 4.0)

    def ours(x, t, dtype=np.float32):
        def wrap(a):
            return None if a is None else sg.tensor(a, dtype=dtype, device=device)

        return F.binary_cross_entropy_with_logits(
            x, t, wrap(w), reduction=reduction, pos_weight=wrap(pw)
        )

    def theirs(x, t):
        def wrap(a):
            return None if a is None else torch.tensor(a)

        return TF.binary_cross_entropy_with_logits(
            x, t, wrap(w), reduction=reduction, pos_weight=wrap(pw)
        )

    x, y = _x((4, 3), 10, 3.0), _uniform((4, 3), 11)
    check_op(ours, theirs, [x, y], device)
    check_grad(lambda a, b: ours(a, b, np.float64), [x, y], device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_with_logits_is_finite_and_exact_at_logits_of_100(reduction, device, check_op):
    """±100 (and ±1e4) would overflow exp(x) or saturate sigmoid(x); the stable form gives
    torch's finite loss (about 100 for a wrong sign) and its gradients."""
    x = np.array([100.0, -100.0, 100.0, -100.0, 1e4, -1e4, 30.0, -30.0], np.float32)
    y = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.5, 0.5], np.float32)
    for pos_weight in (None, [2.0] * 8):
        ours_pw = None if pos_weight is None else sg.tensor(pos_weight, device=device)
        theirs_pw = None if pos_weight is None else torch.tensor(pos_weight)
        out, _ = check_op(
            lambda a, b, pw=ours_pw: F.binary_cross_entropy_with_logits(
                a, b, reduction=reduction, pos_weight=pw
            ),
            lambda a, b, pw=theirs_pw: TF.binary_cross_entropy_with_logits(
                a, b, reduction=reduction, pos_weight=pw
            ),
            [x, y],
            device,
        )
        loss = out.detach().cpu().numpy()
        assert np.isfinite(loss).all()
        if reduction == "none":  # a wrong sign costs 100 (times pos_weight if y = 1)
            wrong_positive = 100.0 if pos_weight is None else 200.0
            np.testing.assert_allclose(loss[:4], [100.0, wrong_positive, 0.0, 0.0], atol=1e-30)


def test_with_logits_equals_bce_of_sigmoid_where_both_are_accurate(assert_close):
    x, y = sg.tensor(_x((6, 2), 12, 2.0)), sg.tensor(_uniform((6, 2), 13))
    for reduction in REDUCTIONS:
        assert_close(
            F.binary_cross_entropy_with_logits(x, y, reduction=reduction),
            F.binary_cross_entropy(F.sigmoid(x), y, reduction=reduction),
            rtol=1e-5,
        )


def test_with_logits_shape_errors():
    with pytest.raises(ValueError, match="must be the same as input size"):
        TF.binary_cross_entropy_with_logits(torch.ones(2), torch.ones(3))
    with pytest.raises(ValueError, match=r"target size \(3,\) must be the same as input size"):
        F.binary_cross_entropy_with_logits(sg.ones(2), sg.ones(3))
    with pytest.raises(ShapeError, match=r"pos_weight of shape \(4,\)"):
        F.binary_cross_entropy_with_logits(sg.ones(2, 3), sg.ones(2, 3), pos_weight=sg.ones(4))


def test_weights_that_require_grad_are_refused_as_in_torch():
    """torch: 'not differentiable with respect to argument weight' (a RuntimeError)."""
    p, y = sg.full((2,), 0.5, requires_grad=True), sg.ones(2)
    w = sg.ones(2, requires_grad=True)
    for call in (
        lambda: F.binary_cross_entropy(p, y, weight=w),
        lambda: F.binary_cross_entropy_with_logits(p, y, pos_weight=w),
        lambda: F.cross_entropy(sg.ones(2, 2), sg.tensor([0, 1]), weight=w),
        lambda: F.nll_loss(sg.ones(2, 2), sg.tensor([0, 1]), weight=w),
    ):
        with pytest.raises(GradError, match="not differentiable") as info:
            call()
        assert isinstance(info.value, RuntimeError)


# ---- class weights for cross_entropy and nll_loss -----------------------------------------
@st.composite
def weighted_classification(draw):
    """Logits (N, C, *extra), int64 targets (some ignored), positive class weights."""
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    extra = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    rng = np.random.default_rng(draw(SEEDS))
    logits = (rng.standard_normal((n, c) + extra) * 3).astype(np.float32)
    target = rng.integers(0, c, (n,) + extra).astype(np.int64)
    ignore = rng.random(target.shape) < 0.3
    ignore.flat[0] = False  # at least one counted target, or 'mean' is 0/0
    target[ignore] = -100
    weight = rng.uniform(0.1, 3.0, c).astype(np.float32)
    return logits, target, weight


@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=15, deadline=None)
@given(case=weighted_classification(), smoothing=st.sampled_from([0.0, 0.1, 0.5]))
def test_cross_entropy_with_class_weights_matches_torch(
    reduction, case, smoothing, device, check_op
):
    """The weighted mean divides by Σ w[target] of the counted targets; label smoothing's
    term is weighted per class, as in torch."""
    logits, target, weight = case
    w_sg, w_t = sg.tensor(weight, device=device), torch.tensor(weight)
    check_op(
        lambda x, t: F.cross_entropy(
            x, t, w_sg, reduction=reduction, label_smoothing=smoothing
        ),
        lambda x, t: TF.cross_entropy(
            x, t, w_t, reduction=reduction, label_smoothing=smoothing
        ),
        [logits, target],
        device,
    )  # fmt: skip


@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=15, deadline=None)
@given(case=weighted_classification())
def test_nll_loss_with_class_weights_matches_torch(reduction, case, device, check_op):
    logits, target, weight = case
    w_sg, w_t = sg.tensor(weight, device=device), torch.tensor(weight)
    check_op(
        lambda x, t: F.nll_loss(F.log_softmax(x, dim=1), t, w_sg, reduction=reduction),
        lambda x, t: TF.nll_loss(TF.log_softmax(x, dim=1), t, w_t, reduction=reduction),
        [logits, target],
        device,
    )


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_with_a_zero_class_weight_matches_torch(smoothing, device, check_op):
    """A class of weight 0 drops out of the mean's denominator, but smoothing still
    spreads mass onto it (torch's formula, not a masked row)."""
    logits = _x((5, 3), 14, 2.0)
    target = np.array([0, 1, 1, 2, 1], np.int64)
    weight = np.array([2.0, 0.0, 0.5], np.float32)
    check_op(
        lambda x, t: F.cross_entropy(x, t, sg.tensor(weight, device=device),
                                     label_smoothing=smoothing),
        lambda x, t: TF.cross_entropy(x, t, torch.tensor(weight), label_smoothing=smoothing),
        [logits, target],
        device,
    )  # fmt: skip


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_weighted_cross_entropy_and_nll_gradcheck(reduction, smoothing, device, check_grad):
    logits = _x((2, 3, 2), 15)
    target = np.array([[0, 2], [-100, 1]], dtype=np.int64)
    w = sg.tensor([0.5, 2.0, 1.5], dtype=np.float64, device=device)
    check_grad(
        lambda x, t: F.cross_entropy(x, t, w, reduction=reduction, label_smoothing=smoothing),
        [logits, target],
        device,
    )
    check_grad(lambda x, t: F.nll_loss(x, t, w, reduction=reduction), [logits, target], device)


def test_class_weight_of_the_wrong_shape_gets_torchs_message():
    for shape in [(4,), (1, 3)]:
        with pytest.raises(RuntimeError) as theirs:
            TF.cross_entropy(torch.ones(2, 3), torch.tensor([0, 1]), weight=torch.ones(shape))
        for fn in (F.cross_entropy, F.nll_loss):
            with pytest.raises(RuntimeError) as ours:
                fn(sg.ones(2, 3), sg.tensor([0, 1]), weight=sg.ones(*shape))
            assert str(ours.value) == str(theirs.value)


def test_positional_arguments_follow_torchs_order():
    """``F.cross_entropy(x, y, w)``: the third argument is the class weight, as in torch;
    a reduction string there (sparkgrad's old order) is refused, not misread."""
    x, y = sg.tensor(_x((4, 3), 16)), sg.tensor([0, 2, 1, 2])
    w = _uniform((3,), 17, 0.5, 2.0)
    ours = F.cross_entropy(x, y, sg.tensor(w), None, -100, None, "sum", 0.1)
    theirs = TF.cross_entropy(
        torch.tensor(x.numpy()), torch.tensor(y.numpy()), torch.tensor(w), None, -100, None,
        "sum", 0.1,
    )  # fmt: skip
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-6)
    with pytest.raises(TypeError, match="weight must be a Tensor"):
        F.cross_entropy(x, y, "sum")


# ---- arguments: reductions and the deprecated ones ----------------------------------------
FUNCTIONALS = {
    "l1_loss": lambda lib, r: lib.l1_loss(_t(lib, [1.0]), _t(lib, [0.0]), reduction=r),
    "mse_loss": lambda lib, r: lib.mse_loss(_t(lib, [1.0]), _t(lib, [0.0]), reduction=r),
    "smooth_l1_loss": lambda lib, r: lib.smooth_l1_loss(
        _t(lib, [1.0]), _t(lib, [0.0]), reduction=r
    ),
    "huber_loss": lambda lib, r: lib.huber_loss(_t(lib, [1.0]), _t(lib, [0.0]), reduction=r),
    "binary_cross_entropy": lambda lib, r: lib.binary_cross_entropy(
        _t(lib, [0.5]), _t(lib, [1.0]), reduction=r
    ),
    "binary_cross_entropy_with_logits": lambda lib, r: lib.binary_cross_entropy_with_logits(
        _t(lib, [0.5]), _t(lib, [1.0]), reduction=r
    ),
}


def _t(lib, values):
    return torch.tensor(values) if lib is TF else sg.tensor(values)


@pytest.mark.parametrize("name", FUNCTIONALS)
def test_bad_reduction_is_a_value_error_as_in_torch(name):
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        FUNCTIONALS[name](TF, "avg")
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        FUNCTIONALS[name](F, "avg")


def test_deprecated_size_average_and_reduce_are_refused():
    with pytest.raises(ConfigError, match="deprecated"):
        F.l1_loss(sg.ones(2), sg.zeros(2), size_average=True)
    with pytest.raises(ConfigError, match="deprecated"):
        F.binary_cross_entropy(sg.full((2,), 0.5), sg.zeros(2), reduce=False)


# ---- modules ------------------------------------------------------------------------------
MODULES = [  # (constructor taking the nn namespace, input maker, target maker)
    (lambda m: m.L1Loss(), _x, _x),
    (lambda m: m.L1Loss(reduction="sum"), _x, _x),
    (lambda m: m.SmoothL1Loss(beta=0.5), _x, _x),
    (lambda m: m.SmoothL1Loss(None, None, "none", 2.0), _x, _x),
    (lambda m: m.HuberLoss("sum", 0.5), _x, _x),  # torch's order: reduction, delta
    (lambda m: m.HuberLoss(delta=2.0), _x, _x),
    (lambda m: m.MSELoss(reduction="none"), _x, _x),
    (lambda m: m.BCELoss(), lambda s, i: _uniform(s, i, 0.05, 0.95), _uniform),
    (
        lambda m: m.BCELoss(weight=_lib_tensor(m, [0.5, 1.0, 2.0]), reduction="sum"),
        lambda s, i: _uniform(s, i, 0.05, 0.95),
        _uniform,
    ),
    (lambda m: m.BCEWithLogitsLoss(), _x, _uniform),
    (
        lambda m: m.BCEWithLogitsLoss(
            weight=_lib_tensor(m, [1.0, 0.0, 2.0]), pos_weight=_lib_tensor(m, [3.0, 1.0, 0.5])
        ),
        _x,
        _uniform,
    ),
]


def _lib_tensor(m, values):
    return torch.tensor(values) if m is torch.nn else sg.tensor(values)


@pytest.mark.parametrize("make,make_input,make_target", MODULES)
def test_loss_modules_match_torch(make, make_input, make_target, device, check_op):
    ours, theirs = make(sg.nn).to(device), make(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())  # weight buffers by name
    assert repr(ours) == repr(theirs)
    check_op(ours, theirs, [make_input((4, 3), 18), make_target((4, 3), 19)], device)


@pytest.mark.parametrize("cls", ["CrossEntropyLoss", "NLLLoss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_classification_modules_take_class_weights_like_torch(cls, reduction, device, check_op):
    weight = [0.2, 1.0, 3.0, 0.7]
    ours = getattr(sg.nn, cls)(sg.tensor(weight), reduction=reduction).to(device)
    theirs = getattr(torch.nn, cls)(torch.tensor(weight), reduction=reduction)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    target = np.array([0, 3, -100, 2, 1, 3])
    check_op(ours, theirs, [_x((6, 4), 20, 2.0), target], device)


def test_weight_buffer_moves_and_loads_with_the_module():
    """``weight`` is a buffer: saved, loaded, and used after ``load_state_dict``."""
    loss = sg.nn.CrossEntropyLoss(weight=sg.tensor([1.0, 1.0, 1.0]))
    loss.load_state_dict({"weight": sg.tensor([1.0, 0.0, 4.0])})
    x, y = sg.tensor(_x((3, 3), 21)), sg.tensor([0, 1, 2])
    ref = torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 0.0, 4.0]))
    np.testing.assert_allclose(
        loss(x, y).item(), ref(torch.tensor(x.numpy()), torch.tensor(y.numpy())).item(), 1e-6
    )


def test_loss_modules_refuse_bad_arguments_at_construction():
    for make in (
        lambda: sg.nn.L1Loss(reduction="avg"),
        lambda: sg.nn.HuberLoss("avg"),
        lambda: sg.nn.BCEWithLogitsLoss(reduction="elementwise"),
        lambda: sg.nn.SmoothL1Loss(size_average=False),
    ):
        with pytest.raises(ConfigError):
            make()
