"""Element-wise functions: activations, clamp, maximum/minimum and where.

Each unary op is checked on random shapes against PyTorch (value and gradient) and
against finite differences. The interesting cases get their own tests: points where the
derivative is not defined (relu and abs at 0, clamp at its bounds, ties in maximum), where
the convention must be PyTorch's, and large inputs where a naive formula loses precision.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import sparkgrad as sg
import sparkgrad.autodiff.functional as F

FAST = settings(max_examples=15, deadline=None)
SHAPES = array_shapes(min_dims=0, max_dims=3, max_side=4)
SEEDS = st.integers(0, 2**32 - 1)

UNARY = {
    # name: (sparkgrad fn, torch fn, input domain)
    "exp": (F.exp, torch.exp, "any"),
    "log": (F.log, torch.log, "positive"),
    "sqrt": (F.sqrt, torch.sqrt, "positive"),
    "tanh": (F.tanh, torch.tanh, "any"),
    "sigmoid": (F.sigmoid, torch.sigmoid, "any"),
    "relu": (F.relu, torch.relu, "nonzero"),
    "gelu_erf": (F.gelu, torch.nn.functional.gelu, "any"),
    "gelu_tanh": (
        lambda x: F.gelu(x, approximate="tanh"),
        lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
        "any",
    ),
    "abs": (F.abs, torch.abs, "nonzero"),
    "clamp": (lambda x: F.clamp(x, -0.5, 0.7), lambda x: x.clamp(-0.5, 0.7), "any"),
    "clamp_min": (lambda x: x.clamp(min=0.1), lambda x: x.clamp(min=0.1), "any"),
    "clip_max": (lambda x: x.clip(max=0.2), lambda x: x.clip(max=0.2), "any"),
    "neg": (lambda x: -x, lambda x: -x, "any"),
}


# gelu_tanh's derivative at a <= -4 subtracts nearly equal float32 numbers in both engines
# ((1 + tanh) and (1 - tanh**2) with tanh ~ -1), amplified ~5x: one ulp of difference in
# tanh between NumPy and PyTorch shows as ~1e-6 there. Float64 gradcheck checks the maths.
GRAD_ATOL = {"gelu_tanh": 1e-5}


def _input(shape, seed, domain):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 2
    if domain == "positive":
        x = np.abs(x) + 0.1
    if domain == "nonzero":  # a kink at 0: finite differences need distance from it
        x = np.where(np.abs(x) < 0.05, 0.5, x)
    return x.astype(np.float32)


@pytest.mark.parametrize("name", UNARY)
@FAST
@given(shape=SHAPES, seed=SEEDS)
def test_unary_matches_torch(name, shape, seed, device, check_op):
    """Value and gradient of each unary op equal torch's (float32, rtol 1e-5, atol 1e-6, but
    see ``GRAD_ATOL``)."""
    fn, t_fn, domain = UNARY[name]
    check_op(fn, t_fn, [_input(shape, seed, domain)], device, grad_atol=GRAD_ATOL.get(name))


@pytest.mark.parametrize("name", UNARY)
@settings(max_examples=8, deadline=None)
@given(shape=array_shapes(min_dims=0, max_dims=2, max_side=3), seed=SEEDS)
def test_unary_gradcheck(name, shape, seed, device, check_grad):
    """The analytic derivative equals central finite differences (float64)."""
    fn, _, domain = UNARY[name]
    x = _input(shape, seed, domain)
    if name.startswith("cl"):  # keep finite differences away from the clamp bounds
        x = np.where(np.isclose(x, -0.5, atol=0.01) | np.isclose(x, 0.7, atol=0.01), 0.0, x)
        x = np.where(np.isclose(x, 0.1, atol=0.01) | np.isclose(x, 0.2, atol=0.01), 0.0, x)
    check_grad(fn, [x.astype(np.float32)], device)


@pytest.mark.parametrize(
    "name,values",
    [
        ("relu", [-1.0, 0.0, 2.0]),
        ("abs", [-1.0, 0.0, 2.0]),
        ("clamp", [-0.5, -0.2, 0.7, 0.9, -3.0]),
    ],
)
def test_derivative_at_kinks_follows_torch(name, values, device, check_op):
    """At 0 (relu, abs) and exactly at the bounds (clamp) the gradient is torch's choice."""
    fn, t_fn, _ = UNARY[name]
    check_op(fn, t_fn, [np.array(values, dtype=np.float32)], device)


def test_sigmoid_and_tanh_are_accurate_for_large_inputs(device, check_op):
    """sigmoid(-20) ≈ 2e-9 must keep its relative precision (a 1 + tanh form rounds it to 0)."""
    x = np.array([-80.0, -30.0, -20.0, -8.0, 0.0, 8.0, 20.0, 80.0], dtype=np.float32)
    check_op(F.sigmoid, torch.sigmoid, [x], device, rtol=1e-5, atol=0)
    check_op(F.tanh, torch.tanh, [x], device, rtol=1e-5, atol=0)
    check_op(F.exp, torch.exp, [x[:-1]], device, rtol=1e-5, atol=0)


def test_gelu_rejects_unknown_approximation():
    """Only 'none' and 'tanh' exist, as in torch."""
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(sg.ones(2), approximate="fast")


# ---- binary: maximum, minimum, where ---------------------------------------------------
@pytest.mark.parametrize("name", ["maximum", "minimum"])
@FAST
@given(
    shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4),
    seed=SEEDS,
)
def test_maximum_minimum_broadcast_with_ties(name, shapes, seed, device, check_op):
    """Values drawn from {-1, 0, 1} so ties are common: torch gives each side half."""
    rng = np.random.default_rng(seed)
    a, b = (rng.integers(-1, 2, s).astype(np.float32) for s in shapes.input_shapes)
    check_op(getattr(F, name), getattr(torch, name), [a, b], device)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_gradcheck_and_method(name, device, check_grad, check_op):
    """Away from ties the derivative is exact; the Tensor method is the same op."""
    a = np.array([[0.3, -1.0, 2.0]], dtype=np.float32)
    b = np.array([[1.0], [-2.0]], dtype=np.float32)
    check_grad(getattr(F, name), [a, b], device)
    check_op(
        lambda x, y: getattr(x, name)(y), lambda x, y: getattr(torch, name)(x, y), [a, b], device
    )


@FAST
@given(
    shapes=mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=4),
    seed=SEEDS,
)
def test_where_broadcasts_condition_and_both_branches(shapes, seed, device, check_op, check_grad):
    """Gradient flows to the chosen branch only, summed back to each branch's shape."""
    rng = np.random.default_rng(seed)
    sc, sa, sb = shapes.input_shapes
    cond = rng.random(sc) < 0.5
    a = rng.standard_normal(sa).astype(np.float32)
    b = rng.standard_normal(sb).astype(np.float32)
    check_op(F.where, torch.where, [cond, a, b], device)
    check_grad(F.where, [cond, a, b], device)


def test_where_with_python_scalar_branch(device, check_op):
    """``where(cond, x, 0.0)`` (a masked fill) keeps float32 and routes the gradient to x."""
    x = np.array([[1.0, -2.0], [3.0, 4.0]], dtype=np.float32)
    cond = x > 0
    check_op(
        lambda c, t: F.where(c, t, 0.0), lambda c, t: torch.where(c, t, 0.0), [cond, x], device
    )
