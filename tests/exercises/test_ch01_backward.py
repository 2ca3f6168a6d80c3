"""Chapter 1 exercise: ``topological_order`` and ``backward`` (``exercises/ch01_backward.py``).

Truths: central finite differences of the same function computed with plain NumPy in
float64, derivatives worked out by hand, and the graph itself (every edge must point
forward in the order). The last test runs the checks on deliberately wrong versions and
requires each to be caught, so a check that cannot fail is caught too.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest

import sparkgrad as sg
from exercises.reference import Function, Node, Tensor, edge_to, no_grad, sum_to_shape
from tests.exercises.catching import assert_caught

EXERCISE = "backward"
pytestmark = pytest.mark.exercise_backward


# ---- the checks (each takes an implementation: a module or namespace) ---------------------
def _finite_differences(f: Any, arrays: list[np.ndarray], h: float = 1e-6) -> list[np.ndarray]:
    """d f / d array, entry by entry, by central differences (f returns a float)."""
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            keep = a[i]
            a[i] = keep + h
            up = f(*arrays)
            a[i] = keep - h
            down = f(*arrays)
            a[i] = keep
            g[i] = (up - down) / (2 * h)
        grads.append(g)
    return grads


def check_matches_finite_differences(impl: Any) -> None:
    """A matmul, a broadcast bias, tanh, and ``x`` used on two paths."""
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal(5)

    def numpy_f(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> float:
        h = np.tanh(x @ w + b)
        return float((h * h).sum() + (h * x.sum()).mean())

    leaves = [sg.tensor(a.copy(), requires_grad=True) for a in (x, w, b)]
    xt, wt, bt = leaves
    h = (xt @ wt + bt).tanh()
    loss = (h * h).sum() + (h * xt.sum()).mean()
    impl.backward(loss)
    want = _finite_differences(numpy_f, [x, w, b])
    for name, leaf, g in zip("xwb", leaves, want):
        assert leaf.grad is not None, f"{name} got no gradient"
        assert leaf.grad.shape == leaf.shape, f"{name}.grad has shape {leaf.grad.shape}"
        np.testing.assert_allclose(leaf.grad.numpy(), g, rtol=1e-6, atol=1e-8, err_msg=name)


def check_a_value_used_twice_gets_the_sum(impl: Any) -> None:
    """y = x·x + x: dy/dx = 2x + 1 (a leaf on three edges); y = h·h + h, h = 3x: 3(2h + 1)."""
    x = sg.tensor([1.0, -2.0, 0.5], requires_grad=True)
    impl.backward((x * x + x).sum())
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, -2.0, 0.5]) + 1)
    x = sg.tensor([1.0, -2.0, 0.5], requires_grad=True)
    h = x * 3.0
    impl.backward((h * h + h).sum())
    np.testing.assert_allclose(x.grad.numpy(), 3 * (2 * 3 * np.array([1.0, -2.0, 0.5]) + 1))


def check_gradients_accumulate_across_calls(impl: Any) -> None:
    """A second backward adds to ``.grad`` (that is why training calls ``zero_grad()``)."""
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    impl.backward((x * x).sum())
    first = x.grad.numpy().copy()
    impl.backward((x * x).sum())  # a new graph over the same leaf
    np.testing.assert_allclose(first, [2.0, 4.0])
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0], err_msg="the second call must add")


def check_broadcast_gradients_are_summed_back(impl: Any) -> None:
    """b (3,) and c (4, 1) broadcast to (4, 3): their gradients are sums over the copies."""
    x = sg.tensor(np.arange(12.0).reshape(4, 3), requires_grad=True)
    b = sg.tensor(np.zeros(3), requires_grad=True)
    c = sg.tensor(np.zeros((4, 1)), requires_grad=True)
    impl.backward(((x + b + c) * 2.0).sum())
    np.testing.assert_allclose(b.grad.numpy(), [8.0, 8.0, 8.0])
    np.testing.assert_allclose(c.grad.numpy(), [[6.0]] * 4)
    np.testing.assert_allclose(x.grad.numpy(), np.full((4, 3), 2.0))


def check_a_given_gradient_and_constants(impl: Any) -> None:
    """A non-scalar root with its gradient; an input without requires_grad gets nothing."""
    x = sg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    k = sg.tensor([5.0, 6.0, 7.0])  # a constant: no gradient, no edge
    impl.backward(x * k, grad=np.array([1.0, 10.0, 100.0]))
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 60.0, 700.0])
    assert k.grad is None, "a tensor that does not require grad must get no .grad"


def _counting_op() -> type:
    class Count(Function):
        """z = x;  dz/dx = 1 (and count the backward calls)"""

        calls = 0

        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            return x * 1.0

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            Count.calls += 1
            return grad

    return Count


def check_each_node_runs_backward_once(impl: Any) -> None:
    """A ladder of 12 diamonds has 2^12 paths: backward must not walk them one by one."""
    count = _counting_op()
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    h = x
    for _ in range(12):
        h = count.apply(h)
        h = h + h  # the node above is reached along two edges
    impl.backward(h.sum())
    np.testing.assert_allclose(x.grad.numpy(), [2.0**12] * 2)
    assert count.calls == 12, f"12 nodes ran backward {count.calls} times: once each, please"


def check_a_deep_chain(impl: Any) -> None:
    """5,000 ops in a row: an explicit stack, not recursion (Python stops at ~1,000 frames)."""
    x = sg.tensor(np.ones(1), requires_grad=True)  # float64
    y = x
    for _ in range(5000):
        y = y * 1.0001
    try:
        impl.backward(y.sum())
    except RecursionError as exc:
        raise AssertionError("a 5,000-op chain hit the recursion limit: use a stack") from exc
    np.testing.assert_allclose(x.grad.numpy(), [1.0001**5000], rtol=1e-9)


def _reachable(root: Any) -> dict[int, Any]:
    seen: dict[int, Any] = {}
    stack = [root]
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen[id(v)] = v
        if isinstance(v, Node):
            stack.extend(e for e in v.edges if e is not None)
    return seen


def check_topological_order(impl: Any) -> None:
    """Every vertex once, and every edge pointing later in the list (consumers first)."""
    a = sg.tensor([1.0, 2.0], requires_grad=True)
    w = sg.tensor([3.0, 4.0], requires_grad=True)
    u = a * 2.0
    v = (u * w).exp() + u  # u is reached along a short and a long path
    root = edge_to(((v * v).sum() + a.sum()) * 0.5)
    order = impl.topological_order([root])
    ids = [id(v) for v in order]
    assert len(ids) == len(set(ids)), "a vertex appears twice"
    assert set(ids) == set(_reachable(root)), "the order must hold every reachable vertex"
    assert order[0] is root, "the root comes first"
    where = {i: k for k, i in enumerate(ids)}
    for vertex in order:
        if isinstance(vertex, Node):
            for e in vertex.edges:
                if e is not None:
                    assert where[id(e)] > where[id(vertex)], (
                        f"{vertex!r} consumes {e!r}, which comes before it in the order"
                    )


CHECKS = [
    check_matches_finite_differences,
    check_a_value_used_twice_gets_the_sum,
    check_gradients_accumulate_across_calls,
    check_broadcast_gradients_are_summed_back,
    check_a_given_gradient_and_constants,
    check_each_node_runs_backward_once,
    check_a_deep_chain,
    check_topological_order,
]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[6:] for c in CHECKS])
def test_backward(impl: Any, check: Any) -> None:
    check(impl)


# ---- the checks catch wrong versions ------------------------------------------------------
def _start(root: Tensor, grad: Any) -> Any:
    return np.ones_like(root.array) if grad is None else np.asarray(grad, dtype=root.dtype)


def _accumulate(leaf: Tensor, g: Any) -> None:
    if leaf.grad is None:
        leaf.grad = Tensor._wrap(g.copy())
    else:
        leaf.grad.array += g


def _backward_in(order_fn: Any, overwrite: bool = False) -> Any:
    """The right backward loop over ``order_fn``'s order (optionally overwriting .grad)."""

    def backward(root: Tensor, grad: Any = None) -> None:
        start = edge_to(root)
        pending = {id(start): _start(root, grad)}
        with no_grad():
            for vertex in order_fn([start]):
                g = pending.pop(id(vertex), None)
                if g is None:
                    continue
                if not isinstance(vertex, Node):
                    if overwrite:
                        vertex.grad = Tensor._wrap(g.copy())
                    else:
                        _accumulate(vertex, g)
                    continue
                for e, pg in zip(vertex.edges, vertex.run_backward(g)):
                    if e is not None and pg is not None:
                        r = sum_to_shape(pg, e.shape)
                        pending[id(e)] = r if id(e) not in pending else pending[id(e)] + r

    return backward


def _breadth_first(roots: list[Any]) -> list[Any]:
    """Wrong: the order in which a breadth-first search discovers the vertices."""
    order, seen, queue = [], set(), list(roots)
    while queue:
        v = queue.pop(0)
        if id(v) in seen:
            continue
        seen.add(id(v))
        order.append(v)
        if isinstance(v, Node):
            queue.extend(e for e in v.edges if e is not None)
    return order


def _per_path_backward(root: Tensor, grad: Any = None) -> None:
    """Wrong: push every gradient down every path at once, recursively (no order at all)."""

    def push(vertex: Any, g: Any) -> None:
        if not isinstance(vertex, Node):
            _accumulate(vertex, g)
            return
        for e, pg in zip(vertex.edges, vertex.run_backward(g)):
            if e is not None and pg is not None:
                push(e, sum_to_shape(pg, e.shape))

    with no_grad():
        push(edge_to(root), _start(root, grad))


def _right_order(roots: list[Any]) -> list[Any]:
    from exercises.reference import SOLUTIONS

    return SOLUTIONS["backward"].topological_order(roots)


WRONG = {  # name -> (implementation, the checks that must catch it at least)
    "breadth-first order": (
        types.SimpleNamespace(
            topological_order=_breadth_first, backward=_backward_in(_breadth_first)
        ),
        {"topological_order", "matches_finite_differences"},
    ),
    "every path on its own": (
        types.SimpleNamespace(topological_order=_right_order, backward=_per_path_backward),
        {"each_node_runs_backward_once", "a_deep_chain"},
    ),
    "overwrites .grad": (
        types.SimpleNamespace(
            topological_order=_right_order, backward=_backward_in(_right_order, overwrite=True)
        ),
        {"gradients_accumulate_across_calls"},
    ),
}


@pytest.mark.parametrize("wrong", list(WRONG))
def test_the_checks_catch_a_wrong_backward(wrong: str) -> None:
    impl, must_catch = WRONG[wrong]
    assert_caught(wrong, impl, CHECKS, must_catch)


def test_the_right_loop_of_these_wrong_versions_passes() -> None:
    """The scaffolding above is right when its order is: the checks pass it (no false alarm)."""
    impl = types.SimpleNamespace(
        topological_order=_right_order, backward=_backward_in(_right_order)
    )
    for check in CHECKS:
        check(impl)
