"""Walkthrough 2.1 — softmax, a numerically stable log_softmax, and the cross-entropy gradient.

A classifier outputs one score ("logit") ``a_c`` per class. **Softmax** turns them into
probabilities::

    softmax(a)_c = exp(a_c) / Σ_k exp(a_k)

Two facts make it work in floating point:

* *Shift invariance*: adding the same number to every logit changes nothing (it cancels
  between numerator and denominator). So we subtract ``max(a)`` first: every exponent is
  then ≤ 0 and ``exp`` cannot overflow, however large the logits are.
* *log_softmax* is computed directly as ``a - max(a) - log Σ exp(a - max(a))`` instead of
  ``log(softmax(a))``: a tiny probability would underflow to 0 and its log become -inf.

**Cross-entropy** for a true class ``t`` is ``L = -log softmax(a)_t``. Its gradient is the
famous one-liner (derive it by differentiating ``-a_t + log Σ exp(a_k)``)::

    dL/da_c = softmax(a)_c - [c == t]          i.e.   p - onehot(t)

— "predicted minus wanted". Averaged over a batch of N rows it is divided by N. sparkgrad
fuses log_softmax and the loss into one op (``F.cross_entropy``) that uses exactly this
formula in its backward.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import sparkgrad as sg
import sparkgrad.nn.functional as F
from sparkgrad.errors import ShapeError


def _softmax_np(a: np.ndarray) -> np.ndarray:
    """A float64 NumPy softmax written from the definition (with the max shift)."""
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_softmax_is_a_probability_distribution():
    """Every row is positive and sums to 1; the largest logit gets the largest probability."""
    sg.manual_seed(0)
    a = sg.randn(4, 6, dtype=sg.float64)
    p = sg.softmax(a, dim=1).numpy()
    assert (p > 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_array_equal(p.argmax(axis=1), a.numpy().argmax(axis=1))


def test_softmax_ignores_a_shift():
    """softmax(a + 100) == softmax(a): the fact the max-subtraction trick relies on."""
    a = sg.tensor([[0.5, -1.0, 2.0]], dtype=sg.float64)
    np.testing.assert_allclose(sg.softmax(a + 100.0, dim=1).numpy(), sg.softmax(a, dim=1).numpy())


def test_large_logits_do_not_overflow():
    """The naive formula overflows (exp(1000) = inf, inf/inf = nan); the shifted one does not."""
    logits = np.array([[1000.0, 999.0, -1000.0]], dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.exp(logits) / np.exp(logits).sum()
    assert np.isnan(naive).any()  # the failure we are avoiding

    p = sg.softmax(sg.tensor(logits), dim=1).numpy()
    logp = sg.log_softmax(sg.tensor(logits), dim=1).numpy()
    assert np.isfinite(p).all() and np.isfinite(logp).all()
    t = torch.tensor(logits)
    np.testing.assert_allclose(p, torch.softmax(t, 1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(logp, torch.log_softmax(t, 1).numpy(), rtol=1e-6)
    # log_softmax keeps -2000 where log(softmax) has already underflowed to log(0) = -inf
    assert logp[0, 2] == pytest.approx(-2000.3133, abs=1e-3)  # -1000 - 1000 - log(1 + e⁻¹)
    with np.errstate(divide="ignore"):
        assert np.log(p[0, 2]) == -np.inf  # p[0, 2] = e⁻²⁰⁰⁰ is 0 in float32


def test_softmax_jacobian_is_diag_minus_outer():
    """d softmax_i / d a_j = s_i·([i == j] - s_j), i.e. J = diag(s) - s sᵀ.

    Backward with the upstream gradient e_i (all zeros, one 1) returns row i of J, so
    n backward passes rebuild the whole Jacobian.
    """
    av = np.array([0.3, -1.2, 2.0, 0.0])
    s = _softmax_np(av)
    by_hand = np.diag(s) - np.outer(s, s)
    rows = []
    for i in range(4):
        a = sg.tensor(av, dtype=sg.float64, requires_grad=True)
        sg.softmax(a, dim=0).backward(sg.tensor(np.eye(4)[i], dtype=sg.float64))
        rows.append(a.grad.numpy())
    np.testing.assert_allclose(np.stack(rows), by_hand, rtol=1e-13, atol=1e-16)


def test_softmax_and_log_softmax_gradcheck():
    """Finite differences agree with both backward formulas (on either axis)."""
    sg.manual_seed(1)
    a = sg.randn(3, 5, dtype=sg.float64, requires_grad=True)
    assert sg.gradcheck(lambda x: sg.softmax(x, dim=1), [a])
    assert sg.gradcheck(lambda x: sg.log_softmax(x, dim=0), [a])


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    """For a batch of N rows with mean reduction: dL/da = (softmax(a) - onehot(t)) / N."""
    rng = np.random.default_rng(2)
    av = rng.standard_normal((5, 4))
    target = np.array([0, 3, 1, 1, 2])
    a = sg.tensor(av, dtype=sg.float64, requires_grad=True)
    loss = F.cross_entropy(a, sg.tensor(target))
    loss.backward()

    p = _softmax_np(av)
    onehot = np.eye(4)[target]
    expected_loss = -np.log(p[np.arange(5), target]).mean()
    assert loss.item() == pytest.approx(expected_loss, rel=1e-13)
    np.testing.assert_allclose(a.grad.numpy(), (p - onehot) / 5, rtol=1e-12, atol=1e-16)


def test_fused_op_equals_the_composition():
    """The fused op gives what -mean(log_softmax(a)[rows, t]) built from small ops gives."""
    rng = np.random.default_rng(3)
    av, target = rng.standard_normal((6, 3)), np.array([2, 0, 1, 1, 0, 2])
    fused = sg.tensor(av, dtype=sg.float64, requires_grad=True)
    composed = sg.tensor(av, dtype=sg.float64, requires_grad=True)
    loss_fused = F.cross_entropy(fused, sg.tensor(target))
    loss_composed = -sg.log_softmax(composed, dim=1)[np.arange(6), target].mean()
    loss_fused.backward()
    loss_composed.backward()
    assert loss_fused.item() == pytest.approx(loss_composed.item(), rel=1e-14)
    np.testing.assert_allclose(fused.grad.numpy(), composed.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_cross_entropy_matches_torch(reduction: str, scale: float):
    """float32 logits (ordinary, then huge) against ``torch.nn.functional.cross_entropy``."""
    rng = np.random.default_rng(4)
    av = (rng.standard_normal((8, 10)) * scale).astype(np.float32)
    target = rng.integers(0, 10, 8)
    gv = rng.standard_normal(8).astype(np.float32) if reduction == "none" else None
    a = sg.tensor(av, requires_grad=True)
    ta = torch.tensor(av, requires_grad=True)
    loss = F.cross_entropy(a, sg.tensor(target), reduction=reduction)
    tloss = TF.cross_entropy(ta, torch.tensor(target), reduction=reduction)
    np.testing.assert_allclose(loss.detach().numpy(), tloss.detach().numpy(), rtol=1e-5)
    assert np.isfinite(loss.detach().numpy()).all()
    if reduction == "none":
        loss.backward(sg.tensor(gv))
        tloss.backward(torch.tensor(gv))
    else:
        loss.backward()
        tloss.backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_ignore_index_and_label_smoothing_match_torch():
    """PyTorch's extras: rows with target -100 are skipped; smoothing mixes in ε/C of each class."""
    rng = np.random.default_rng(5)
    av = rng.standard_normal((6, 4))
    target = np.array([1, -100, 3, 0, -100, 2])
    for kwargs in ({"ignore_index": -100}, {"label_smoothing": 0.1}):
        tgt = np.where(target < 0, 0, target) if "label_smoothing" in kwargs else target
        a = sg.tensor(av, dtype=sg.float64, requires_grad=True)
        ta = torch.tensor(av, requires_grad=True)
        loss = F.cross_entropy(a, sg.tensor(tgt), **kwargs)
        tloss = TF.cross_entropy(ta, torch.tensor(tgt), **kwargs)
        loss.backward()
        tloss.backward()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)
        np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_bad_targets_are_refused_clearly():
    """Targets of the wrong shape, or naming a class that does not exist, give clear errors."""
    logits = sg.zeros(4, 3)
    with pytest.raises(ShapeError, match=r"targets of shape \(3,\)"):
        F.cross_entropy(logits, sg.tensor([0, 1, 2]))
    with pytest.raises(IndexError, match="out of bounds for 3 classes"):
        F.cross_entropy(logits, sg.tensor([0, 1, 2, 3]))
