"""The fused ops of neural networks: softmax, linear, layer_norm, embedding, dropout.

Fused ops have a hand-derived backward for the whole formula (instead of one per
primitive), so they are exactly where a sign or a missing term hides. Each is compared
with ``torch.nn.functional`` and finite differences, including the numerically hard
inputs (logits of 1e4) and the special arguments (``padding_idx``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

import sparkgrad as sg
import sparkgrad.autodiff.functional as F

SEEDS = st.integers(0, 2**32 - 1)


def _x(shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


# ---- softmax / log_softmax ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@settings(max_examples=20, deadline=None)
@given(shape=array_shapes(min_dims=1, max_dims=3, max_side=4), data=st.data(), seed=SEEDS)
def test_softmax_over_any_dim_matches_torch(name, shape, data, seed, device, check_op, check_grad):
    """Along any dim (negative too), value and gradient as ``torch.softmax``/``log_softmax``."""
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = _x(shape, seed, scale=3.0)
    check_op(
        lambda t: getattr(F, name)(t, dim=dim), lambda t: getattr(TF, name)(t, dim=dim), [x], device
    )
    check_grad(lambda t: getattr(t, name)(dim), [x], device)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_is_stable_for_huge_logits(name, device, check_op):
    """Logits of ±1e4 overflow a naive exp; the max-shifted form gives torch's finite answer."""
    x = np.array([[1e4, 0.0, -1e4], [1e4, 1e4 - 1.0, 3.0], [-1e4, -1e4, -1e4]], dtype=np.float32)
    out, _ = check_op(
        lambda t: getattr(F, name)(t, dim=1), lambda t: getattr(TF, name)(t, dim=1), [x], device
    )
    assert np.isfinite(out.detach().to("cpu").numpy()).all()


# ---- linear ----------------------------------------------------------------------------
@pytest.mark.parametrize("lead", [(), (5,), (2, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(lead, bias, device, check_op, check_grad):
    """``x @ W.T + b`` for 1-D, 2-D and 3-D inputs; W is (out, in) as ``nn.Linear``.

    Tolerance: atol 1e-5 (matmul summation order differs between BLAS and torch).
    """
    arrays = [_x(lead + (4,), 1), _x((3, 4), 2)] + ([_x((3,), 3)] if bias else [])
    check_op(F.linear, TF.linear, arrays, device, atol=1e-5)
    check_grad(F.linear, arrays, device)


def test_linear_does_not_modify_its_inputs(device):
    """The fused forward adds the bias in place into its *own* output, never into the inputs."""
    x, w, b = _x((2, 4), 1), _x((3, 4), 2), _x((3,), 3)
    tx, tw, tb = (sg.tensor(a, device=device) for a in (x, w, b))
    F.linear(tx, tw, tb)
    for t, a in ((tx, x), (tw, w), (tb, b)):
        np.testing.assert_array_equal(t.to("cpu").numpy(), a)


# ---- layer_norm ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,normalized", [((4, 5), (5,)), ((2, 3, 4), (4,)), ((2, 3, 4), (3, 4)), ((6,), (6,))]
)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_matches_torch(shape, normalized, affine, device, check_op, check_grad):
    """Normalise over the trailing dims, then scale and shift; eps inside the sqrt."""
    arrays = [_x(shape, 1, scale=2.0)]
    if affine:
        arrays += [_x(normalized, 2) + 1, _x(normalized, 3)]

    def fn(x, *wb):
        return F.layer_norm(x, normalized, *wb, eps=1e-5)

    def t_fn(x, *wb):
        return TF.layer_norm(x, normalized, *wb, eps=1e-5)

    # Tolerance: grad atol 1e-5 — the backward sums over the normalised dims in float32.
    check_op(fn, t_fn, arrays, device, grad_atol=1e-5)
    check_grad(fn, arrays, device)


def test_layer_norm_weight_only(device, check_op):
    """A weight without a bias (``bias=None``) is allowed, as in torch."""
    arrays = [_x((3, 4), 1), _x((4,), 2)]
    check_op(
        lambda x, w: F.layer_norm(x, 4, w),
        lambda x, w: TF.layer_norm(x, (4,), w),
        arrays,
        device,
        grad_atol=1e-5,
    )


# ---- embedding ---------------------------------------------------------------------------
@pytest.mark.parametrize("padding_idx", [None, 0, 3])
def test_embedding_repeated_indices_and_padding(padding_idx, device, check_op):
    """Rows used twice get both gradients; the padding row gets none (``F.embedding``)."""
    weight = _x((5, 3), 1)
    idx = np.array([[0, 3, 3], [1, 0, 3]], dtype=np.int64)
    check_op(
        lambda i, w: F.embedding(i, w, padding_idx=padding_idx),
        lambda i, w: TF.embedding(i, w, padding_idx=padding_idx),
        [idx, weight],
        device,
    )


def test_embedding_gradcheck_and_bad_indices(device, check_grad):
    """Finite differences agree; an index past the table is a clear IndexError."""
    idx = np.array([2, 2, 0], dtype=np.int64)
    check_grad(F.embedding, [idx, _x((4, 2))], device)
    with pytest.raises(IndexError, match="4 rows"):
        F.embedding(sg.tensor([4], device=device), sg.randn(4, 2, device=device))


# ---- dropout -----------------------------------------------------------------------------
def test_dropout_mask_statistics_and_scaling(device):
    """About p of the elements are zeroed, the others scaled by 1/(1-p), so E[out] = x.

    With n = 40,000 and p = 0.3 the kept fraction has std 0.0023; 0.01 is over 4 sigma.
    """
    sg.manual_seed(0)
    p, n = 0.3, 40_000
    x = sg.ones(n, device=device, requires_grad=True)
    out = F.dropout(x, p=p, training=True)
    values = out.detach().to("cpu").numpy()
    kept = values != 0
    assert abs(kept.mean() - (1 - p)) < 0.01
    np.testing.assert_allclose(values[kept], 1 / (1 - p), rtol=1e-6)
    out.backward(sg.ones(n, device=device))
    np.testing.assert_array_equal(x.grad.to("cpu").numpy(), values)  # same mask, same scale


def test_dropout_same_seed_same_mask(device):
    """Reseeding gives the identical mask (needed for reproducible runs on every rank)."""
    x = sg.ones(2, 50, device=device)
    sg.manual_seed(123)
    first = F.dropout(x, 0.5).to("cpu").numpy()
    second = F.dropout(x, 0.5).to("cpu").numpy()
    sg.manual_seed(123)
    again = F.dropout(x, 0.5).to("cpu").numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)  # the generator moved on


def test_dropout_eval_and_edge_probabilities(device):
    """Eval mode and p=0 are the identity; p=1 zeroes everything; p outside [0, 1] is refused."""
    x = sg.randn(3, 4, device=device, requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).detach().to("cpu").numpy(), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, 1.5)


@pytest.mark.parametrize(
    "labels, num_classes",
    [([0, 2, 1], -1), ([[3], [0]], 5), ([], 4), ([1, 1], 2)],
)
def test_one_hot_matches_torch(labels, num_classes):
    import torch

    x = np.array(labels, dtype=np.int64)
    want = TF.one_hot(torch.tensor(x), num_classes)
    got = F.one_hot(sg.tensor(x), num_classes)
    assert got.dtype == np.int64 and got.shape == tuple(want.shape)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize(
    "labels, num_classes",
    [([0, 3], 3), ([-1, 0], 2), ([], -1), ([0.0, 1.0], 2)],
)
def test_one_hot_errors_are_torchs(labels, num_classes):
    import torch

    x = np.array(labels, dtype=np.int64 if isinstance(labels[0] if labels else 0, int) else None)
    with pytest.raises(RuntimeError) as theirs:
        TF.one_hot(torch.tensor(x), num_classes)
    with pytest.raises(RuntimeError) as ours:
        F.one_hot(sg.tensor(x), num_classes)
    assert str(ours.value) == str(theirs.value)
