"""ModelParallel: the layers split over N thread ranks must train exactly like one process.

The truth is ``train_single`` (one process, whole batch). Also here: the partition rules
(balanced by parameters against a brute force, ReLU kept with its Linear, explicit
``split``), the clear errors, and checkpoints moving between strategies and world sizes.
``run_strategy`` is shared with the pipeline tests.
"""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

import sparkgrad as sg
import sparkgrad.distributed as dist
from sparkgrad.autodiff import functional as F
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.pipeline.model_parallel import ModelParallel
from sparkgrad.parallel.pipeline.partition import balanced_split, linear_units, partition
from sparkgrad.parallel.single import SingleProcess
from tests.parallel.strategy_truth import (
    assert_same_state,
    make_batches,
    make_model,
    optimizer_factory,
    train_single,
)

# sg.manual_seed reseeds one process-wide generator: thread ranks build their model one at
# a time, or two ranks could interleave their draws and start from different weights.
_BUILD_LOCK = threading.Lock()


def run_strategy(
    cls: type,
    world: int,
    optimizer: str,
    batches: list,
    start: dict | None = None,
    widths: tuple | None = None,
    **options: object,
) -> list[dict]:
    """Train ``cls`` on ``world`` thread ranks (from ``start``'s full state if given)."""

    def rank_fn(rank: int, world: int) -> dict:
        dist.init_process_group("threads", rank=rank, world_size=world)
        try:
            with _BUILD_LOCK:
                model = make_model() if widths is None else make_model(widths=widths)
            s = cls(model, optimizer_factory(optimizer), F.cross_entropy, **options)
            assert (s.data_parallel_size, s.data_parallel_rank) == (1, 0)
            if start is not None:
                s.load_full_state(start["state"], start["optimizer_state"])
            losses = [s.train_step(sg.tensor(x), sg.tensor(y)) for x, y in batches]
            return {
                "state": s.full_state_dict(),
                "optimizer_state": s.full_optimizer_state_dict(),
                "losses": losses,
                "logits": s.predict(sg.tensor(batches[0][0])).numpy(),
                "report": s.report(),
            }
        finally:
            dist.destroy_process_group()

    return dist.spawn(rank_fn, world)


def truth_logits(state: dict, x: np.ndarray) -> np.ndarray:
    model = make_model(seed=7)
    model.load_state_dict(state)
    return (
        SingleProcess(model, optimizer_factory("sgd"), F.cross_entropy)
        .predict(sg.tensor(x))
        .numpy()
    )


def assert_matches(result: dict, truth: dict, x: np.ndarray) -> None:
    """Weights, losses, optimizer state and predictions equal to the single process."""
    assert_same_state(result["state"], truth["state"])
    np.testing.assert_allclose(result["losses"], truth["losses"], rtol=1e-5)
    got, want = result["optimizer_state"], truth["optimizer_state"]
    assert sorted(got["state"]) == sorted(want["state"])
    for i, buffers in want["state"].items():
        assert sorted(got["state"][i]) == sorted(buffers)
        for k, v in buffers.items():
            np.testing.assert_allclose(got["state"][i][k], v, rtol=1e-5, atol=1e-7)
    assert [g["params"] for g in got["param_groups"]] == [g["params"] for g in want["param_groups"]]
    assert got["param_groups"][0]["lr"] == want["param_groups"][0]["lr"]
    want_logits = truth_logits(truth["state"], x)
    np.testing.assert_allclose(result["logits"], want_logits, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_model_parallel_equals_single_process(world_size: int, optimizer: str) -> None:
    batches = make_batches(steps=3, batch=8)
    truth = train_single(batches, optimizer)
    results = run_strategy(ModelParallel, world_size, optimizer, batches)
    for r in results:
        assert_matches(r, truth, batches[0][0])
    # every module of the Sequential lives on exactly one stage, in order
    layers = [name for r in results for name in r["report"]["layers"]]
    assert [int(n.split(":")[0]) for n in layers] == list(range(len(make_model())))
    assert [r["report"]["stage"] for r in results] == list(range(world_size))


def test_explicit_split_trains_the_same() -> None:
    batches = make_batches(steps=2, batch=6)
    truth = train_single(batches, "adam")
    results = run_strategy(ModelParallel, 2, "adam", batches, split=[3, 1])
    for r in results:
        assert_matches(r, truth, batches[0][0])
    linears = [[n for n in r["report"]["layers"] if "ReLU" not in n] for r in results]
    assert [len(group) for group in linears] == [3, 1]


def test_checkpoint_moves_between_strategies_and_world_sizes() -> None:
    batches = make_batches(steps=6, batch=8)
    truth = train_single(batches, "adam")
    first = train_single(batches[:2], "adam")  # a single-process checkpoint after 2 steps
    middle = run_strategy(ModelParallel, 3, "adam", batches[2:4], start=first)[1]
    # ModelParallel's full state (3 ranks) goes on in one process ...
    s = SingleProcess(make_model(seed=9), optimizer_factory("adam"), F.cross_entropy)
    s.load_full_state(middle["state"], middle["optimizer_state"])
    for x, y in batches[4:]:
        s.train_step(sg.tensor(x), sg.tensor(y))
    assert_same_state(s.full_state_dict(), truth["state"])
    # ... and on 2 ranks of ModelParallel
    last = run_strategy(ModelParallel, 2, "adam", batches[4:], start=middle)
    assert_same_state(last[0]["state"], truth["state"])


# -- partition -------------------------------------------------------------------------------
def brute_force_best(sizes: list[int], parts: int) -> int:
    """The smallest possible largest group, over every way of cutting ``sizes``."""
    best = None
    for cuts in itertools.combinations(range(1, len(sizes)), parts - 1):
        bounds = (0, *cuts, len(sizes))
        worst = max(sum(sizes[a:b]) for a, b in zip(bounds, bounds[1:]))
        best = worst if best is None else min(best, worst)
    return best


@pytest.mark.parametrize("seed", range(20))
def test_balanced_split_is_optimal(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = [int(v) for v in rng.integers(1, 100, rng.integers(1, 8))]
    parts = int(rng.integers(1, len(sizes) + 1))
    counts = balanced_split(sizes, parts)
    assert len(counts) == parts and min(counts) >= 1 and sum(counts) == len(sizes)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    worst = max(sum(sizes[a:b]) for a, b in zip(bounds, bounds[1:]))
    assert worst == brute_force_best(sizes, parts)


def test_partition_keeps_each_relu_with_its_linear() -> None:
    model = make_model(widths=(12, 64, 8, 8, 8, 4))
    for stages in range(1, 6):
        ranges = partition(model, stages)
        assert ranges[0][0] == 0 and ranges[-1][1] == len(model)
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        for start, end in ranges:
            assert isinstance(model[start], sg.nn.Linear)  # a stage starts at a Linear
            assert not isinstance(model[end - 1], sg.nn.Linear) or end == len(model)
    assert linear_units(model)[0] == (0, 2)


def test_partition_balances_parameters() -> None:
    model = make_model(widths=(12, 64, 8, 8, 8, 4))  # a heavy first layer, then small ones
    ranges = partition(model, 2)
    assert ranges[0] == (0, 2)  # the 12x64 layer alone outweighs all the others together


def test_clear_errors() -> None:
    model = make_model()  # 4 Linear layers
    with pytest.raises(ConfigError, match="5 pipeline stages need at least 5 Linear.*found 4"):
        partition(model, 5)
    with pytest.raises(ConfigError, match="2 positive Linear counts .* found \\[1, 1, 2\\]"):
        partition(model, 2, split=[1, 1, 2])
    with pytest.raises(ConfigError, match="summing to 4"):
        partition(model, 2, split=[1, 2])
    with pytest.raises(ConfigError, match="expect an nn.Sequential"):
        partition(sg.nn.Linear(2, 2), 1)


def test_more_ranks_than_layers_fails_on_every_rank() -> None:
    with pytest.raises(ConfigError, match="3 pipeline stages need at least 3 Linear"):
        run_strategy(ModelParallel, 3, "sgd", make_batches(1, 4), widths=(12, 8, 4))
