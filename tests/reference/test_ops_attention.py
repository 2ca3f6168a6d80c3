"""``F.scaled_dot_product_attention`` against PyTorch 2.13 (CPU), forward and backward.

The fused op (:mod:`sparkgrad.autodiff.ops.attention`) must give PyTorch's output and the
gradients of ``q``, ``k``, ``v`` (and of a float mask) for every mask kind: none, boolean
(True = may attend), float (added), ``is_causal`` (square and not), masks that broadcast,
and rows that may attend nothing (PyTorch returns zeros there). float64 ``gradcheck``
checks the backward formula independently of PyTorch, dropout included (under a fixed
seed the mask is the same in every call). Tolerances are float32's: rtol 1e-5, atol 1e-6.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from torch.nn.attention import SDPBackend, sdpa_kernel

import sparkgrad as sg
import sparkgrad.nn.functional as F
from sparkgrad.errors import ConfigError, ShapeError

RTOL, ATOL = 1e-5, 1e-6


def _arr(rng: np.random.Generator, *shape: int, dtype=np.float32) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def _both(a: np.ndarray | None, grad: bool = True):
    if a is None:
        return None, None
    if a.dtype == np.bool_ or not grad:
        return sg.tensor(a), torch.tensor(a)
    return sg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def compare(q, k, v, mask=None, mask_grad=False, seed=0, **kwargs):
    """Run both libraries; assert equal outputs and gradients of q, k, v (and the mask)."""
    (sq, tq), (sk, tk), (sv, tv) = _both(q), _both(k), _both(v)
    sm, tm = _both(mask, grad=mask_grad)
    out = F.scaled_dot_product_attention(sq, sk, sv, attn_mask=sm, **kwargs)
    ref = TF.scaled_dot_product_attention(tq, tk, tv, attn_mask=tm, **kwargs)
    assert out.shape == tuple(ref.shape)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=RTOL, atol=ATOL)
    g = np.random.default_rng(seed + 100).standard_normal(ref.shape).astype(np.float32)
    out.backward(sg.tensor(g))
    ref.backward(torch.from_numpy(g))
    pairs = [("q", sq, tq), ("k", sk, tk), ("v", sv, tv)]
    if mask_grad:
        pairs.append(("mask", sm, tm))
    for name, s, t in pairs:
        assert s.grad.shape == s.shape, name
        np.testing.assert_allclose(
            s.grad.numpy(), t.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=name
        )
    return out


SHAPES = [  # (q shape, k shape, v shape): batch dims, L, S, E, Ev
    ((5, 8), (7, 8), (7, 8)),  # unbatched
    ((2, 5, 8), (2, 7, 8), (2, 7, 3)),  # Ev != E
    ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8)),  # (N, H, L, E)
    ((2, 3, 4, 8), (1, 3, 6, 8), (2, 1, 6, 5)),  # batch dims broadcast
    ((3, 1, 16), (3, 9, 16), (3, 9, 16)),  # one query
]


@pytest.mark.parametrize(("qs", "ks", "vs"), SHAPES)
@pytest.mark.parametrize("mask_kind", ["none", "bool", "float", "causal"])
def test_matches_torch(qs, ks, vs, mask_kind):
    """Every shape above with no mask, a boolean mask, a float mask, and is_causal."""
    rng = np.random.default_rng(zlib.crc32(repr((qs, mask_kind)).encode()))
    q, k, v = _arr(rng, *qs) * 2, _arr(rng, *ks), _arr(rng, *vs)
    L, S = qs[-2], ks[-2]
    mask, kwargs = None, {}
    if mask_kind == "bool":
        mask = rng.random((L, S)) < 0.7
        mask[:, 0] = True  # every row keeps one key (fully masked rows: tested below)
    elif mask_kind == "float":
        mask = _arr(rng, L, S)
    elif mask_kind == "causal":
        kwargs["is_causal"] = True
    compare(q, k, v, mask, **kwargs)


@pytest.mark.parametrize(
    "mask_shape", [(4, 6), (1, 4, 6), (2, 1, 4, 6), (2, 3, 1, 6), (1, 6), (3, 1, 6)]
)
@pytest.mark.parametrize("dtype", ["bool", "float"])
def test_masks_that_broadcast(mask_shape, dtype):
    """Masks broadcast to the (2, 3, 4, 6) scores, as in PyTorch."""
    rng = np.random.default_rng(1)
    q, k, v = _arr(rng, 2, 3, 4, 8), _arr(rng, 2, 3, 6, 8), _arr(rng, 2, 3, 6, 8)
    if dtype == "bool":
        mask = rng.random(mask_shape) < 0.6
        mask[..., 0] = True
    else:
        mask = _arr(rng, *mask_shape)
    compare(q, k, v, mask)


def test_float_mask_gets_a_gradient():
    """dL/dM = dS: a learned additive bias (e.g. relative positions) trains through the op."""
    rng = np.random.default_rng(2)
    q, k, v = _arr(rng, 2, 4, 8), _arr(rng, 2, 5, 8), _arr(rng, 2, 5, 8)
    compare(q, k, v, _arr(rng, 4, 5), mask_grad=True)
    compare(q, k, v, _arr(rng, 2, 4, 5), mask_grad=True)


@pytest.mark.parametrize(("L", "S"), [(4, 4), (3, 6), (6, 3)])
def test_causal_is_the_lower_triangle(L, S):
    """is_causal=True equals the boolean mask tril(ones(L, S)): top-left aligned when L != S
    (for L > S the last rows see every key)."""
    rng = np.random.default_rng(3)
    q, k, v = _arr(rng, 2, L, 8), _arr(rng, 2, S, 8), _arr(rng, 2, S, 8)
    causal = compare(q, k, v, is_causal=True)
    masked = F.scaled_dot_product_attention(
        sg.tensor(q),
        sg.tensor(k),
        sg.tensor(v),
        attn_mask=sg.tensor(np.tril(np.ones((L, S), bool))),
    )
    np.testing.assert_array_equal(causal.detach().numpy(), masked.numpy())


@pytest.mark.parametrize("scale", [None, 0.1, 1.0, 3.0])
def test_scale(scale):
    """``scale`` replaces 1/sqrt(E); None keeps it."""
    rng = np.random.default_rng(4)
    compare(_arr(rng, 2, 4, 8), _arr(rng, 2, 5, 8), _arr(rng, 2, 5, 8), scale=scale)


@pytest.mark.parametrize("kind", ["bool", "float_-inf"])
def test_fully_masked_rows_give_zeros_like_torch(kind):
    """A query that may attend no key: PyTorch 2.13 (CPU) returns 0 for it, not NaN, and
    every gradient through that row is 0. The other rows are unaffected."""
    rng = np.random.default_rng(5)
    q, k, v = _arr(rng, 2, 2, 4, 8), _arr(rng, 2, 2, 6, 8), _arr(rng, 2, 2, 6, 8)
    keep = rng.random((2, 1, 4, 6)) < 0.7
    keep[..., 0] = True
    keep[0, 0, 1] = False  # batch 0: query 1 sees nothing
    keep[1, 0, 3] = False  # batch 1: query 3 sees nothing
    mask = keep if kind == "bool" else np.where(keep, 0.0, -np.inf).astype(np.float32)
    out = compare(q, k, v, mask).detach().numpy()
    assert np.isfinite(out).all()
    assert (out[0, :, 1] == 0).all() and (out[1, :, 3] == 0).all()
    assert np.abs(out[0, :, 0]).sum() > 0


def test_large_scores_do_not_overflow():
    """Scores of ~1e4: the max is subtracted before exp, so no inf/nan (and torch agrees)."""
    rng = np.random.default_rng(6)
    q, k, v = _arr(rng, 3, 4, 8) * 100, _arr(rng, 3, 5, 8) * 100, _arr(rng, 3, 5, 8)
    (sq, _), (sk, _), (sv, _) = _both(q), _both(k), _both(v)
    out = F.scaled_dot_product_attention(sq, sk, sv)
    out.sum().backward()
    assert np.isfinite(out.detach().numpy()).all() and np.isfinite(sq.grad.numpy()).all()
    ref = TF.scaled_dot_product_attention(*(torch.tensor(a) for a in (q, k, v)))
    np.testing.assert_allclose(out.detach().numpy(), ref.numpy(), rtol=1e-4, atol=1e-4)


def test_one_node_with_the_softmax_fused():
    """The whole attention is one node whose edges lead straight to q, k and v."""
    q = sg.randn(2, 3, 4, requires_grad=True)
    out = F.scaled_dot_product_attention(q, q, q, attn_mask=sg.ones(3, 3, dtype=sg.bool))
    assert out.grad_fn.name() == "ScaledDotProductAttentionBackward"
    assert [f.variable if f is not None else None for f, _ in out.grad_fn.next_functions] == [
        q,
        q,
        q,
        None,
    ]


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float", "causal", "fully_masked"])
def test_gradcheck_float64(mask_kind):
    """Central differences in float64 agree with the fused backward for q, k, v (and M)."""
    sg.manual_seed(7)
    q = sg.randn(2, 3, 4, dtype=sg.float64, requires_grad=True)
    k = sg.randn(2, 5, 4, dtype=sg.float64, requires_grad=True)
    v = sg.randn(2, 5, 3, dtype=sg.float64, requires_grad=True)
    kwargs = {}
    inputs = [q, k, v]
    if mask_kind == "bool":
        kwargs["attn_mask"] = sg.tensor(np.tril(np.ones((3, 5), bool), 1))
    elif mask_kind == "float":
        inputs.append(sg.randn(3, 5, dtype=sg.float64, requires_grad=True))
    elif mask_kind == "causal":
        kwargs["is_causal"] = True
    elif mask_kind == "fully_masked":
        keep = np.ones((2, 3, 5), bool)
        keep[1, 2] = False
        kwargs["attn_mask"] = sg.tensor(keep)

    def fn(q, k, v, *mask):
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask[0] if mask else kwargs.get("attn_mask"),
            is_causal=kwargs.get("is_causal", False), scale=0.7,
        )  # fmt: skip

    assert sg.gradcheck(fn, inputs)


def test_gradcheck_with_dropout_under_a_fixed_seed():
    """With the generator reseeded before each call the dropout mask is fixed, so the
    backward through dropped probabilities is checked by finite differences too."""
    q = sg.randn(2, 4, 3, dtype=sg.float64, requires_grad=True)
    k = sg.randn(2, 6, 3, dtype=sg.float64, requires_grad=True)
    v = sg.randn(2, 6, 2, dtype=sg.float64, requires_grad=True)

    def fn(q, k, v):
        sg.manual_seed(11)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.4)

    assert sg.gradcheck(fn, [q, k, v])
    assert (
        np.abs(
            fn(q, k, v).detach().numpy() - F.scaled_dot_product_attention(q, k, v).detach().numpy()
        ).max()
        > 1e-3
    )  # fmt: skip - dropout did change the output


@pytest.mark.parametrize("p", [0.1, 0.3, 0.6])
def test_dropout_statistics(p):
    """Uniform attention (q = 0) over S = 64 keys, V = identity: the output *is* the dropped
    probability matrix. Entries are 0 or (1/S)/(1-p), and about 1-p of them are kept."""
    S = 64
    sg.manual_seed(0)
    q = sg.zeros(4, 64, 8)
    k = sg.randn(4, S, 8)
    v = sg.tensor(np.broadcast_to(np.eye(S, dtype=np.float32), (4, S, S)).copy())
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=p).numpy()
    kept = out != 0
    np.testing.assert_allclose(out[kept], (1 / S) / (1 - p), rtol=1e-6)
    assert abs(kept.mean() - (1 - p)) < 0.02  # 16384 coins: 0.02 is over 5 sigma
    assert abs(out.sum(axis=-1).mean() - 1.0) < 0.02  # expectation unchanged


def test_dropout_backward_uses_the_same_mask():
    """dV = (P∘D/(1-p))ᵀ dO: with V = identity the output shows the dropped P, so dV can be
    computed from it by hand; dropout_p = 1 drops everything."""
    S = 6
    sg.manual_seed(1)
    q, k = sg.randn(2, 5, 4), sg.randn(2, S, 4)
    v = sg.tensor(
        np.broadcast_to(np.eye(S, dtype=np.float32), (2, S, S)).copy(), requires_grad=True
    )
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    g = np.random.default_rng(2).standard_normal(out.shape).astype(np.float32)
    out.backward(sg.tensor(g))
    dropped = out.detach().numpy()
    np.testing.assert_allclose(v.grad.numpy(), dropped.swapaxes(-1, -2) @ g, rtol=1e-5, atol=1e-6)
    assert (F.scaled_dot_product_attention(q, k, v, dropout_p=1.0).detach().numpy() == 0).all()


def test_no_dropout_without_p():
    """dropout_p = 0 draws nothing: two calls are identical (SDPA has no training flag)."""
    rng = np.random.default_rng(3)
    q, k, v = (sg.tensor(_arr(rng, 2, 4, 8)) for _ in range(3))
    a = F.scaled_dot_product_attention(q, k, v).numpy()
    np.testing.assert_array_equal(a, F.scaled_dot_product_attention(q, k, v).numpy())


def test_grouped_query_attention_matches_torch():
    """enable_gqa: 6 query heads share 2 key/value heads (groups of 3), no copies of K, V."""
    rng = np.random.default_rng(8)
    q, k, v = _arr(rng, 2, 6, 4, 8), _arr(rng, 2, 2, 5, 8), _arr(rng, 2, 2, 5, 8)
    compare(q, k, v, enable_gqa=True)
    compare(q, k, v, _arr(rng, 6, 4, 5), enable_gqa=True)
    compare(q, k, v, rng.random((2, 1, 4, 5)) < 0.8, enable_gqa=True)


# ---- errors -----------------------------------------------------------------------------
def test_mask_and_is_causal_together_are_refused():
    """PyTorch's reference (math) kernel refuses both; so do we, with its message."""
    q = np.zeros((2, 3, 4), np.float32)
    mask = np.ones((3, 3), bool)
    with sdpa_kernel(SDPBackend.MATH), pytest.raises(RuntimeError, match="Explicit attn_mask"):
        TF.scaled_dot_product_attention(*(torch.tensor(q),) * 3, torch.tensor(mask), is_causal=True)
    with pytest.raises(ConfigError, match="Explicit attn_mask should not be set when is_causal"):
        F.scaled_dot_product_attention(*(sg.tensor(q),) * 3, sg.tensor(mask), is_causal=True)


@pytest.mark.parametrize(
    ("q", "k", "v", "mask", "error", "match"),
    [
        ((2, 3, 4), (2, 5, 3), (2, 5, 4), None, ShapeError, r"key of shape \(2, 5, 3\)"),
        ((2, 3, 4), (2, 5, 4), (2, 6, 4), None, ShapeError, r"value of shape \(2, 6, 4\)"),
        ((2, 3, 4), (3, 5, 4), (3, 5, 4), None, ShapeError, "batch dims"),
        ((4,), (5, 4), (5, 4), None, ShapeError, "at least 2 dimensional"),
        ((2, 3, 4), (2, 5, 4), (2, 5, 4), (4, 5), ShapeError, r"attn_mask of shape \(4, 5\)"),
        ((2, 3, 4), (2, 5, 4), (2, 5, 4), (3, 2, 3, 5), ShapeError, r"\(3, 2, 3, 5\) does not"),
        ((1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 4), (5,), ShapeError, r"at least 2-D, \(L, S\)"),
        ((2, 3, 4), (2, 5, 4), (2, 5, 4), "int", TypeError, "attn_mask dtype to be bool"),
        ((2, 3, 4), (2, 5, 4), (2, 5, 4), "f64", TypeError, "attn_mask dtype to be bool"),
    ],
)
def test_bad_inputs_are_refused_like_torch(q, k, v, mask, error, match):
    """Each input PyTorch refuses is refused here too, with the shapes in the message."""
    arrays = [np.zeros(s, np.float32) for s in (q, k, v)]
    if mask == "int":
        mask = np.zeros((3, 5), np.int64)
    elif mask == "f64":
        mask = np.zeros((3, 5), np.float64)
    elif mask is not None:
        mask = np.zeros(mask, np.float32)
    tmask = None if mask is None else torch.tensor(mask)
    with pytest.raises((RuntimeError, IndexError)):
        TF.scaled_dot_product_attention(*(torch.tensor(a) for a in arrays), attn_mask=tmask)
    smask = None if mask is None else sg.tensor(mask)
    with pytest.raises(error, match=match):
        F.scaled_dot_product_attention(*(sg.tensor(a) for a in arrays), attn_mask=smask)


def test_dtypes_must_agree():
    with pytest.raises(TypeError, match="same dtype"):
        F.scaled_dot_product_attention(
            sg.zeros(2, 3, dtype=sg.float64), sg.zeros(2, 3), sg.zeros(2, 3)
        )
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.scaled_dot_product_attention(sg.zeros(2, 3), sg.zeros(2, 3), sg.zeros(2, 3), dropout_p=2)


@pytest.mark.parametrize("mask_kind", ["bool", "float", "causal", "fully_masked"])
def test_on_every_device(mask_kind, device, check_op, check_grad):
    """The same op on each device (CuPy on cuda): PyTorch's numbers and finite differences."""
    rng = np.random.default_rng(12)
    arrays = [_arr(rng, 2, 4, 8), _arr(rng, 2, 6, 8), _arr(rng, 2, 6, 5)]
    keep = rng.random((4, 6)) < 0.7
    keep[:, 0] = mask_kind != "fully_masked"
    causal = mask_kind == "causal"
    if mask_kind == "float":
        arrays.append(_arr(rng, 4, 6))
    elif not causal:
        arrays.append(keep)
    check_op(
        lambda *t: F.scaled_dot_product_attention(*t, is_causal=causal),
        lambda *t: TF.scaled_dot_product_attention(*t, is_causal=causal),
        arrays,
        device,
    )
    check_grad(lambda *t: F.scaled_dot_product_attention(*t, is_causal=causal), arrays, device)
