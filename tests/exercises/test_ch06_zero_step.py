"""Chapter 6 exercise: the ZeRO-2 step, ``zero_step(zero)``.

A real ``ZeRO(stage=2)`` on thread ranks runs forward and backward on each rank's rows of
the global batch, then the step under test. Truths: one process on the whole batch (the
weights after three steps of SGD with momentum and of Adam, on 2, 3 and 4 ranks — 3
ranks pad the flat buffer), and the communication record: per step one reduce_scatter of
the gradients and one all_gather of the parameters, no all_reduce; afterwards no rank
holds a full gradient.
"""

from __future__ import annotations

import types
from typing import Any

import pytest

import sparkgrad as sg
from exercises.reference import (
    ReduceOp,
    Tensor,
    collectives_run,
    run_ranks,
    zero2,
    zero_train_step,
)
from tests.exercises.catching import assert_caught
from tests.parallel.strategy_truth import (
    assert_same_state,
    make_batches,
    make_model,
    optimizer_factory,
    rows,
    train_single,
)

EXERCISE = "zero_step"
pytestmark = pytest.mark.exercise_zero_step

BATCH = 24  # divisible by 2, 3 and 4


def run_zero(step: Any, world: int, optimizer: str, batches: list) -> list[dict]:
    models = [make_model() for _ in range(world)]  # seeded here, not in the threads

    def fn(rank: int, group: Any) -> dict:
        zero = zero2(models[rank], optimizer_factory(optimizer), sg.nn.functional.cross_entropy)
        per_step, leftover = [], []
        for x, y in batches:
            before = len(collectives_run(group))
            xs, ys = sg.tensor(rows(x, world, rank)), sg.tensor(rows(y, world, rank))
            zero_train_step(zero, xs, ys, step)
            per_step.append([c for c, _ in collectives_run(group)[before:]])
            leftover.append([n for n, p in zero.model.named_parameters() if p.grad is not None])
        shard = zero.units[0].shard
        return {
            "state": zero.full_state_dict(),
            "collectives": per_step,
            "full_grads_left": leftover,
            "shard_grad_shape": None if shard.grad is None else tuple(shard.grad.shape),
            "shard_shape": tuple(shard.shape),
        }

    return run_ranks(world, fn)


# ---- the checks ---------------------------------------------------------------------------
def check_training_equals_one_process(impl: Any) -> None:
    for optimizer in ("sgd", "adam"):
        batches = make_batches(steps=3, batch=BATCH)
        want = train_single(batches, optimizer)
        for world in (2, 3, 4):
            for rank, r in enumerate(run_zero(impl.zero_step, world, optimizer, batches)):
                try:
                    assert_same_state(r["state"], want["state"])
                except AssertionError as exc:
                    raise AssertionError(f"{optimizer}, {world} ranks, rank {rank}: {exc}") from exc


def check_communication_and_memory(impl: Any) -> None:
    batches = make_batches(steps=2, batch=BATCH)
    for rank, r in enumerate(run_zero(impl.zero_step, 2, "sgd", batches)):
        for step, calls in enumerate(r["collectives"]):
            assert calls == ["reduce_scatter", "all_gather"], (
                f"rank {rank} step {step} ran {calls}: ZeRO-2 reduce-scatters the gradients "
                "(no all_reduce) and all-gathers the parameters, once each"
            )
        for step, names in enumerate(r["full_grads_left"]):
            assert not names, f"rank {rank} step {step}: full gradients kept for {names}"
        assert r["shard_grad_shape"] == r["shard_shape"], (
            f"rank {rank}: the shard's gradient has shape {r['shard_grad_shape']}, "
            f"the shard {r['shard_shape']}"
        )


CHECKS = [check_training_equals_one_process, check_communication_and_memory]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[6:] for c in CHECKS])
def test_zero_step(impl: Any, check: Any) -> None:
    check(impl)


# ---- the checks catch wrong versions ------------------------------------------------------
def _flat_grad(zero: Any) -> Any:
    unit = zero.units[0]
    grads = [None if p.grad is None else p.grad.array for p in zero.model.parameters()]
    for p in zero.model.parameters():
        p.grad = None
    return unit, unit.layout.flatten(grads)


def _no_all_gather(zero: Any) -> None:
    """Wrong: each rank steps its shard and never shares it."""
    unit, flat = _flat_grad(zero)
    unit.shard.grad = Tensor._wrap(zero.pg.reduce_scatter(flat, op=ReduceOp.AVG))
    zero.optimizer.step()


def _summed_not_averaged(zero: Any) -> None:
    """Wrong: the gradient of the sum of the ranks' mean losses (N times too big)."""
    unit, flat = _flat_grad(zero)
    unit.shard.grad = Tensor._wrap(zero.pg.reduce_scatter(flat, op=ReduceOp.SUM))
    zero.optimizer.step()
    zero.pg.all_gather(unit.shard.array.copy(), out=unit.full.reshape(zero.world_size, -1))


def _stage_one(zero: Any) -> None:
    """Wrong for stage 2 (right numbers): all_reduce the full gradient, keep a slice."""
    unit, flat = _flat_grad(zero)
    zero.pg.all_reduce(flat, op=ReduceOp.AVG)
    unit.shard.grad = Tensor._wrap(unit.layout.shard(flat, zero.rank).copy())
    zero.optimizer.step()
    zero.pg.all_gather(unit.shard.array.copy(), out=unit.full.reshape(zero.world_size, -1))


WRONG = {  # name -> (implementation, the checks that must catch it at least)
    "no all_gather": (_no_all_gather, {"training_equals_one_process", "communication_and_memory"}),
    "summed, not averaged": (_summed_not_averaged, {"training_equals_one_process"}),
    "stage 1's all_reduce": (_stage_one, {"communication_and_memory"}),
}


@pytest.mark.parametrize("wrong", list(WRONG))
def test_the_checks_catch_a_wrong_step(wrong: str) -> None:
    fn, must_catch = WRONG[wrong]
    impl = types.SimpleNamespace(zero_step=fn)
    assert_caught(wrong, impl, CHECKS, must_catch)
