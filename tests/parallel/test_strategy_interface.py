"""The Strategy interface on the two strategies that exist first: single and data.

DataParallelStrategy on N thread ranks, each with its rows of the global batch, must end
with the weights, optimizer state and losses of one process on the whole batch.
"""

from __future__ import annotations

import numpy as np
import pytest

import sparkgrad as sg
import sparkgrad.distributed as dist
from sparkgrad.autodiff import functional as F
from sparkgrad.parallel.data.strategy import DataParallelStrategy
from tests.parallel.strategy_truth import (
    assert_same_state,
    make_batches,
    make_model,
    optimizer_factory,
    rows,
    train_single,
)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("world_size", [2, 4])
def test_data_parallel_strategy_equals_single_process(world_size: int, optimizer: str) -> None:
    batches = make_batches(steps=4, batch=8)
    truth = train_single(batches, optimizer)

    def rank_fn(rank: int, world: int) -> dict:
        dist.init_process_group("threads", rank=rank, world_size=world)
        try:
            s = DataParallelStrategy(make_model(), optimizer_factory(optimizer), F.cross_entropy)
            assert (s.data_parallel_size, s.data_parallel_rank) == (world, rank)
            losses = [
                s.train_step(sg.tensor(rows(x, world, rank)), sg.tensor(rows(y, world, rank)))
                for x, y in batches
            ]
            logits = s.predict(sg.tensor(batches[0][0])).numpy()
            return {
                "state": s.full_state_dict(),
                "opt": s.full_optimizer_state_dict(),
                "losses": losses,
                "logits": logits,
                "report": s.report(),
            }
        finally:
            dist.destroy_process_group()

    results = dist.spawn(rank_fn, world_size)
    for r in results:
        assert_same_state(r["state"], truth["state"])
        np.testing.assert_allclose(r["losses"], truth["losses"], rtol=1e-5)
        for i, s in truth["optimizer_state"]["state"].items():
            for k, v in s.items():
                np.testing.assert_allclose(r["opt"]["state"][i][k], v, rtol=1e-5, atol=1e-7)
        assert r["logits"].shape == (8, 4)
        assert r["report"]["compute_s"] > 0


def test_load_full_state_round_trips() -> None:
    batches = make_batches(steps=2, batch=8)
    truth = train_single(batches, "adam")
    from sparkgrad.parallel.single import SingleProcess

    fresh = SingleProcess(make_model(seed=5), optimizer_factory("adam"), F.cross_entropy)
    fresh.load_full_state(truth["state"], truth["optimizer_state"])
    assert_same_state(fresh.full_state_dict(), truth["state"], rtol=0, atol=0)
