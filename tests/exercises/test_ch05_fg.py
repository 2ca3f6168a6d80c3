"""Chapter 5 exercise: tensor parallelism's ``f`` and ``g``.

With the ``f`` and ``g`` under test, every thread rank runs its slice of the MLP block
``x -f-> [W1 rows r, b1 r] -ReLU-> [W2 columns r] -g-> + b2`` built from plain ops. Truth:
the unsplit block in one process: the same output on every rank, the same ``dL/dx``, and
each rank's slices of the weight gradients. And the communication: exactly one
all_reduce in forward (``g``) and one in backward (``f``), read from the group's record.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest

import sparkgrad as sg
from exercises.reference import Context, Function, collectives_run, run_ranks
from tests.exercises.catching import assert_caught

EXERCISE = "fg"
pytestmark = pytest.mark.exercise_fg

IN, HIDDEN, OUT, BATCH = 5, 8, 3, 6


def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = {
        "x": (BATCH, IN),
        "w1": (HIDDEN, IN),
        "b1": (HIDDEN,),
        "w2": (OUT, HIDDEN),
        "b2": (OUT,),
        "probe": (BATCH, OUT),
    }
    return {k: rng.standard_normal(s) for k, s in shapes.items()}  # float64


def block(a: dict, lo: int, hi: int, f: Any, g: Any, group: Any) -> tuple[Any, dict]:
    """The block on hidden features ``[lo, hi)``; with ``f = g = None`` the whole block."""
    t = {k: sg.tensor(a[k], requires_grad=k != "probe") for k in a}
    w1, b1, w2 = t["w1"][lo:hi], t["b1"][lo:hi], t["w2"][:, lo:hi]
    x = t["x"] if f is None else f(t["x"], group)
    h = (x @ w1.T + b1).relu()
    partial = h @ w2.T
    y = (partial if g is None else g(partial, group)) + t["b2"]
    return y, t


def truth() -> dict[str, np.ndarray]:
    a = arrays()
    y, t = block(a, 0, HIDDEN, None, None, None)
    (y * t["probe"]).sum().backward()
    return {
        "y": y.detach().numpy(),
        **{k: t[k].grad.numpy() for k in ("x", "w1", "b1", "w2", "b2")},
    }


def tensor_parallel(impl: Any, world: int) -> list[dict]:
    a = arrays()

    def fn(rank: int, group: Any) -> dict:
        lo, hi = rank * HIDDEN // world, (rank + 1) * HIDDEN // world
        calls = len(collectives_run(group))
        y, t = block(
            a,
            lo,
            hi,
            impl.copy_to_tensor_parallel_region,
            impl.reduce_from_tensor_parallel_region,
            group,
        )
        forward = collectives_run(group)[calls:]
        (y * t["probe"]).sum().backward()
        backward = collectives_run(group)[calls + len(forward) :]
        grads = {k: t[k].grad.numpy() for k in ("x", "w1", "b1", "w2", "b2")}
        return {"lo": lo, "hi": hi, "y": y.detach().numpy(), "fw": forward, "bw": backward, **grads}

    return run_ranks(world, fn)


# ---- the checks ---------------------------------------------------------------------------
def check_output_and_input_gradient(impl: Any) -> None:
    want = truth()
    for world in (2, 4):
        for r in tensor_parallel(impl, world):
            where = f"{world} ranks, hidden [{r['lo']}, {r['hi']})"
            np.testing.assert_allclose(r["y"], want["y"], rtol=1e-10, err_msg=f"{where}: y")
            np.testing.assert_allclose(r["x"], want["x"], rtol=1e-10, err_msg=f"{where}: dL/dx")


def check_weight_gradients_are_the_slices(impl: Any) -> None:
    want = truth()
    for world in (2, 4):
        for r in tensor_parallel(impl, world):
            lo, hi = r["lo"], r["hi"]
            where = f"{world} ranks, hidden [{lo}, {hi})"
            for name, mine in (("w1", np.s_[lo:hi]), ("b1", np.s_[lo:hi]), ("w2", np.s_[:, lo:hi])):
                np.testing.assert_allclose(
                    r[name][mine], want[name][mine], rtol=1e-10, err_msg=f"{where}: {name}"
                )
            np.testing.assert_allclose(r["b2"], want["b2"], rtol=1e-10, err_msg=f"{where}: b2")


def check_one_all_reduce_each_way(impl: Any) -> None:
    for r in tensor_parallel(impl, 2):
        fw, bw = [c for c, _ in r["fw"]], [c for c, _ in r["bw"]]
        assert fw == ["all_reduce"], f"forward ran {fw}: expected one all_reduce (g)"
        assert bw == ["all_reduce"], f"backward ran {bw}: expected one all_reduce (f)"


CHECKS = [
    check_output_and_input_gradient,
    check_weight_gradients_are_the_slices,
    check_one_all_reduce_each_way,
]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[6:] for c in CHECKS])
def test_f_and_g(impl: Any, check: Any) -> None:
    check(impl)


# ---- the checks catch wrong versions ------------------------------------------------------
def _all_reduce(a: Any, group: Any) -> Any:
    return group.pg.all_reduce(a.copy())


class _Identity(Function):
    """Wrong f: z = x; dL/dx = g (forgets the other ranks' share of dL/dx)"""

    @staticmethod
    def forward(ctx: Context, x: Any, group: Any = None) -> Any:
        return x

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad


class _ReduceBothWays(Function):
    """Wrong g: z = Σ x; dL/dx = Σ g (sums what every rank already holds: N times too big)"""

    @staticmethod
    def forward(ctx: Context, x: Any, group: Any = None) -> Any:
        ctx.group = group
        return _all_reduce(x, group)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return _all_reduce(grad, ctx.group)


def _reference(name: str) -> Any:
    from exercises.reference import SOLUTIONS

    return getattr(SOLUTIONS["fg"], name)


WRONG = {  # name -> (implementation, the checks that must catch it at least)
    "f without its all_reduce": (
        types.SimpleNamespace(
            copy_to_tensor_parallel_region=lambda x, group: _Identity.apply(x, group=group),
            reduce_from_tensor_parallel_region=_reference("reduce_from_tensor_parallel_region"),
        ),
        {"output_and_input_gradient", "one_all_reduce_each_way"},
    ),
    "g reducing both ways": (
        types.SimpleNamespace(
            copy_to_tensor_parallel_region=_reference("copy_to_tensor_parallel_region"),
            reduce_from_tensor_parallel_region=lambda x, group: _ReduceBothWays.apply(
                x, group=group
            ),
        ),
        {"output_and_input_gradient", "weight_gradients_are_the_slices", "one_all_reduce_each_way"},
    ),
    "no g at all": (
        types.SimpleNamespace(
            copy_to_tensor_parallel_region=_reference("copy_to_tensor_parallel_region"),
            reduce_from_tensor_parallel_region=lambda x, group: _Identity.apply(x, group=group),
        ),
        {"output_and_input_gradient", "one_all_reduce_each_way"},
    ),
}


@pytest.mark.parametrize("wrong", list(WRONG))
def test_the_checks_catch_a_wrong_f_or_g(wrong: str) -> None:
    impl, must_catch = WRONG[wrong]
    assert_caught(wrong, impl, CHECKS, must_catch)
