"""Chapter 5 exercise: the 1F1B schedule, ``one_f_one_b_schedule(stage, stages, m)``.

Truths: what a schedule must be (each micro-batch one forward then one backward, in
order both ways); 1F1B's memory bound, at most ``min(p - s, m)`` micro-batches alive on
stage ``s``; the project's event simulation of all stages (no deadlock with blocking
receives, and the bubble ``(p - 1) / (m + p - 1)``); and real training: pipeline stages
on thread ranks walking the schedule end with the weights of one process on the whole
batch.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest

import sparkgrad as sg
from exercises.reference import (
    ConfigError,
    pipeline_with_schedule,
    run_ranks,
    simulate_schedule,
)
from tests.exercises.catching import assert_caught
from tests.parallel.strategy_truth import (
    assert_same_state,
    make_batches,
    make_model,
    optimizer_factory,
    train_single,
)

EXERCISE = "1f1b"
pytestmark = pytest.mark.exercise_1f1b

CASES = [(p, m) for p in range(1, 6) for m in (1, 2, 3, 4, 8)]


def peak_live(actions: list) -> int:
    live = peak = 0
    for kind, _ in actions:
        live += 1 if kind == "F" else -1
        peak = max(peak, live)
    return peak


# ---- the checks ---------------------------------------------------------------------------
def check_every_micro_batch_forward_then_backward(impl: Any) -> None:
    for p, m in CASES:
        for s in range(p):
            actions = [tuple(a) for a in impl.one_f_one_b_schedule(s, p, m)]
            where = f"stage {s} of {p}, {m} micro-batches: {actions}"
            assert sorted(actions) == sorted((k, i) for k in "FB" for i in range(m)), where
            assert [i for k, i in actions if k == "F"] == list(range(m)), where
            assert [i for k, i in actions if k == "B"] == list(range(m)), where
            for i in range(m):
                assert actions.index(("F", i)) < actions.index(("B", i)), where


def check_memory_bound(impl: Any) -> None:
    for p, m in CASES:
        for s in range(p):
            got = peak_live(impl.one_f_one_b_schedule(s, p, m))
            assert got == min(p - s, m), (
                f"stage {s} of {p}, {m} micro-batches holds {got} activations at once; "
                f"1F1B holds min(p - s, m) = {min(p - s, m)}"
            )


def check_no_deadlock_and_the_bubble(impl: Any) -> None:
    for p, m in CASES:
        for backward_cost in (1.0, 2.0):
            try:
                idle = simulate_schedule(impl.one_f_one_b_schedule, p, m, 1.0, backward_cost)
            except ConfigError as exc:
                raise AssertionError(f"{p} stages, {m} micro-batches: {exc}") from exc
            want = (p - 1) / (m + p - 1)
            assert idle == pytest.approx(want, abs=1e-12), (
                f"{p} stages, {m} micro-batches, B costs {backward_cost}: idle {idle:.4f}, "
                f"the bubble of 1F1B is (p-1)/(m+p-1) = {want:.4f}"
            )


def check_training_equals_one_process(impl: Any) -> None:
    batches = make_batches(steps=2, batch=8)
    want = train_single(batches, "adam")
    for stages in (2, 4):
        models = [make_model() for _ in range(stages)]  # seeded here, not in the threads

        def fn(rank: int, group: Any, models: list = models) -> dict:
            s = pipeline_with_schedule(
                models[rank],
                optimizer_factory("adam"),
                sg.nn.functional.cross_entropy,
                4,
                impl.one_f_one_b_schedule,
            )
            losses = [s.train_step(sg.tensor(x), sg.tensor(y)) for x, y in batches]
            return {"state": s.full_state_dict(), "losses": losses}

        for r in run_ranks(stages, fn):
            assert_same_state(r["state"], want["state"])
            np.testing.assert_allclose(r["losses"], want["losses"], rtol=1e-5)


CHECKS = [
    check_every_micro_batch_forward_then_backward,
    check_memory_bound,
    check_no_deadlock_and_the_bubble,
    check_training_equals_one_process,
]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[6:] for c in CHECKS])
def test_one_f_one_b(impl: Any, check: Any) -> None:
    check(impl)


# ---- the checks catch wrong versions ------------------------------------------------------
def _gpipe(stage: int, stages: int, m: int) -> list:
    """Wrong for 1F1B: every forward, then every backward (all m activations alive)."""
    return [("F", i) for i in range(m)] + [("B", i) for i in range(m)]


def _warm_up_too_long(stage: int, stages: int, m: int) -> list:
    """Wrong: one warm-up forward too many (stage s holds p - s + 1)."""
    warmup = min(stages - stage, m)
    actions = [("F", i) for i in range(warmup)]
    for i in range(m - warmup):
        actions += [("F", warmup + i), ("B", i)]
    return actions + [("B", i) for i in range(m - warmup, m)]


def _no_warm_up(stage: int, stages: int, m: int) -> list:
    """Wrong: F0 B0 F1 B1 ... on every stage: little memory, but the stages take turns."""
    return [a for i in range(m) for a in (("F", i), ("B", i))]


def _backward_newest_first(stage: int, stages: int, m: int) -> list:
    """Wrong: the cool-down runs the newest backward first."""
    warmup = min(stages - stage - 1, m)
    actions = [("F", i) for i in range(warmup)]
    for i in range(m - warmup):
        actions += [("F", warmup + i), ("B", i)]
    return actions + [("B", i) for i in reversed(range(m - warmup, m))]


WRONG = {  # name -> (implementation, the checks that must catch it at least)
    "GPipe": (_gpipe, {"memory_bound"}),
    "warm-up too long": (_warm_up_too_long, {"memory_bound"}),
    "no warm-up": (_no_warm_up, {"memory_bound", "no_deadlock_and_the_bubble"}),
    "backwards newest first": (_backward_newest_first, {"every_micro_batch_forward_then_backward"}),
}


@pytest.mark.parametrize("wrong", list(WRONG))
def test_the_checks_catch_a_wrong_schedule(wrong: str) -> None:
    fn, must_catch = WRONG[wrong]
    impl = types.SimpleNamespace(one_f_one_b_schedule=fn)
    # training with a wrong order may deadlock: it needs no run here
    assert_caught(wrong, impl, CHECKS[:3], must_catch)
