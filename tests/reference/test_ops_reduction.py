"""Reductions: sum, mean, max/min, var/std and argmax/argmin.

A reduction's backward must put the reduced axes back (``keepdim=False`` removed them)
before broadcasting the gradient. Hypothesis draws a shape and a set of axes (negative
ones included); both spellings are checked: NumPy's ``axis``/``keepdims`` and PyTorch's
``dim``/``keepdim``.

``amax``/``amin`` reduce over any set of dims and share the gradient evenly between tied
maxima; ``max(x, dim)``/``min(x, dim)`` reduce one dim and return ``(values, indices)``,
the gradient going to the chosen index only — both exactly as in PyTorch. (The NumPy
spelling ``max(x, axis=...)`` returns the values, as ``np.max``.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

import sparkgrad as sg
import sparkgrad.autodiff.functional as F

FAST = settings(max_examples=20, deadline=None)


@st.composite
def shape_and_dims(draw, min_side=1):
    """A shape of 1-3 dims and a non-empty tuple of distinct axes, some given negatively."""
    shape = draw(array_shapes(min_dims=1, max_dims=3, min_side=min_side, max_side=4))
    axes = draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True))
    axes = tuple(a - len(shape) if draw(st.booleans()) else a for a in axes)
    return shape, axes


def _x(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


REDUCTIONS = {
    "sum": (lambda x, d, k: x.sum(dim=d, keepdim=k), lambda x, d, k: x.sum(dim=d, keepdim=k)),
    "mean": (lambda x, d, k: x.mean(dim=d, keepdim=k), lambda x, d, k: x.mean(dim=d, keepdim=k)),
    "amax": (lambda x, d, k: x.amax(dim=d, keepdim=k), lambda x, d, k: x.amax(dim=d, keepdim=k)),
    "amin": (lambda x, d, k: x.amin(dim=d, keepdim=k), lambda x, d, k: x.amin(dim=d, keepdim=k)),
}


@pytest.mark.parametrize("name", REDUCTIONS)
@FAST
@given(case=shape_and_dims(), keepdim=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_reduction_over_dims_matches_torch(name, case, keepdim, seed, device, check_op):
    """Reduce over any tuple of axes, with or without keepdim: value and gradient as torch."""
    shape, dims = case
    fn, t_fn = REDUCTIONS[name]
    check_op(
        lambda x: fn(x, dims, keepdim), lambda x: t_fn(x, dims, keepdim), [_x(shape, seed)], device
    )


@pytest.mark.parametrize("name", REDUCTIONS)
@settings(max_examples=8, deadline=None)
@given(case=shape_and_dims(), keepdim=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_reduction_gradcheck(name, case, keepdim, seed, device, check_grad):
    """Finite differences agree (random normal values: no ties for amax/amin)."""
    shape, dims = case
    fn, _ = REDUCTIONS[name]
    check_grad(lambda x: fn(x, dims, keepdim), [_x(shape, seed)], device)


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "max", "min"])
def test_full_reduction_and_numpy_spelling(name, device, check_op):
    """No axis reduces all to a 0-d tensor; ``axis``/``keepdims`` equal ``dim``/``keepdim``."""
    x = _x((2, 3, 4), 1)
    t_full = {"max": torch.amax, "min": torch.amin}.get(name, getattr(torch, name))
    check_op(lambda t: getattr(t, name)(), lambda t: t_full(t, dim=(0, 1, 2)), [x], device)
    if name in ("amax", "amin"):  # PyTorch's names: dims only
        return
    check_op(
        lambda t: getattr(F, name)(t, axis=[0, 2], keepdims=True),
        lambda t: t_full(t, dim=(0, 2), keepdim=True),
        [x],
        device,
    )


TIES = np.array([[1.0, 3.0, 3.0], [2.0, -1.0, 0.0], [-5.0, -5.0, -5.0]], dtype=np.float32)


@pytest.mark.parametrize("dim", [(), 0, 1])
@pytest.mark.parametrize("name", ["amax", "amin"])
def test_amax_amin_ties_share_the_gradient_evenly(name, dim, device, check_op):
    """Two equal maxima in a row each get half of that row's gradient, as ``torch.amax``."""
    fn = lambda t: getattr(t, name)(dim=dim)  # noqa: E731 - the same call on both sides
    check_op(fn, fn, [TIES], device)


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_over_a_dim_return_values_and_indices_as_torch(name, dim, keepdim, device):
    """``values, indices = x.max(dim)``: torch's indices (first of tied maxima), and the
    gradient of the values goes to that one index, not shared (unlike amax)."""
    x = sg.tensor(TIES, device=device, requires_grad=True)
    t = torch.tensor(TIES, requires_grad=True)
    ours, theirs = getattr(x, name)(dim, keepdim), getattr(t, name)(dim, keepdim)
    np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
    np.testing.assert_array_equal(ours.values.detach().numpy(), theirs.values.detach().numpy())
    values, indices = ours  # unpacks like torch.return_types.max
    assert indices.dtype == np.int64 and values.shape == tuple(theirs.values.shape)
    up = np.arange(values.numel(), dtype=np.float32).reshape(values.shape) + 1
    values.backward(sg.tensor(up, device=device))
    theirs.values.backward(torch.tensor(up))
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())


def test_max_three_forms_as_torch():
    """``max(x)`` a value, ``max(x, y)`` element-wise, ``_, predicted = max(x, 1)``: the
    CIFAR tutorial's spelling, which must not silently unpack something else."""
    x, y = sg.tensor(TIES), sg.tensor(TIES[::-1].copy())
    t, u = torch.tensor(TIES), torch.tensor(TIES[::-1].copy())
    assert sg.max(x).item() == torch.max(t).item()
    np.testing.assert_array_equal(sg.max(x, y).numpy(), torch.max(t, u).numpy())
    _, predicted = sg.max(x, 1)
    np.testing.assert_array_equal(predicted.numpy(), torch.max(t, 1)[1].numpy())
    np.testing.assert_array_equal(F.max(x, axis=1).numpy(), TIES.max(axis=1))  # NumPy form
    with pytest.raises(TypeError, match="amax"):
        x.max(dim=(0, 1))


def test_mixing_both_spellings_with_different_values_is_an_error():
    """``sum(axis=0, dim=1)`` is ambiguous and must not silently pick one."""
    import sparkgrad as sg

    with pytest.raises(TypeError):
        F.sum(sg.ones(2, 3), axis=0, dim=1)


# ---- var and std -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["var", "std"])
@FAST
@given(
    case=shape_and_dims(min_side=2),
    keepdim=st.booleans(),
    correction=st.sampled_from([0, 1]),
    seed=st.integers(0, 2**32 - 1),
)
def test_var_std_match_torch(name, case, keepdim, correction, seed, device, check_op, check_grad):
    """Variance and standard deviation with ``correction`` 0 or 1 over any axes."""
    shape, dims = case

    def fn(x):
        return getattr(x, name)(dim=dims, correction=correction, keepdim=keepdim)

    def t_fn(x):
        return getattr(x, name)(dim=dims, correction=correction, keepdim=keepdim)

    check_op(fn, t_fn, [_x(shape, seed)], device)
    check_grad(fn, [_x(shape, seed)], device)


@pytest.mark.parametrize("name", ["var", "std"])
def test_var_std_defaults_and_spellings(name, device, check_op):
    """Default is Bessel's correction (n-1); ``unbiased=False`` and ``axis=`` also work."""
    x = _x((3, 5), 2)
    check_op(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), [x], device)
    check_op(
        lambda t: getattr(F, name)(t, axis=1, keepdims=True, unbiased=False),
        lambda t: getattr(torch, name)(t, dim=1, keepdim=True, unbiased=False),
        [x],
        device,
    )


# ---- argmax / argmin -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["argmax", "argmin"])
@FAST
@given(
    shape=array_shapes(min_dims=1, max_dims=3, max_side=4),
    data=st.data(),
    keepdim=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_argmax_argmin_match_torch(name, shape, data, keepdim, seed, device, assert_close):
    """int64 indices, first occurrence on ties (values from {-1, 0, 1}), flat when dim=None."""
    import sparkgrad as sg

    x = np.random.default_rng(seed).integers(-1, 2, shape).astype(np.float32)
    dim = data.draw(st.sampled_from([None, *range(-len(shape), len(shape))]))
    got = getattr(sg.tensor(x, device=device), name)(dim=dim, keepdim=keepdim)
    want = getattr(torch.tensor(x), name)(dim=dim, keepdim=keepdim if dim is not None else False)
    assert_close(got, want, rtol=0, atol=0)
