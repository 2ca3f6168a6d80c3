"""TensorParallel on N thread ranks must train exactly what one process trains.

Truth: :func:`tests.parallel.strategy_truth.train_single` on the same global batches and
seed. Every rank sees the whole batch (``data_parallel_size`` 1). The thread ranks share
sparkgrad's one seeded generator, so each rank builds its model under a lock: otherwise
two threads seeding and drawing at once would interleave and get different weights.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import sparkgrad as sg
import sparkgrad.distributed as dist
from sparkgrad.autodiff import functional as F
from sparkgrad.errors import CheckpointError, ConfigError
from sparkgrad.parallel.single import SingleProcess
from sparkgrad.parallel.tensor.strategy import TensorParallel
from tests.parallel.strategy_truth import (
    assert_same_state,
    make_batches,
    make_model,
    optimizer_factory,
    rows,
    train_single,
)

TP_WIDTHS = (12, 24, 24, 12, 4)  # split widths 24 and 12: divisible by 2, 3 and 4
ODD_WIDTHS = (12, 24, 12, 4)  # three Linear layers: the head stays replicated
BUILD_LOCK = threading.Lock()


def build(seed: int = 0, widths: tuple = TP_WIDTHS) -> sg.nn.Module:
    """``make_model`` on a thread rank, one thread at a time (see the module docstring)."""
    with BUILD_LOCK:
        return make_model(seed, widths)


def tp_maker(optimizer: str, seed: int = 0, widths: tuple = TP_WIDTHS) -> Callable[[], Any]:
    """What each rank calls to build its TensorParallel strategy."""
    return lambda: TensorParallel(
        build(seed, widths), optimizer_factory(optimizer), F.cross_entropy
    )


def run_strategy(
    world: int,
    make: Callable[[], Any],
    batches: list,
    load: tuple | None = None,
    predict_x: np.ndarray | None = None,
) -> list[dict]:
    """On ``world`` thread ranks: build with ``make()``, optionally load a full state,
    train on this rank's rows of every batch, return state, optimizer state and losses."""

    def rank_fn(rank: int, world_size: int) -> dict:
        dist.init_process_group("threads", rank=rank, world_size=world_size)
        try:
            s = make()
            if load is not None:
                s.load_full_state(*load)
            n, r = s.data_parallel_size, s.data_parallel_rank
            losses = [
                s.train_step(sg.tensor(rows(x, n, r)), sg.tensor(rows(y, n, r))) for x, y in batches
            ]
            out = {
                "state": s.full_state_dict(),
                "opt": s.full_optimizer_state_dict(),
                "losses": losses,
                "report": s.report(),
                "dp": (n, r),
            }
            if predict_x is not None:
                out["logits"] = s.predict(sg.tensor(predict_x)).numpy()
            return out
        finally:
            dist.destroy_process_group()

    return dist.spawn(rank_fn, world)


def assert_matches_truth(results: list[dict], truth: dict) -> None:
    for r in results:
        assert_same_state(r["state"], truth["state"])
        np.testing.assert_allclose(r["losses"], truth["losses"], rtol=1e-5)
        want = truth["optimizer_state"]
        assert sorted(r["opt"]["state"]) == sorted(want["state"])
        for i, s in want["state"].items():
            assert sorted(r["opt"]["state"][i]) == sorted(s)
            for k, v in s.items():
                np.testing.assert_allclose(r["opt"]["state"][i][k], v, rtol=1e-5, atol=1e-7)


def single_logits(state: dict, x: np.ndarray, widths: tuple) -> np.ndarray:
    model = make_model(9, widths)
    model.load_state_dict(state)
    with sg.no_grad():
        return model(sg.tensor(x)).numpy()


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("world", [2, 3, 4])
def test_tensor_parallel_equals_single_process(world: int, optimizer: str) -> None:
    batches = make_batches(steps=3, batch=8)
    truth = train_single(batches, optimizer, widths=TP_WIDTHS)
    make = tp_maker(optimizer)
    results = run_strategy(world, make, batches, predict_x=batches[0][0])
    assert_matches_truth(results, truth)
    logits = single_logits(truth["state"], batches[0][0], TP_WIDTHS)
    for r in results:
        assert r["dp"] == (1, 0)
        np.testing.assert_allclose(r["logits"], logits, rtol=1e-5, atol=1e-6)
        assert r["report"]["comm_s"] > 0 and r["report"]["bytes_sent"] > 0


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_odd_number_of_linears_replicates_the_head(optimizer: str) -> None:
    batches = make_batches(steps=3, batch=8)
    truth = train_single(batches, optimizer, widths=ODD_WIDTHS)
    make = tp_maker(optimizer, widths=ODD_WIDTHS)
    assert_matches_truth(run_strategy(4, make, batches), truth)


def test_checkpoint_moves_between_strategies_and_world_sizes() -> None:
    batches = make_batches(steps=4, batch=8)
    truth = train_single(batches, "adam", widths=TP_WIDTHS)
    first, second = batches[:2], batches[2:]

    # tensor parallel on 2 ranks -> a single process
    make2 = tp_maker("adam")
    half = run_strategy(2, make2, first)[0]
    single = SingleProcess(make_model(7, TP_WIDTHS), optimizer_factory("adam"), F.cross_entropy)
    single.load_full_state(half["state"], half["opt"])
    for x, y in second:
        single.train_step(sg.tensor(x), sg.tensor(y))
    assert_same_state(single.full_state_dict(), truth["state"])

    # a single process -> tensor parallel on 4 ranks (other seed: the load must overwrite it)
    start = train_single(first, "adam", widths=TP_WIDTHS)
    make4 = tp_maker("adam", seed=7)
    load = (start["state"], start["optimizer_state"])
    for r in run_strategy(4, make4, second, load=load):
        assert_same_state(r["state"], truth["state"])


def test_world_size_that_does_not_divide_the_widths_is_a_clear_error() -> None:
    make = tp_maker("sgd", widths=(12, 16, 4))
    with pytest.raises(ConfigError, match="3 does not divide 16"):
        run_strategy(3, make, [])


def test_non_elementwise_module_inside_a_pair_is_a_clear_error() -> None:
    def make() -> TensorParallel:
        model = sg.nn.Sequential(sg.nn.Linear(4, 8), sg.nn.Softmax(dim=-1), sg.nn.Linear(8, 2))
        return TensorParallel(model, optimizer_factory("sgd"), F.cross_entropy)

    with pytest.raises(ConfigError, match="elementwise"):
        run_strategy(2, make, [])


def test_loading_a_state_of_other_widths_is_a_clear_error() -> None:
    other = train_single(make_batches(steps=1, batch=8), "sgd", widths=(12, 16, 16, 8, 4))

    with pytest.raises(CheckpointError, match=r"0.weight: expected a full tensor of shape"):
        run_strategy(2, tp_maker("sgd"), [], load=(other["state"], None))
