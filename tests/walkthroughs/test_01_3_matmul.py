"""Walkthrough 1.3 — the gradient of a matrix product, derived and checked.

Take ``C = A @ B`` with ``A`` of shape (m, k) and ``B`` of shape (k, n)::

    C[i, j] = Σ_p A[i, p] · B[p, j]

Let ``g = dL/dC`` (shape (m, n)) arrive from above. One entry ``A[i, p]`` appears in the
whole row ``C[i, :]``, multiplied by ``B[p, j]`` in column j. The chain rule adds those
uses up (walkthroughs 1.1 and 1.2)::

    dL/dA[i, p] = Σ_j g[i, j] · B[p, j] = (g @ Bᵀ)[i, p]        ->  dL/dA = g @ Bᵀ   (m, k)
    dL/dB[p, j] = Σ_i A[i, p] · g[i, j] = (Aᵀ @ g)[p, j]        ->  dL/dB = Aᵀ @ g   (k, n)

A handy way to remember it: the gradient of each input must have that input's shape, and
there is only one way to combine ``g`` (m, n) with the *other* operand to get it.

A 1-D operand is treated as a row (on the left) or a column (on the right) and the extra
axis removed again; leading "batch" axes broadcast exactly like walkthrough 1.2, so a shared
matrix used by every batch element gets the *sum* of the per-batch gradients.
"""

import numpy as np
import pytest
import torch

import sparkgrad as sg
from sparkgrad.errors import ShapeError


def _leaf(array: np.ndarray) -> sg.Tensor:
    return sg.tensor(array, dtype=sg.float64, requires_grad=True)


def test_gradient_entry_by_entry():
    """The sums above, written as loops over a 2x3 @ 3x2 product, equal A.grad and B.grad."""
    rng = np.random.default_rng(0)
    av, bv, g = (
        rng.standard_normal((2, 3)),
        rng.standard_normal((3, 2)),
        rng.standard_normal((2, 2)),
    )
    a, b = _leaf(av), _leaf(bv)
    (a @ b).backward(sg.tensor(g, dtype=sg.float64))

    m, k = av.shape
    n = bv.shape[1]
    da, db = np.zeros((m, k)), np.zeros((k, n))
    for i in range(m):
        for p in range(k):
            for j in range(n):
                da[i, p] += g[i, j] * bv[p, j]  # C[i, j] used A[i, p] with weight B[p, j]
                db[p, j] += av[i, p] * g[i, j]  # ... and B[p, j] with weight A[i, p]
    np.testing.assert_allclose(a.grad.numpy(), da, rtol=1e-13)
    np.testing.assert_allclose(b.grad.numpy(), db, rtol=1e-13)


def test_gradient_formulas_and_shapes():
    """dL/dA = g @ Bᵀ has A's shape (m, k); dL/dB = Aᵀ @ g has B's shape (k, n)."""
    rng = np.random.default_rng(1)
    av, bv, g = (
        rng.standard_normal((4, 3)),
        rng.standard_normal((3, 5)),
        rng.standard_normal((4, 5)),
    )
    a, b = _leaf(av), _leaf(bv)
    (a @ b).backward(sg.tensor(g, dtype=sg.float64))
    assert a.grad.shape == (4, 3) and b.grad.shape == (3, 5)
    np.testing.assert_allclose(a.grad.numpy(), g @ bv.T, rtol=1e-13)
    np.testing.assert_allclose(b.grad.numpy(), av.T @ g, rtol=1e-13)


def test_gradient_matches_finite_differences():
    """Nudge every entry of A and B: the slopes agree with backward (``sg.gradcheck``)."""
    sg.manual_seed(3)
    a = sg.randn(3, 4, dtype=sg.float64, requires_grad=True)
    b = sg.randn(4, 2, dtype=sg.float64, requires_grad=True)
    assert sg.gradcheck(lambda x, y: x @ y, [a, b])
    # a small network-like chain: the product feeds a non-linearity and another product
    c = sg.randn(2, 3, dtype=sg.float64, requires_grad=True)
    assert sg.gradcheck(lambda x, y, z: (x @ y).tanh() @ z, [a, b, c])


# (shape of A, shape of B): matrices, vectors on either side, batches that broadcast.
MATMUL_SHAPES = [
    ((4, 3), (3, 5)),  # matrix @ matrix
    ((3,), (3, 5)),  # vector @ matrix: the vector acts as a (1, 3) row
    ((4, 3), (3,)),  # matrix @ vector: the vector acts as a (3, 1) column
    ((3,), (3,)),  # dot product: a scalar result
    ((2, 4, 3), (3, 5)),  # batch @ shared matrix: B's gradient sums over the batch
    ((2, 4, 3), (2, 3, 5)),  # batch @ batch
    ((2, 1, 4, 3), (3, 3, 5)),  # batch axes broadcast against each other
]


@pytest.mark.parametrize(("shape_a", "shape_b"), MATMUL_SHAPES)
def test_matmul_matches_torch(shape_a: tuple, shape_b: tuple):
    """Values and both gradients equal PyTorch's for every layout above."""
    rng = np.random.default_rng(4)
    av, bv = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    a, b = _leaf(av), _leaf(bv)
    ta = torch.tensor(av, requires_grad=True)
    tb = torch.tensor(bv, requires_grad=True)

    out, tout = a @ b, ta @ tb
    assert out.shape == tuple(tout.shape)
    gv = rng.standard_normal(tout.shape)
    out.backward(sg.tensor(gv, dtype=sg.float64))
    tout.backward(torch.tensor(gv))

    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-12)
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-12, atol=1e-13)


def test_shared_matrix_gets_the_sum_of_batch_gradients():
    """Using W for 3 batch elements at once equals using it 3 times separately and adding."""
    rng = np.random.default_rng(5)
    xv, wv = rng.standard_normal((3, 2, 4)), rng.standard_normal((4, 6))
    w_batched = _leaf(wv)
    (sg.tensor(xv, dtype=sg.float64) @ w_batched).sum().backward()

    w_loop = _leaf(wv)
    for i in range(3):
        (sg.tensor(xv[i], dtype=sg.float64) @ w_loop).sum().backward()  # .grad accumulates
    np.testing.assert_allclose(w_batched.grad.numpy(), w_loop.grad.numpy(), rtol=1e-13)


def test_float32_matmul_matches_torch():
    """Training runs in float32: a 64x784 @ 784x256 product and its gradients agree closely."""
    rng = np.random.default_rng(6)
    av = rng.standard_normal((64, 784)).astype(np.float32)
    bv = (rng.standard_normal((784, 256)) * 0.03).astype(np.float32)
    a, b = sg.tensor(av, requires_grad=True), sg.tensor(bv, requires_grad=True)
    ta, tb = torch.tensor(av, requires_grad=True), torch.tensor(bv, requires_grad=True)
    (a @ b).tanh().sum().backward()
    (ta @ tb).tanh().sum().backward()
    assert a.grad.dtype == np.float32
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_inner_dimensions_must_agree():
    """(2, 3) @ (2, 3): 3 columns meet 2 rows — a ShapeError that names both shapes."""
    with pytest.raises(ShapeError, match=r"\(2, 3\) and \(2, 3\)"):
        sg.ones(2, 3) @ sg.ones(2, 3)
