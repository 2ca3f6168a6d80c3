"""Walkthrough 8.1 — attention's backward, derived in three steps from walkthroughs 1.3 and 2.1.

Scaled dot-product attention mixes the values ``V`` with weights that say how well each
query matches each key. For ``Q (L, E)``, ``K (S, E)``, ``V (S, Ev)`` and a mask ``M``::

    S = scale · Q Kᵀ + M        scores (L, S); scale = 1/sqrt(E); M is 0 or -inf (or any float)
    P = softmax(S)              each row of P sums to 1
    O = P V                     output (L, Ev)

Given ``dO = dL/dO`` the backward runs the forward in reverse, one walkthrough per line:

1. ``O = P V`` is a matrix product (walkthrough 1.3)::

       dV = Pᵀ dO          dP = dO Vᵀ

2. ``P = softmax(S)`` works row by row with the Jacobian ``J = diag(p) − p pᵀ`` (walkthrough 2.1).
   ``J`` is symmetric, so a row's gradient is ``J dp = p ∘ dp − p (pᵀ dp)``; for all rows::

       dS = P ∘ (dP − rowsum(dP ∘ P))

   No ``L × S × S`` Jacobian is ever built: one elementwise product and one row sum.
3. ``S = scale · Q Kᵀ + M`` is a product again, times a constant, plus a constant::

       dQ = scale · dS K      dK = scale · dSᵀ Q      (dM = dS, for a learned float mask)

Two consequences come for free. A masked score has ``P = 0``, so ``dS = 0`` there: a key
nobody may see gets no gradient. And a row that may see *nothing* (all -inf) has no
softmax at all; PyTorch defines its output as 0, and then every gradient through it is 0.

sparkgrad runs the whole thing as ONE op (``F.scaled_dot_product_attention``,
:mod:`sparkgrad.autodiff.ops.attention`): the backward is exactly the five lines above,
and the graph holds one node that keeps ``Q, K, V, P`` instead of five nodes and their
intermediates. Each step is checked here against finite differences and PyTorch.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import sparkgrad as sg
import sparkgrad.nn.functional as F

L, S, E, EV = 4, 5, 3, 2
SCALE = 1 / np.sqrt(E)


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(s) for s in ((L, E), (S, E), (S, EV), (L, EV)))


def _softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _leaf(a: np.ndarray) -> sg.Tensor:
    return sg.tensor(a, dtype=sg.float64, requires_grad=True)


def _fused_grads(q, k, v, d_out, mask=None):
    """Output and the three gradients from sparkgrad's fused op (float64)."""
    tq, tk, tv = _leaf(q), _leaf(k), _leaf(v)
    m = None if mask is None else sg.tensor(mask)
    out = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=m)
    out.backward(sg.tensor(d_out, dtype=sg.float64))
    return out.detach().numpy(), tq.grad.numpy(), tk.grad.numpy(), tv.grad.numpy()


def _count_ops(t: sg.Tensor) -> int:
    """How many op nodes the graph behind ``t`` holds (walked through next_functions)."""
    seen, todo = set(), [t.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen or node.name() == "AccumulateGrad":
            continue
        seen.add(id(node))
        todo.extend(f for f, _ in node.next_functions)
    return len(seen)


def _numeric_grad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f at x, one entry at a time."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f(x)
        x[i] = old - h
        down = f(x)
        x[i] = old
        g[i] = (up - down) / (2 * h)
    return g


def test_the_forward_is_three_lines():
    """S, P, O written out in NumPy equal the fused op and PyTorch's."""
    q, k, v, _ = _data()
    p = _softmax(SCALE * q @ k.T)
    assert np.allclose(p.sum(axis=1), 1)
    out = F.scaled_dot_product_attention(*(sg.tensor(a) for a in (q, k, v))).numpy()
    np.testing.assert_allclose(out, p @ v, rtol=1e-13)
    ref = TF.scaled_dot_product_attention(*(torch.tensor(a) for a in (q, k, v))).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-12)


def test_step1_the_value_product():
    """O = P V: dV = Pᵀ dO and dP = dO Vᵀ, by finite differences of L = Σ dO ∘ (P V)."""
    q, k, v, d_out = _data(1)
    p = _softmax(SCALE * q @ k.T)
    dv_numeric = _numeric_grad(lambda vv: (d_out * (p @ vv)).sum(), v.copy())
    dp_numeric = _numeric_grad(lambda pp: (d_out * (pp @ v)).sum(), p.copy())
    np.testing.assert_allclose(dv_numeric, p.T @ d_out, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(dp_numeric, d_out @ v.T, rtol=1e-7, atol=1e-9)
    _, _, _, dv = _fused_grads(q, k, v, d_out)
    np.testing.assert_allclose(dv, p.T @ d_out, rtol=1e-12)


def test_step2_the_softmax_jacobian_of_one_row():
    """For one row, J = diag(p) − p pᵀ (finite differences), and J dp = p ∘ (dp − p·dp)."""
    rng = np.random.default_rng(2)
    s, dp = rng.standard_normal(S), rng.standard_normal(S)
    p = _softmax(s)
    jac = np.stack([_numeric_grad(lambda x, i=i: _softmax(x)[i], s.copy()) for i in range(S)])
    np.testing.assert_allclose(jac, np.diag(p) - np.outer(p, p), atol=1e-9)
    np.testing.assert_allclose(jac.T @ dp, p * (dp - p @ dp), atol=1e-9)


def test_step2_all_rows_at_once():
    """dS = P ∘ (dP − rowsum(dP ∘ P)) equals PyTorch's softmax backward for every row."""
    rng = np.random.default_rng(3)
    s, dp = rng.standard_normal((L, S)), rng.standard_normal((L, S))
    p = _softmax(s)
    ts = torch.tensor(s, requires_grad=True)
    torch.softmax(ts, dim=-1).backward(torch.tensor(dp))
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    np.testing.assert_allclose(ds, ts.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_step3_the_score_product():
    """S = scale·Q Kᵀ: dQ = scale·dS K and dK = scale·dSᵀ Q — the whole chain by hand
    equals the fused op's gradients and PyTorch's."""
    q, k, v, d_out = _data(4)
    p = _softmax(SCALE * q @ k.T)
    dp = d_out @ v.T  # step 1
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))  # step 2
    dq, dk = SCALE * ds @ k, SCALE * ds.T @ q  # step 3
    _, gq, gk, gv = _fused_grads(q, k, v, d_out)
    np.testing.assert_allclose(gq, dq, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gk, dk, rtol=1e-12, atol=1e-15)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    TF.scaled_dot_product_attention(tq, tk, tv).backward(torch.tensor(d_out))
    for ours, theirs in ((gq, tq), (gk, tk), (gv, tv)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_finite_differences_agree_with_the_fused_backward():
    """sg.gradcheck nudges every entry of Q, K, V (and of a float mask M: dM = dS)."""
    q, k, v, _ = _data(5)
    m = np.random.default_rng(6).standard_normal((L, S))
    inputs = [_leaf(a) for a in (q, k, v, m)]
    assert sg.gradcheck(lambda *t: F.scaled_dot_product_attention(*t[:3], attn_mask=t[3]), inputs)


def test_a_masked_key_gets_no_gradient():
    """Key 2 hidden from every query: P[:, 2] = 0, so dS[:, 2] = 0, and K[2], V[2] get 0."""
    q, k, v, d_out = _data(7)
    keep = np.ones((L, S), bool)
    keep[:, 2] = False
    _, _, gk, gv = _fused_grads(q, k, v, d_out, keep)
    assert (gk[2] == 0).all() and (gv[2] == 0).all()
    assert np.abs(gk[[0, 1, 3, 4]]).min() > 0


def test_a_row_that_sees_nothing_is_zero():
    """Query 1 may attend no key: softmax of all -inf is 0/0; PyTorch (2.13, CPU) returns 0
    there, so do we, and the gradients through that row vanish (Q[1] gets exactly 0)."""
    q, k, v, d_out = _data(8)
    keep = np.ones((L, S), bool)
    keep[1] = False
    out, gq, _, _ = _fused_grads(q, k, v, d_out, keep)
    assert (out[1] == 0).all() and (gq[1] == 0).all()
    ref = TF.scaled_dot_product_attention(*(torch.tensor(a) for a in (q, k, v)),
                                          attn_mask=torch.tensor(keep))  # fmt: skip
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-12)


def test_dropout_multiplies_dp_by_the_same_mask():
    """Dropout on P: O = (P ∘ D/(1-p)) V, so dV uses the dropped P and dP = (dO Vᵀ) ∘ D/(1-p)
    before step 2 (which still uses the undropped P). With V = identity the output *is*
    the dropped P, which lets the test read D back and rebuild dQ by hand."""
    rng = np.random.default_rng(9)
    q, k, d_out = (
        rng.standard_normal((L, E)),
        rng.standard_normal((S, E)),
        rng.standard_normal((L, S)),
    )
    tq, tk, tv = _leaf(q), _leaf(k), _leaf(np.eye(S))
    sg.manual_seed(0)
    out = F.scaled_dot_product_attention(tq, tk, tv, dropout_p=0.5)
    out.backward(sg.tensor(d_out, dtype=sg.float64))
    p = _softmax(SCALE * q @ k.T)
    factor = out.detach().numpy() / p  # D/(1-p): 0 or 2
    assert set(np.round(factor, 12).ravel()) <= {0.0, 2.0}
    dp = (d_out @ np.eye(S)) * factor
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    np.testing.assert_allclose(tq.grad.numpy(), SCALE * ds @ k, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
def test_one_fused_node_equals_the_composition(batch):
    """The same maths from five separate ops (matmul, scale, mask, softmax, matmul) gives
    the same numbers; the fused graph has one node where the composition has five."""
    rng = np.random.default_rng(10)
    shapes = [batch + s for s in ((L, E), (S, E), (S, EV))]
    arrays = [rng.standard_normal(s) for s in shapes]
    mask = np.where(rng.random((L, S)) < 0.3, -np.inf, 0.0)
    mask[:, 0] = 0

    fused = [_leaf(a) for a in arrays]
    out = F.scaled_dot_product_attention(*fused, attn_mask=sg.tensor(mask))
    assert out.grad_fn.name() == "ScaledDotProductAttentionBackward"
    assert _count_ops(out) == 1

    comp = [_leaf(a) for a in arrays]
    scores = (comp[0] @ comp[1].transpose(-2, -1)) * SCALE + sg.tensor(mask)
    out2 = sg.softmax(scores, dim=-1) @ comp[2]
    assert _count_ops(out2) >= 5  # transpose, matmul, scale, mask, softmax, matmul
    out.sum().backward()
    out2.sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), out2.detach().numpy(), rtol=1e-12)
    for a, b in zip(fused, comp):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-14)
