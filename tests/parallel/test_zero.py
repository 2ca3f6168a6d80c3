"""ZeRO stages 1, 2, 3 on thread ranks against one process on the whole batch.

Every rank trains on its rows of the global batch; after K steps the weights, the losses
and the optimizer state must be the single process's (rtol 1e-5), for SGD with momentum
and Adam, on 2, 3 and 4 ranks (3 ranks pad the flat buffers, so padding is exercised).

The models are built before the ranks start: ``make_model`` seeds sparkgrad's *global*
generator, which thread ranks would share and race on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import sparkgrad as sg
import sparkgrad.distributed as dist
from sparkgrad.autodiff import functional as F
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.registry import make_strategy
from sparkgrad.parallel.single import SingleProcess
from sparkgrad.parallel.zero.strategy import ZeRO
from tests.parallel.strategy_truth import (
    assert_same_state,
    make_batches,
    make_model,
    optimizer_factory,
    rows,
    train_single,
)

BATCH = 24  # divisible by 2, 3 and 4


def run_zero(
    stage: int,
    world: int,
    optimizer: str,
    batches: list,
    load: tuple[dict, dict] | None = None,
    extra: Callable[[ZeRO], dict] | None = None,
) -> list[dict[str, Any]]:
    """Train ZeRO-``stage`` on ``world`` thread ranks; each rank's results."""
    models = [make_model() for _ in range(world)]

    def rank_fn(rank: int, world_size: int) -> dict:
        dist.init_process_group("threads", rank=rank, world_size=world_size)
        try:
            s = ZeRO(models[rank], optimizer_factory(optimizer), F.cross_entropy, stage=stage)
            if load is not None:
                s.load_full_state(*load)
            losses = [
                s.train_step(sg.tensor(rows(x, world, rank)), sg.tensor(rows(y, world, rank)))
                for x, y in batches
            ]
            out = {
                "dp": (s.data_parallel_size, s.data_parallel_rank),
                "losses": losses,
                "logits": s.predict(sg.tensor(batches[0][0])).numpy(),
                "state": s.full_state_dict(),
                "opt": s.full_optimizer_state_dict(),
                "report": s.report(),
                "padding": [u.layout.padding for u in s.units],
                "full_pad": [u.gather()[u.layout.numel :].copy() for u in s.units],
            }
            out.update(extra(s) if extra else {})
            return out
        finally:
            dist.destroy_process_group()

    return dist.spawn(rank_fn, world)


def assert_same_optimizer_state(got: dict, want: dict) -> None:
    assert sorted(got["state"]) == sorted(want["state"])
    for i, s in want["state"].items():
        assert sorted(got["state"][i]) == sorted(s)
        for k, v in s.items():
            np.testing.assert_allclose(got["state"][i][k], v, rtol=1e-5, atol=1e-7, err_msg=k)
    assert got["param_groups"] == want["param_groups"]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("world", [2, 3, 4])
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_zero_equals_single_process(stage: int, world: int, optimizer: str) -> None:
    batches = make_batches(steps=4, batch=BATCH)
    truth = train_single(batches, optimizer)
    truth_model = make_model()
    truth_model.load_state_dict(truth["state"])
    with sg.no_grad():
        truth_logits = truth_model(sg.tensor(batches[0][0])).numpy()
    for rank, r in enumerate(run_zero(stage, world, optimizer, batches)):
        assert r["dp"] == (world, rank)
        assert_same_state(r["state"], truth["state"])
        np.testing.assert_allclose(r["losses"], truth["losses"], rtol=1e-5)
        assert_same_optimizer_state(r["opt"], truth["optimizer_state"])
        np.testing.assert_allclose(r["logits"], truth_logits, rtol=1e-5, atol=1e-6)
        for pad in r["full_pad"]:  # padding started at zero and never moved
            np.testing.assert_array_equal(pad, 0)
        if world == 3:
            assert sum(r["padding"]) > 0  # this case really has padding
        report = r["report"]
        assert report["stage"] == stage and report["strategy"] == f"zero{stage}"
        assert report["bytes_sent"] > 0 and report["comm_s"] > 0 and report["compute_s"] > 0
        assert report["memory"]["stage"] == stage


def test_stage2_sends_less_than_stage1() -> None:
    """reduce_scatter + all_gather moves less than all_reduce + all_gather."""
    batches = make_batches(steps=2, batch=BATCH)
    sent = {s: run_zero(s, 4, "sgd", batches)[0]["report"]["bytes_sent"] for s in (1, 2)}
    assert sent[2] < sent[1]


def test_stage3_holds_only_shards_between_steps() -> None:
    """The ZeRO-3 model's layers keep 1/N of the weights; nothing holds the full ones."""

    def shapes(s: ZeRO) -> dict:
        return {
            "model_params": [p.shape for p in s.model.parameters()],
            "shards": [u.shard.shape for u in s.units],
            "full": [u.full for u in s.units],
            "sizes": [u.layout.padded_numel for u in s.units],
        }

    r = run_zero(3, 4, "adam", make_batches(steps=1, batch=BATCH), extra=shapes)[0]
    assert r["model_params"] == [] and r["full"] == [None] * 4
    assert [s[0] * 4 for s in r["shards"]] == r["sizes"]


@pytest.mark.parametrize(
    ("first", "second"),
    [((3, 4), (2, 3)), ((1, 2), (3, 3)), ((2, 3), (1, 4))],
)
def test_checkpoint_moves_between_stages_and_world_sizes(first: tuple, second: tuple) -> None:
    """Save after 2 steps under one (stage, world), resume 2 steps under another."""
    batches = make_batches(steps=4, batch=BATCH)
    truth = train_single(batches, "adam")
    saved = run_zero(*first, "adam", batches[:2])[0]
    for r in run_zero(*second, "adam", batches[2:], load=(saved["state"], saved["opt"])):
        assert_same_state(r["state"], truth["state"])
        assert_same_optimizer_state(r["opt"], truth["optimizer_state"])


def test_checkpoint_moves_to_and_from_single_process() -> None:
    batches = make_batches(steps=4, batch=BATCH)
    truth = train_single(batches, "sgd")
    # ZeRO-3 on 4 ranks -> a single process
    saved = run_zero(3, 4, "sgd", batches[:2])[0]
    single = SingleProcess(make_model(seed=7), optimizer_factory("sgd"), F.cross_entropy)
    single.load_full_state(saved["state"], saved["opt"])
    for x, y in batches[2:]:
        single.train_step(sg.tensor(x), sg.tensor(y))
    assert_same_state(single.full_state_dict(), truth["state"])
    # a single process -> ZeRO-2 on 3 ranks
    half = train_single(batches[:2], "sgd")
    for r in run_zero(2, 3, "sgd", batches[2:], load=(half["state"], half["optimizer_state"])):
        assert_same_state(r["state"], truth["state"])


def test_registry_names_build_zero() -> None:
    def rank_fn(rank: int, world: int) -> tuple:
        dist.init_process_group("threads", rank=rank, world_size=world)
        try:
            s = make_strategy("zero2", model, optimizer_factory("sgd"), F.cross_entropy)
            return type(s).__name__, s.stage, s.name
        finally:
            dist.destroy_process_group()

    model = make_model()
    assert dist.spawn(rank_fn, 1) == [("ZeRO", 2, "zero2")]


def test_clear_errors() -> None:
    with pytest.raises(ConfigError, match="found stage=4"):
        ZeRO(make_model(), optimizer_factory("sgd"), F.cross_entropy, stage=4)

    # ZeRO-3 no longer refuses layers other than Linear: tests/parallel/test_zero3_models.py
    def rank_fn(rank: int, world: int) -> list[str]:
        dist.init_process_group("threads", rank=rank, world_size=world)
        errors = []
        try:
            s = ZeRO(make_model_copy, optimizer_factory("adam"), F.cross_entropy, stage=1)
            try:
                s.load_full_state({"0.weight": np.zeros((16, 12), np.float32)})
            except ConfigError as e:
                errors.append(str(e))
            return errors
        finally:
            dist.destroy_process_group()

    make_model_copy = make_model()
    (errors,) = dist.spawn(rank_fn, 1)
    assert len(errors) == 1
    assert "lacks keys ['0.bias'" in errors[0]
