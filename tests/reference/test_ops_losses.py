"""Losses: cross_entropy (fused with log_softmax), nll_loss and mse_loss.

``cross_entropy`` is one op with a one-line backward (softmax minus the smoothed one-hot
target), so every argument torch offers is checked here: reductions, ``ignore_index``
(which also changes the mean's denominator), ``label_smoothing``, and the (N, C, d1, ...)
layout used for per-pixel or per-token classification.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import sparkgrad as sg
import sparkgrad.autodiff.functional as F

SEEDS = st.integers(0, 2**32 - 1)


@st.composite
def classification(draw):
    """Logits (N, C, *extra) as float32 and int64 targets (N, *extra), some set to ignore."""
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    extra = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    rng = np.random.default_rng(draw(SEEDS))
    logits = (rng.standard_normal((n, c) + extra) * 3).astype(np.float32)
    target = rng.integers(0, c, (n,) + extra).astype(np.int64)
    ignore = rng.random(target.shape) < 0.3
    ignore.flat[0] = False  # at least one counted target, or 'mean' is 0/0
    target[ignore] = -100
    return logits, target


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@settings(max_examples=20, deadline=None)
@given(case=classification(), smoothing=st.sampled_from([0.0, 0.1, 0.5]))
def test_cross_entropy_matches_torch(reduction, case, smoothing, device, check_op):
    """Every reduction, ignored targets (-100) and label smoothing, (N,C) and (N,C,d...)."""
    logits, target = case

    def fn(x, t):
        return F.cross_entropy(x, t, reduction=reduction, label_smoothing=smoothing)

    def t_fn(x, t):
        return TF.cross_entropy(x, t, reduction=reduction, label_smoothing=smoothing)

    check_op(fn, t_fn, [logits, target], device)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_gradcheck(reduction, smoothing, device, check_grad):
    """The fused backward equals finite differences of the loss (N,C,d layout, one ignored)."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 3, 2)).astype(np.float32)
    target = np.array([[0, 2], [-100, 1]], dtype=np.int64)
    check_grad(
        lambda x, t: F.cross_entropy(x, t, reduction=reduction, label_smoothing=smoothing),
        [logits, target],
        device,
    )


def test_cross_entropy_custom_ignore_index_and_single_sample(device, check_op):
    """``ignore_index=2`` skips class 2; 1-D logits with a 0-d target are one sample."""
    logits = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    target = np.array([2, 0, 2, 1], dtype=np.int64)
    check_op(
        lambda x, t: F.cross_entropy(x, t, ignore_index=2),
        lambda x, t: TF.cross_entropy(x, t, ignore_index=2),
        [logits, target],
        device,
    )
    check_op(F.cross_entropy, TF.cross_entropy, [logits[0], np.array(1)], device)


def test_cross_entropy_is_stable_for_huge_logits(device, check_op):
    """Logits of 1e4 give a finite loss and gradient equal to torch's."""
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4]], dtype=np.float32)
    target = np.array([2, 0], dtype=np.int64)
    out, _ = check_op(F.cross_entropy, TF.cross_entropy, [logits, target], device)
    assert np.isfinite(out.item())


def test_cross_entropy_rejects_out_of_range_and_float_targets(device):
    """A class id >= C is an IndexError; float targets (probabilities) are not supported."""
    logits = sg.randn(2, 3, device=device)
    with pytest.raises(IndexError, match="out of bounds for 3 classes"):
        F.cross_entropy(logits, sg.tensor([0, 3], device=device))
    with pytest.raises(TypeError, match="integers"):
        F.cross_entropy(logits, sg.tensor([0.0, 1.0], device=device))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(logits, sg.tensor([0, 1], device=device), reduction="avg")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@settings(max_examples=15, deadline=None)
@given(case=classification())
def test_nll_loss_matches_torch(reduction, case, device, check_op):
    """nll_loss of log-probabilities (any float input) with ignored targets and (N,C,d)."""
    logits, target = case
    check_op(
        lambda x, t: F.nll_loss(F.log_softmax(x, dim=1), t, reduction=reduction),
        lambda x, t: TF.nll_loss(TF.log_softmax(x, dim=1), t, reduction=reduction),
        [logits, target],
        device,
    )


def test_nll_loss_gradcheck_and_equals_cross_entropy(device, check_grad, assert_close):
    """nll_loss(log_softmax(x)) is cross_entropy(x): the same number by two routes."""
    logits = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    target = np.array([3, 0, 3], dtype=np.int64)
    check_grad(F.nll_loss, [logits, target], device)
    x, t = sg.tensor(logits, device=device), sg.tensor(target, device=device)
    assert_close(F.nll_loss(F.log_softmax(x, dim=1), t), F.cross_entropy(x, t))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("target_shape", [(3, 4), (4,), (1, 4)])
def test_mse_loss_matches_torch(reduction, target_shape, device, check_op, check_grad):
    """Mean/sum/none of squared errors; a broadcastable target gets its gradient summed back.

    torch (and sparkgrad) warn about a target that broadcasts; the values must still agree.
    """
    rng = np.random.default_rng(3)
    pred = rng.standard_normal((3, 4)).astype(np.float32)
    target = rng.standard_normal(target_shape).astype(np.float32)

    def fn(p, t):
        return F.mse_loss(p, t, reduction=reduction)

    def t_fn(p, t):
        return TF.mse_loss(p, t, reduction=reduction)

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's broadcasting warning
        check_op(fn, t_fn, [pred, target], device)
        check_grad(fn, [pred, target], device)
