"""Walkthrough 1.1 — derivatives of scalars, the chain rule, and the graph a Tensor records.

A derivative answers "if I nudge the input by a tiny h, how much does the output move?"::

    f'(x) ≈ (f(x + h) - f(x - h)) / 2h          (central finite difference)

For a formula we can do better than nudging: the rules of calculus give the exact value.
For ``f(x) = 3x²`` the rule gives ``f'(x) = 6x``. For a *composition* ``f(g(x))`` the
**chain rule** multiplies the local derivatives along the way::

    d f(g(x)) / dx = f'(g(x)) · g'(x)

Autograd applies exactly this rule, mechanically. While you compute, every op you call
on a tensor that ``requires_grad`` is *recorded*: the result remembers which op made it
(``grad_fn``) and from which inputs. ``loss.backward()`` then walks that record from the
output back to the inputs, multiplying each op's local derivative into the running
gradient (the chain rule), and adds the result into ``.grad`` of every *leaf* — a tensor
you created yourself, such as a weight.

Each test below checks sparkgrad against two independent truths: a derivative worked out
by hand on paper, and a finite difference computed with plain NumPy in float64.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparkgrad as sg
from sparkgrad.errors import GradError


def finite_difference(f, x: float, h: float = 1e-6) -> float:
    """The slope of ``f`` at ``x`` by nudging: (f(x+h) - f(x-h)) / 2h, error O(h²)."""
    return (f(x + h) - f(x - h)) / (2 * h)


def scalar(value: float) -> sg.Tensor:
    """A float64 leaf that records a graph (float64 so comparisons can be tight)."""
    return sg.tensor(value, dtype=sg.float64, requires_grad=True)


# ---- 1. one rule at a time ----------------------------------------------------------------
def test_power_rule_by_hand():
    """f(x) = 3x² has f'(x) = 6x: at x = 2 the slope is exactly 12."""
    x = scalar(2.0)
    y = 3 * x * x
    y.backward()
    assert x.grad.item() == 12.0  # 6 · 2, exact in binary floating point
    assert x.grad.item() == pytest.approx(finite_difference(lambda v: 3 * v * v, 2.0), rel=1e-8)


def test_product_rule_two_inputs():
    """z = x·y depends on two leaves: dz/dx = y and dz/dy = x (each input sees the other)."""
    x, y = scalar(3.0), scalar(-4.0)
    z = x * y
    z.backward()
    assert x.grad.item() == -4.0
    assert y.grad.item() == 3.0


# ---- 2. the chain rule ------------------------------------------------------------------
def test_chain_rule_tanh_of_square():
    """f(x) = tanh(x² + 1).

    Inner g(x) = x² + 1 with g'(x) = 2x; outer tanh(u) with tanh'(u) = 1 - tanh²(u).
    Chain rule: f'(x) = (1 - tanh²(x² + 1)) · 2x.
    """
    x0 = 0.7
    x = scalar(x0)
    f = (x * x + 1).tanh()
    f.backward()

    by_hand = (1 - math.tanh(x0**2 + 1) ** 2) * 2 * x0
    numeric = finite_difference(lambda v: math.tanh(v * v + 1), x0)
    assert x.grad.item() == pytest.approx(by_hand, rel=1e-12)
    assert x.grad.item() == pytest.approx(numeric, rel=1e-7)


def test_chain_rule_step_by_step_with_retain_grad():
    """Watch the chain rule happen: the gradient reaching the middle value, then the input.

    Non-leaf tensors normally drop their gradient after use; ``retain_grad()`` keeps it.
    For f = tanh(u), u = x² + 1, backward first computes df/du = 1 - tanh²(u) and then
    multiplies by the local derivative du/dx = 2x to get df/dx.
    """
    x0 = -0.4
    x = scalar(x0)
    u = x * x + 1
    u.retain_grad()
    u.tanh().backward()

    df_du = 1 - math.tanh(x0**2 + 1) ** 2
    assert u.grad.item() == pytest.approx(df_du, rel=1e-12)
    assert x.grad.item() == pytest.approx(u.grad.item() * 2 * x0, rel=1e-12)


def test_chain_rule_three_links():
    """f(x) = exp(sigmoid(x)) / x — three ops deep plus a quotient.

    With s = sigmoid(x), s' = s(1 - s), and the quotient rule (u/v)' = (u'v - uv')/v²:
    f'(x) = (exp(s)·s(1-s)·x - exp(s)) / x².
    """
    x0 = 1.3
    x = scalar(x0)
    f = x.sigmoid().exp() / x
    f.backward()

    s = 1 / (1 + math.exp(-x0))
    by_hand = (math.exp(s) * s * (1 - s) * x0 - math.exp(s)) / x0**2
    numeric = finite_difference(lambda v: math.exp(1 / (1 + math.exp(-v))) / v, x0)
    assert x.grad.item() == pytest.approx(by_hand, rel=1e-12)
    assert x.grad.item() == pytest.approx(numeric, rel=1e-7)


@settings(max_examples=30, deadline=None)
@given(st.floats(min_value=0.1, max_value=3.0), st.floats(min_value=-2.0, max_value=2.0))
def test_chain_rule_for_many_points(x0: float, y0: float):
    """f(x, y) = log(x) · y² + sqrt(x): ∂f/∂x = y²/x + 1/(2√x), ∂f/∂y = 2y·log(x).

    Hypothesis picks the points; the hand-derived formulas must hold at every one.
    """
    x, y = scalar(x0), scalar(y0)
    f = x.log() * y**2 + x.sqrt()
    f.backward()
    assert x.grad.item() == pytest.approx(y0**2 / x0 + 0.5 / math.sqrt(x0), rel=1e-10, abs=1e-12)
    assert y.grad.item() == pytest.approx(2 * y0 * math.log(x0), rel=1e-10, abs=1e-12)


# ---- 3. the graph a tensor records ------------------------------------------------------
def test_the_recorded_graph():
    """Leaves have no ``grad_fn``; every op result points at the op that made it.

    ``y = (a * b) + c`` records two nodes: ``AddBackward`` (for y) whose inputs are the
    product and ``c``, and ``MulBackward`` (for the product) whose inputs are ``a``, ``b``.
    A tensor that does not require grad is not tracked: its slot in ``inputs`` is None.
    """
    a, b = scalar(2.0), scalar(5.0)
    c = sg.tensor(1.0, dtype=sg.float64)  # a constant: requires_grad=False
    ab = a * b
    y = ab + c

    assert a.is_leaf and b.is_leaf and c.is_leaf
    assert a.grad_fn is None
    assert not y.is_leaf and y.requires_grad
    assert y.grad_fn.name() == "AddBackward"
    assert ab.grad_fn.name() == "MulBackward"
    assert y.grad_fn.edges[0] is ab.grad_fn  # the edge back to the op that made the product
    assert y.grad_fn.edges[1] is None  # c needs no gradient, so no edge
    assert ab.grad_fn.edges[0] is a and ab.grad_fn.edges[1] is b  # edges into leaves end there
    # PyTorch's spelling of the same edges: (node, output index) pairs, AccumulateGrad at leaves
    assert y.grad_fn.next_functions[0] == (ab.grad_fn, 0)
    (acc_a, _), (acc_b, _) = ab.grad_fn.next_functions
    assert acc_a.name() == "AccumulateGrad" and acc_a.variable is a and acc_b.variable is b
    assert "grad_fn=<AddBackward>" in repr(y)


def test_ops_under_no_grad_are_not_recorded():
    """Inside ``sg.no_grad()`` nothing is recorded (used for optimizer updates, evaluation)."""
    x = scalar(2.0)
    with sg.no_grad():
        y = x * x
    assert y.grad_fn is None and not y.requires_grad
    with pytest.raises(GradError, match="does not require grad"):
        y.backward()


def test_a_tensor_used_twice_sums_its_gradients():
    """f = x·y + x uses x on two paths; the chain rule adds the paths: df/dx = y + 1."""
    x, y = scalar(3.0), scalar(4.0)
    f = x * y + x
    f.backward()
    assert x.grad.item() == 4.0 + 1.0
    assert y.grad.item() == 3.0


def test_diamond_graph_matches_finite_difference():
    """u = x², f = u·x + u/x: u feeds two ops and x three; every path's gradient is added."""

    def f_np(v: float) -> float:
        u = v * v
        return u * v + u / v

    x0 = 1.7
    x = scalar(x0)
    u = x * x
    f = u * x + u / x
    f.backward()
    # by hand: f = x³ + x, so f' = 3x² + 1
    assert x.grad.item() == pytest.approx(3 * x0**2 + 1, rel=1e-12)
    assert x.grad.item() == pytest.approx(finite_difference(f_np, x0), rel=1e-7)


# ---- 4. .grad accumulates ----------------------------------------------------------------
def test_grad_accumulates_until_you_clear_it():
    """``backward`` *adds* into ``.grad`` (PyTorch does the same).

    This is what lets several losses or micro-batches contribute to one update — and why
    training loops call ``optimizer.zero_grad()`` (or set ``.grad = None``) every step.
    """
    x = scalar(2.0)
    (x * x).backward()  # d(x²)/dx = 4
    assert x.grad.item() == 4.0
    (x * x * x).backward()  # d(x³)/dx = 12, added on top
    assert x.grad.item() == 4.0 + 12.0
    x.grad = None  # what zero_grad(set_to_none=True) does
    (x * x).backward()
    assert x.grad.item() == 4.0


def test_backward_twice_needs_retain_graph():
    """After ``backward`` the saved intermediates are freed; a second pass must ask to keep them."""
    x = scalar(2.0)
    y = x.exp() * x
    y.backward(retain_graph=True)
    first = x.grad.item()
    y.backward()  # allowed: the graph was retained once
    assert x.grad.item() == pytest.approx(2 * first, rel=1e-15)
    with pytest.raises(GradError, match="retain_graph"):
        y.backward()


def test_gradcheck_agrees_on_a_vector_function():
    """``sg.gradcheck`` automates the nudging for every element of every input (float64)."""
    sg.manual_seed(0)
    x = sg.randn(5, dtype=sg.float64, requires_grad=True)
    assert sg.gradcheck(lambda t: (t * t + 1).tanh() * t.sigmoid(), [x])


def test_gradcheck_catches_a_wrong_backward():
    """A deliberately wrong op (it claims d(x²)/dx = x) must be caught by the checker.

    A checker that never fails teaches nothing; this shows it has teeth.
    """

    class BadSquare(sg.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a

        @staticmethod
        def backward(ctx, grad):
            (a,) = ctx.saved_tensors
            return grad * a  # wrong: should be 2·a·grad

    x = sg.tensor(np.array([0.5, -1.0, 2.0]), dtype=sg.float64, requires_grad=True)
    with pytest.raises(sg.GradcheckError):
        sg.gradcheck(BadSquare.apply, [x])
