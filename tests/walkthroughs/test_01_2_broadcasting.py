"""Walkthrough 1.2 — broadcasting, and why the gradient of a broadcast input is a sum.

Adding a bias to a batch looks like this::

    y = x + b        x: (N, D)  a batch of N rows      b: (D,)  one bias vector

NumPy (and PyTorch, and sparkgrad) *broadcast* ``b``: it is used as if it were copied
into every one of the N rows. Nothing is actually copied, but mathematically every
``b[j]`` now influences N outputs ``y[0, j], y[1, j], ..., y[N-1, j]``.

Walkthrough 1.1 showed that when a value feeds several paths, the chain rule **adds** the
gradients of the paths. So::

    dL/db[j] = Σ_i dL/dy[i, j]  · dy[i, j]/db[j] = Σ_i g[i, j]      (a sum over the batch)

The general rule: a gradient arriving in the broadcast (bigger) shape is summed over
every axis that broadcasting *added* (leading axes) or *stretched* (size-1 axes), until
it has the input's shape again. sparkgrad does this in exactly one place,
``sparkgrad.autodiff.graph.sum_to_shape``, so no op has to think about it.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sparkgrad as sg
from sparkgrad.autodiff.graph import sum_to_shape
from sparkgrad.errors import ShapeError


def _pair(array: np.ndarray) -> tuple[sg.Tensor, torch.Tensor]:
    """The same float64 values as a sparkgrad leaf and a torch leaf."""
    return (
        sg.tensor(array, dtype=sg.float64, requires_grad=True),
        torch.tensor(array, dtype=torch.float64, requires_grad=True),
    )


def test_bias_gradient_is_the_batch_sum():
    """y = x + b with an upstream gradient g: b.grad = g summed over the N rows, x.grad = g."""
    rng = np.random.default_rng(0)
    x = sg.tensor(rng.standard_normal((4, 3)), dtype=sg.float64, requires_grad=True)
    b = sg.tensor(rng.standard_normal(3), dtype=sg.float64, requires_grad=True)
    g = rng.standard_normal((4, 3))  # pretend this is dL/dy from the layers above

    y = x + b
    assert y.shape == (4, 3)
    y.backward(sg.tensor(g, dtype=sg.float64))

    assert b.grad.shape == (3,)  # the gradient has the shape of the input, not of y
    np.testing.assert_allclose(b.grad.numpy(), g.sum(axis=0), rtol=1e-15)
    np.testing.assert_allclose(x.grad.numpy(), g, rtol=0)  # x was not broadcast: unchanged


def test_outer_sum_stretches_both_inputs():
    """(3, 1) + (1, 4) -> (3, 4): column a is stretched along axis 1, row c along axis 0.

    With L = Σ y, every output has gradient 1, so a[i] collects 4 ones and c[j] 3 ones.
    """
    a = sg.tensor(np.arange(3.0).reshape(3, 1), dtype=sg.float64, requires_grad=True)
    c = sg.tensor(np.arange(4.0).reshape(1, 4), dtype=sg.float64, requires_grad=True)
    (a + c).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full((3, 1), 4.0))
    np.testing.assert_array_equal(c.grad.numpy(), np.full((1, 4), 3.0))


def test_scalar_scale_collects_every_element():
    """y = s·x with a scalar s: ds = Σ_ij g[i, j]·x[i, j] — one number summarising all uses."""
    rng = np.random.default_rng(1)
    xv, gv = rng.standard_normal((2, 5)), rng.standard_normal((2, 5))
    s = sg.tensor(0.5, dtype=sg.float64, requires_grad=True)
    x = sg.tensor(xv, dtype=sg.float64, requires_grad=True)
    (s * x).backward(sg.tensor(gv, dtype=sg.float64))
    assert s.grad.shape == ()
    assert s.grad.item() == pytest.approx(float((gv * xv).sum()), rel=1e-13)
    np.testing.assert_allclose(x.grad.numpy(), 0.5 * gv, rtol=1e-15)


def test_explicit_expand_gives_the_same_gradient():
    """``b.expand(N, D)`` spells out what broadcasting does implicitly; the gradients agree."""
    rng = np.random.default_rng(2)
    xv, bv = rng.standard_normal((5, 3)), rng.standard_normal(3)
    grads = []
    for explicit in (False, True):
        x = sg.tensor(xv, dtype=sg.float64)
        b = sg.tensor(bv, dtype=sg.float64, requires_grad=True)
        y = x * (b.expand(5, 3) if explicit else b)
        (y * y).sum().backward()
        grads.append(b.grad.numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-15)


def test_sum_to_shape_is_the_reduction():
    """The helper itself: it sums leading axes and stretched size-1 axes, keeps the rest."""
    g = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
    np.testing.assert_array_equal(sum_to_shape(g, (3, 4)), g.sum(axis=0))
    np.testing.assert_array_equal(sum_to_shape(g, (3, 1)), g.sum(axis=(0, 2))[:, None])
    np.testing.assert_array_equal(sum_to_shape(g, (1, 1, 1)), g.sum(keepdims=True))
    np.testing.assert_array_equal(sum_to_shape(g, ()), g.sum())
    assert sum_to_shape(g, g.shape) is g  # nothing to undo


# Shape pairs that broadcast, from the everyday bias-add to both inputs being stretched.
SHAPE_PAIRS = [
    ((8, 4), (4,)),  # bias add
    ((8, 4), (8, 1)),  # per-row scale
    ((2, 3, 4), (3, 1)),  # leading axis added, last axis stretched
    ((1, 5), (6, 1)),  # both stretched
    ((3,), ()),  # scalar
]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize(("shape_a", "shape_b"), SHAPE_PAIRS)
def test_broadcast_gradients_match_torch(op: str, shape_a: tuple, shape_b: tuple):
    """For each op and each pair of shapes, the reduced gradients equal PyTorch's."""
    rng = np.random.default_rng(3)
    av = rng.standard_normal(shape_a)
    bv = rng.uniform(0.5, 2.0, shape_b)  # away from 0, so division is tame
    gv = rng.standard_normal(np.broadcast_shapes(shape_a, shape_b))
    a, ta = _pair(av)
    b, tb = _pair(bv)

    out = {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b}[op]
    tout = {"add": ta + tb, "sub": ta - tb, "mul": ta * tb, "div": ta / tb}[op]
    out.backward(sg.tensor(gv, dtype=sg.float64))
    tout.backward(torch.tensor(gv))

    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-14)
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-12, atol=1e-14)


@settings(max_examples=15, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(1, 4),
    st.booleans(),
    st.booleans(),
)
def test_gradcheck_on_random_broadcasts(rows: int, cols: int, a_row: bool, b_col: bool):
    """Finite differences agree for randomly chosen stretched axes (a is (1, cols) or full)."""
    rng = np.random.default_rng(rows * 10 + cols)
    a = sg.tensor(
        rng.standard_normal((1 if a_row else rows, cols)), dtype=sg.float64, requires_grad=True
    )
    b = sg.tensor(
        rng.standard_normal((rows, 1 if b_col else cols)), dtype=sg.float64, requires_grad=True
    )
    assert sg.gradcheck(lambda p, q: (p * q + p).tanh(), [a, b])


def test_shapes_that_do_not_broadcast_raise_shape_error():
    """(3, 4) + (3,) does not broadcast (trailing 4 vs 3): a clear ShapeError, not a crash."""
    with pytest.raises(ShapeError, match=r"\(3, 4\) and \(3,\)"):
        sg.ones(3, 4) + sg.ones(3)
