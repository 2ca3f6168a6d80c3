"""Arithmetic: ``+ - * / ** @`` and negation, against PyTorch and finite differences.

Every binary op broadcasts, so its backward must *sum the gradient back* to each input's
shape. Hypothesis draws pairs of broadcastable shapes (scalars and size-1 axes included),
which is where a hand-written backward usually goes wrong.
"""

from __future__ import annotations

import operator

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import sparkgrad as sg
import sparkgrad.autodiff.functional as F

FAST = settings(max_examples=20, deadline=None)
PAIRS = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4)
SMALL_PAIRS = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)
SEEDS = st.integers(0, 2**32 - 1)


def _arrays(shapes, seed, positive=(), away_from_zero=()):
    """float32 inputs of the given shapes; some strictly positive, some kept away from 0."""
    rng = np.random.default_rng(seed)
    out = []
    for i, shape in enumerate(shapes):
        a = rng.standard_normal(shape).astype(np.float32)
        if i in positive:
            a = np.abs(a) + 0.5
        if i in away_from_zero:
            a = np.where(a >= 0, a + 0.5, a - 0.5).astype(np.float32)
        out.append(a)
    return out


BINARY = {
    "add": (operator.add, {}),
    "sub": (operator.sub, {}),
    "mul": (operator.mul, {}),
    "div": (operator.truediv, {"away_from_zero": (1,)}),
    "pow": (operator.pow, {"positive": (0,)}),  # a ** b with real b needs a > 0
}


@pytest.mark.parametrize("name", BINARY)
@FAST
@given(shapes=PAIRS, seed=SEEDS)
def test_binary_op_broadcasting_matches_torch(name, shapes, seed, device, check_op):
    """Forward values and both input gradients equal torch's for any broadcastable shapes."""
    op, kinds = BINARY[name]
    check_op(op, op, _arrays(shapes.input_shapes, seed, **kinds), device)


@pytest.mark.parametrize("name", BINARY)
@settings(max_examples=10, deadline=None)
@given(shapes=SMALL_PAIRS, seed=SEEDS)
def test_binary_op_gradcheck(name, shapes, seed, device, check_grad):
    """The analytic gradient equals central finite differences in float64."""
    op, kinds = BINARY[name]
    check_grad(op, _arrays(shapes.input_shapes, seed, **kinds), device)


REFLECTED = {
    "2 + x": (lambda x: 2 + x, {}),
    "2 - x": (lambda x: 2 - x, {}),
    "2 * x": (lambda x: 2 * x, {}),
    "2 / x": (lambda x: 2 / x, {"away_from_zero": (0,)}),
    "2 ** x": (lambda x: 2**x, {}),
    "x ** 3": (lambda x: x**3, {}),
    "x ** 0.5": (lambda x: x**0.5, {"positive": (0,)}),
    "-x": (lambda x: -x, {}),
}


@pytest.mark.parametrize("name", REFLECTED)
@FAST
@given(shape=st.lists(st.integers(1, 4), max_size=3).map(tuple), seed=SEEDS)
def test_python_scalar_operand_matches_torch(name, shape, seed, device, check_op, check_grad):
    """A Python number on either side keeps float32 and gives torch's value and gradient."""
    fn, kinds = REFLECTED[name]
    arrays = _arrays([shape], seed, **kinds)
    check_op(fn, fn, arrays, device)
    check_grad(fn, arrays, device)


@pytest.mark.parametrize(
    "op",
    [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow, operator.matmul],
)
def test_ndarray_on_the_left_uses_the_tensor_operator(op):
    """``ndarray (op) Tensor`` must give a Tensor with a gradient, not an object array."""
    rng = np.random.default_rng(0)
    arr = np.abs(rng.standard_normal((3, 4)).astype(np.float32)) + 1.0
    if op is not operator.matmul:
        arr = arr[:, :1]  # (3, 1) broadcast against (4,)
    x_np = rng.standard_normal((4,)).astype(np.float32) + 3.0
    x = sg.tensor(x_np, requires_grad=True)
    t = torch.tensor(x_np, requires_grad=True)
    out = op(arr, x)
    t_out = op(torch.tensor(arr), t)
    assert isinstance(out, sg.Tensor) and out.shape == tuple(t_out.shape)
    np.testing.assert_allclose(out.detach().numpy(), t_out.detach().numpy(), rtol=1e-5, atol=1e-6)
    out.sum().backward()
    t_out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_pow_at_zero_and_negative_base_matches_torch():
    """0 ** b: d/db is 0 (log 0 is avoided); (-2) ** 2: d/db is NaN (ln of a negative), as torch."""
    a_np = np.array([0.0, 0.0, 2.0, -2.0], dtype=np.float32)
    b_np = np.array([2.0, 3.0, 1.5, 2.0], dtype=np.float32)
    a, b = sg.tensor(a_np, requires_grad=True), sg.tensor(b_np, requires_grad=True)
    ta, tb = torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)
    (a**b).sum().backward()
    (ta**tb).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-5, atol=1e-6)


# ---- matmul -----------------------------------------------------------------------------
MATMUL_SHAPES = [
    ((3,), (3,)),  # dot product -> scalar
    ((3,), (3, 4)),  # vector @ matrix
    ((2, 3), (3,)),  # matrix @ vector
    ((2, 3), (3, 4)),
    ((5, 2, 3), (3, 4)),  # batched @ matrix
    ((3,), (5, 3, 4)),  # vector @ batched
    ((5, 2, 3), (3,)),  # batched @ vector
    ((2, 1, 2, 3), (5, 3, 4)),  # batch dims broadcast: (2,1) with (5,) -> (2,5)
    ((1, 2, 3), (4, 3, 2)),
]


@pytest.mark.parametrize("shape_a,shape_b", MATMUL_SHAPES)
def test_matmul_1d_2d_batched_matches_torch(shape_a, shape_b, device, check_op, check_grad):
    """``@`` promotes 1-D operands and broadcasts batch dims exactly like ``torch.matmul``.

    Tolerance: atol 1e-5 because BLAS and torch sum the inner products in a different
    order (float32 rounding of up to 3 products of N(0,1) values).
    """
    arrays = [
        np.random.default_rng(1).standard_normal(s).astype(np.float32) for s in (shape_a, shape_b)
    ]
    check_op(operator.matmul, operator.matmul, arrays, device, atol=1e-5)
    check_op(F.matmul, torch.matmul, arrays, device, atol=1e-5)
    check_grad(operator.matmul, arrays, device)


@FAST
@given(
    batch=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3),
    n=st.integers(1, 4),
    k=st.integers(1, 4),
    m=st.integers(1, 4),
    seed=SEEDS,
)
def test_matmul_broadcast_batches_matches_torch(batch, n, k, m, seed, device, check_op):
    """Random batch shapes on both sides: the batch gradient is summed back like torch."""
    sa, sb = batch.input_shapes
    arrays = _arrays([sa + (n, k), sb + (k, m)], seed)
    check_op(operator.matmul, operator.matmul, arrays, device, atol=1e-5)


def _raises_like_torch(ours, theirs):
    """Both calls raise, the same exception type with the same message."""
    with pytest.raises(Exception) as want:
        theirs()
    with pytest.raises(type(want.value)) as got:
        ours()
    assert str(got.value) == str(want.value)


def test_bmm_and_dot_match_torch(device, check_op, check_grad):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 4, 5))
    u, v = rng.standard_normal(6), rng.standard_normal(6)
    for fn, args in ((lambda x, y: x.bmm(y), (a, b)), (lambda x, y: x.dot(y), (u, v))):
        check_op(fn, fn, [x.astype(np.float32) for x in args], device)
        check_grad(fn, list(args), device)
    check_op(sg.bmm, torch.bmm, [a.astype(np.float32), b.astype(np.float32)], device)
    check_op(sg.dot, torch.dot, [u.astype(np.float32), v.astype(np.float32)], device)


@pytest.mark.parametrize(
    "shapes, dtypes",
    [
        (((2, 3), (2, 3, 4)), "ff"),  # bmm: batch1 not 3-D
        (((2, 3, 4), (4, 5)), "ff"),  # bmm: batch2 not 3-D
        (((2, 3, 4), (3, 4, 5)), "ff"),  # bmm: batch sizes differ
        (((2, 3, 4), (2, 3, 5)), "ff"),  # bmm: inner sizes differ
    ],
)
def test_bmm_errors_are_torchs(shapes, dtypes):
    a, b = (np.zeros(s, np.float32) for s in shapes)
    _raises_like_torch(
        lambda: sg.bmm(sg.tensor(a), sg.tensor(b)),
        lambda: torch.bmm(torch.tensor(a), torch.tensor(b)),
    )


@pytest.mark.parametrize(
    "a, b",
    [
        (np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32)),
        (np.zeros(3, np.float32), np.zeros(4, np.float32)),
        (np.zeros(3, np.float32), np.zeros(3, np.float64)),
    ],
)
def test_dot_errors_are_torchs(a, b):
    _raises_like_torch(
        lambda: sg.dot(sg.tensor(a), sg.tensor(b)),
        lambda: torch.dot(torch.tensor(a), torch.tensor(b)),
    )
