"""The fast paths of :mod:`sparkgrad.autodiff.ops.fused` compute the ops' plain formulas.

Each helper is checked against PyTorch (float32, rtol 1e-5 / atol 1e-6), against the exact
function in float64 (SciPy), and, for the derivatives, against finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special as ss
import torch

import sparkgrad as sg
import sparkgrad.autodiff.functional as F
from sparkgrad.autodiff.ops import fused

GRID = np.linspace(-12, 12, 200001).astype(np.float32)


def test_erfc_nonnegative_keeps_its_relative_precision():
    """Numerical Recipes' fit: relative error < 1.2e-7 in float64, on all of z >= 0."""
    z = np.linspace(0, 9, 100001)
    exact = ss.erfc(z)
    assert np.max(np.abs(fused.erfc_nonnegative_(z.copy()) - exact) / exact) < 1.2e-7


def test_normal_cdf_fast_is_float32_accurate():
    """Within 2.5e-7 of the exact Φ everywhere, and relatively accurate in the left tail."""
    exact = ss.ndtr(GRID.astype(np.float64))
    fast = fused.normal_cdf_fast(GRID)
    assert fast.dtype == np.float32
    assert np.max(np.abs(fast - exact)) < 2.5e-7
    tail = (GRID < -3) & (exact > 1e-30)
    assert np.max(np.abs(fast[tail] - exact[tail]) / exact[tail]) < 2e-5


def test_normal_cdf_fast_slope_is_the_normal_density():
    """The approximation's own derivative (central differences, float64) is φ: backward may
    use the exact φ(a) = e^(−a²/2)/√(2π) with the fast Φ in forward."""
    a = np.linspace(-8, 8, 4000)  # an even count: 0 is not on the grid
    h = 1e-5
    slope = (fused.normal_cdf_fast(a + h) - fused.normal_cdf_fast(a - h)) / (2 * h)
    np.testing.assert_allclose(slope, np.exp(-a * a / 2) / np.sqrt(2 * np.pi), atol=5e-6)
    # the two halves (h and 1 − h) meet at 0 with a step of 2·|½erfc(0) − ½| < 1.2e-7
    jump = fused.normal_cdf_fast(np.array([1e-300])) - fused.normal_cdf_fast(np.array([-1e-300]))
    assert abs(jump[0]) < 1.2e-7


def test_gelu_fast_path_matches_torch_and_the_exact_gelu():
    """Float32 GELU (the fast Φ) and its gradient equal torch's, and stay within 5e-7 of the
    exact a·Φ(a). (torch's own float32 GELU is off by up to 1.1e-6 near a = ±3.49, so on
    those few inputs it is torch that is further from the exact value.)"""
    x = np.random.default_rng(0).standard_normal(4096).astype(np.float32) * 2
    x = x[np.abs(np.abs(x) - 3.48) > 0.03]
    g = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    sx, tx = sg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, ref = F.gelu(sx), torch.nn.functional.gelu(tx)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    out.backward(sg.tensor(g))
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(sx.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    exact = GRID.astype(np.float64) * ss.ndtr(GRID.astype(np.float64))
    assert np.max(np.abs(F.gelu(sg.tensor(GRID)).numpy() - exact)) < 5e-7


def test_gelu_backward_equals_the_plain_formula():
    """g·(Φ + a·φ), computed in place, gives the plain expression's numbers (float64)."""
    rng = np.random.default_rng(2)
    a, g = rng.standard_normal((2, 50, 7))
    cdf = ss.ndtr(a)
    plain = g * (cdf + a * np.exp(-0.5 * a * a) / np.sqrt(2 * np.pi))
    np.testing.assert_allclose(fused.gelu_backward(g, a, cdf), plain, rtol=1e-14, atol=0)


def test_gelu_gradcheck_float64(check_grad):
    """The float64 path (exact erf) with the fused backward against finite differences."""
    x = np.random.default_rng(3).standard_normal((4, 5)) * 3
    check_grad(F.gelu, [x])


def test_gelu_of_a_0d_tensor():
    """0-d inputs: NumPy hands back scalars, which have no in-place ops (the helpers cope)."""
    x = sg.tensor(np.float32(-0.7), requires_grad=True)
    t = torch.tensor(-0.7, requires_grad=True)
    F.gelu(x).backward()
    torch.nn.functional.gelu(t).backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_helpers_equal_the_plain_formulas(affine):
    """Forward and backward of the fused LayerNorm against the textbook NumPy (float64)."""
    rng = np.random.default_rng(4)
    x, g = rng.standard_normal((2, 33, 10)) * 3 + 1
    w, b = (rng.standard_normal(10), rng.standard_normal(10)) if affine else (None, None)
    out, xhat, inv_std = fused.layer_norm_forward(x, w, b, 1e-5)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    xhat_ref = (x - mu) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(out, xhat_ref * w + b if affine else xhat_ref, rtol=1e-12)
    dx, dw, db = fused.layer_norm_backward(g, xhat, inv_std, w, affine, affine)
    gh = g * w if affine else g
    dx_ref = gh - gh.mean(-1, keepdims=True) - xhat_ref * (gh * xhat_ref).mean(-1, keepdims=True)
    np.testing.assert_allclose(dx, dx_ref / np.sqrt(var + 1e-5), rtol=1e-10, atol=1e-12)
    if affine:
        np.testing.assert_allclose(dw, (g * xhat_ref).sum(0), rtol=1e-10)
        np.testing.assert_allclose(db, g.sum(0), rtol=1e-12)


def test_layer_norm_gradcheck_float64(check_grad):
    """The op built on the helpers against finite differences, over two normalised dims."""
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((3, 2, 4)), *rng.standard_normal((2, 2, 4))
    check_grad(lambda x, w, b: F.layer_norm(x, (2, 4), w, b), [x, w, b])


@pytest.mark.parametrize("shape", [(3, 2, 5, 64), (4, 7, 9), (2, 1, 6)])
def test_row_max_is_numpys_max(shape):
    """Halving a transposed copy gives exactly the row max, for even and odd row lengths."""
    s = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    s[..., 0, :] = -np.inf  # a dead row
    np.testing.assert_array_equal(fused.row_max(s), s.max(axis=-1, keepdims=True))


def test_softmax_lastdim_equals_the_textbook_softmax():
    """Same numbers as safe_softmax_ (row max, all -inf rows give 0), and torch's softmax."""
    s = np.random.default_rng(7).standard_normal((2, 3, 8, 9)).astype(np.float32) * 4
    s[0, 1, 2] = -np.inf
    s[1, 0, :, :4] = -np.inf
    fast = fused.softmax_lastdim(s)
    np.testing.assert_allclose(fast, fused.safe_softmax_(s.copy()), rtol=1e-6, atol=1e-7)
    assert np.all(fast[0, 1, 2] == 0)
    ref = torch.softmax(torch.tensor(s[1]), dim=-1).numpy()
    np.testing.assert_allclose(fast[1], ref, rtol=1e-5, atol=1e-6)


def test_softmax_backward_equals_the_plain_formula():
    """P ∘ (dP − rowsum(dP ∘ P)), written into dP."""
    rng = np.random.default_rng(8)
    p = fused.safe_softmax_(rng.standard_normal((3, 4, 5)))
    dp = rng.standard_normal(p.shape)
    plain = p * (dp - (dp * p).sum(-1, keepdims=True))
    np.testing.assert_allclose(fused.softmax_backward_(dp.copy(), p), plain, rtol=1e-14)


@pytest.mark.parametrize("n_index", [0, 1, 7, 2048])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_index_add_rows_equals_add_at(n_index, dtype):
    rng = np.random.default_rng(n_index)
    index = rng.integers(0, 13, n_index)  # repeats, and rows no index names
    rows = rng.standard_normal((n_index, 5)).astype(dtype)
    want = np.zeros((13, 5), dtype)
    np.add.at(want, index, rows)
    got = fused.index_add_rows(13, index, rows)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_embedding_backward_equals_torchs_with_repeated_ids():
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((11, 6)).astype(np.float32)
    ids, grad = rng.integers(0, 11, (4, 9)), rng.standard_normal((4, 9, 6)).astype(np.float32)
    w = sg.tensor(weight, requires_grad=True)
    F.embedding(sg.tensor(ids), w, padding_idx=2).backward(sg.tensor(grad))
    tw = torch.tensor(weight, requires_grad=True)
    torch.nn.functional.embedding(torch.tensor(ids), tw, padding_idx=2).backward(torch.tensor(grad))
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-5, atol=1e-6)
