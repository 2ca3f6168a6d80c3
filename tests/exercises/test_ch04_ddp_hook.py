"""Chapter 4 exercise: DDP's bucket hook, ``mark_ready(ddp, p)``.

The hook under test is put into a real ``DataParallel`` on thread ranks, with buckets so
small that a 4-layer MLP needs several. Truths: a single process on the global batch (the
gradients right after ``loss.backward()`` returns, and the weights after three SGD steps
with momentum), and the launch record: every bucket launched once per backward, in index
order, the first one while gradients were still missing (communication overlapping
backward).
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest

import sparkgrad as sg
from exercises.reference import DataParallel, install_mark_ready, record_launches, run_ranks
from tests.exercises.catching import assert_caught

EXERCISE = "ddp_hook"
pytestmark = pytest.mark.exercise_ddp_hook

WIDTHS = (6, 16, 16, 8, 3)  # parameters of 112, 16, 256, 16, 128, 8, 24, 3 floats
BYTES = 1 / 2**20  # one byte, in megabytes
STEPS, LR, MOMENTUM = 3, 0.1, 0.9


def make_model() -> sg.nn.Module:
    sg.manual_seed(0)
    layers: list[sg.nn.Module] = []
    for a, b in zip(WIDTHS[:-1], WIDTHS[1:]):
        layers += [sg.nn.Linear(a, b), sg.nn.ReLU()]
    return sg.nn.Sequential(*layers[:-1])


def batches(world: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    b = 4 * world
    return [
        (rng.standard_normal((b, WIDTHS[0])).astype(np.float32), rng.integers(0, WIDTHS[-1], b))
        for _ in range(STEPS)
    ]


def single_process(data: list) -> tuple[list[dict], dict]:
    """Per-step gradients and the final weights of one process on the global batches."""
    model = make_model()
    opt = sg.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    grads = []
    for x, y in data:
        opt.zero_grad()
        sg.nn.functional.cross_entropy(model(sg.tensor(x)), sg.tensor(y)).backward()
        grads.append({n: p.grad.numpy().copy() for n, p in model.named_parameters()})
        opt.step()
    return grads, {k: v.numpy() for k, v in model.state_dict().items()}


def data_parallel(mark_ready: Any, world: int, data: list) -> list[dict]:
    """DataParallel with ``mark_ready`` as its hook: per rank, what the checks read."""
    models = [make_model() for _ in range(world)]  # built here: seeding is not per thread

    def fn(rank: int, group: Any) -> dict:
        ddp = DataParallel(models[rank], bucket_cap_mb=300 * BYTES, first_bucket_mb=100 * BYTES)
        install_mark_ready(ddp, mark_ready)
        launches = record_launches(ddp)
        opt = sg.optim.SGD(ddp.parameters(), lr=LR, momentum=MOMENTUM)
        grads, per_step = [], []
        for x, y in data:
            n = len(x) // world
            xs, ys = x[rank * n : (rank + 1) * n], y[rank * n : (rank + 1) * n]
            opt.zero_grad()
            del launches[:]
            loss = sg.nn.functional.cross_entropy(ddp(sg.tensor(xs)), sg.tensor(ys))
            loss.backward()  # must return with averaged gradients
            grads.append({n: p.grad.numpy().copy() for n, p in ddp.module.named_parameters()})
            per_step.append(list(launches))
            opt.step()
        state = {k: v.numpy() for k, v in ddp.module.state_dict().items()}
        return {"grads": grads, "launches": per_step, "state": state, "buckets": len(ddp.buckets)}

    return run_ranks(world, fn)


# ---- the checks ---------------------------------------------------------------------------
def check_gradients_are_averaged_when_backward_returns(impl: Any) -> None:
    for world in (2, 3):
        data = batches(world)
        want, _ = single_process(data)
        for rank, r in enumerate(data_parallel(impl.mark_ready, world, data)):
            for step, (got, truth) in enumerate(zip(r["grads"], want)):
                assert sorted(got) == sorted(truth), f"rank {rank} step {step}: grads missing"
                for name in truth:
                    np.testing.assert_allclose(
                        got[name],
                        truth[name],
                        rtol=1e-5,
                        atol=1e-6,
                        err_msg=f"{world} ranks, rank {rank}, step {step}: {name}.grad",
                    )


def check_training_equals_one_process(impl: Any) -> None:
    data = batches(2)
    _, want = single_process(data)
    for rank, r in enumerate(data_parallel(impl.mark_ready, 2, data)):
        for name, value in want.items():
            np.testing.assert_allclose(
                r["state"][name], value, rtol=1e-5, atol=1e-6, err_msg=f"rank {rank}: {name}"
            )


def check_buckets_launch_in_order_while_backward_runs(impl: Any) -> None:
    for rank, r in enumerate(data_parallel(impl.mark_ready, 2, batches(2))):
        assert r["buckets"] >= 3, "the test needs several buckets"
        for step, launches in enumerate(r["launches"]):
            order = [index for index, _ in launches]
            assert order == list(range(r["buckets"])), (
                f"rank {rank} step {step}: buckets launched in the order {order}; expected "
                "each once, in index order"
            )
            missing = launches[0][1]
            assert missing > 0, (
                f"rank {rank} step {step}: bucket 0 was launched only once every gradient "
                "was in; launch it as soon as it is full, while backward still runs"
            )


CHECKS = [
    check_gradients_are_averaged_when_backward_returns,
    check_training_equals_one_process,
    check_buckets_launch_in_order_while_backward_runs,
]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[6:] for c in CHECKS])
def test_ddp_hook(impl: Any, check: Any) -> None:
    check(impl)


# ---- the checks catch wrong versions ------------------------------------------------------
def _launch_at_the_end(ddp: Any, p: Any) -> None:
    """Wrong (right numbers): waits until every bucket is full, so nothing overlaps."""
    ddp._ready.add(id(p))
    bucket, position = ddp._where[id(p)]
    bucket.fill(position)
    if all(b.ready for b in ddp.buckets):
        for b in ddp.buckets:
            ddp._launch(b)
        ddp._next_bucket = len(ddp.buckets)
        ddp._finalize()


def _never_launches(ddp: Any, p: Any) -> None:
    """Wrong: fills the buckets and unpacks them, but never starts an all_reduce."""
    ddp._ready.add(id(p))
    bucket, position = ddp._where[id(p)]
    bucket.fill(position)
    if all(b.ready for b in ddp.buckets):
        ddp._next_bucket = len(ddp.buckets)
        ddp._finalize()


def _fills_the_wrong_slot(ddp: Any, p: Any) -> None:
    """Wrong: every gradient lands in its bucket's first slot."""
    ddp._ready.add(id(p))
    bucket, _ = ddp._where[id(p)]
    bucket.fill(0)
    while ddp._next_bucket < len(ddp.buckets) and ddp.buckets[ddp._next_bucket].ready:
        ddp._launch(ddp.buckets[ddp._next_bucket])
        ddp._next_bucket += 1
    if ddp._next_bucket == len(ddp.buckets):
        ddp._finalize()


WRONG = {  # name -> (implementation, the checks that must catch it at least)
    "launches at the end": (
        types.SimpleNamespace(mark_ready=_launch_at_the_end),
        {"buckets_launch_in_order_while_backward_runs"},
    ),
    "never launches": (
        types.SimpleNamespace(mark_ready=_never_launches),
        {"gradients_are_averaged_when_backward_returns", "training_equals_one_process"},
    ),
    "fills the wrong slot": (
        types.SimpleNamespace(mark_ready=_fills_the_wrong_slot),
        {"gradients_are_averaged_when_backward_returns", "training_equals_one_process"},
    ),
}


@pytest.mark.parametrize("wrong", list(WRONG))
def test_the_checks_catch_a_wrong_hook(wrong: str) -> None:
    impl, must_catch = WRONG[wrong]
    assert_caught(wrong, impl, CHECKS, must_catch)
