"""Communication is measured once: what a strategy reports is what the transport sent.

The truth is the transport's own count of the payload bytes it handed to the wire
(``transport.traffic``). Every strategy reads its bytes from the communicator's call
records, which the transport fills, so the two agree for every algorithm the tuner (or
``NCCL_ALGO``) picks -- including tree and halving-doubling, where the old ring formula
``2 (n-1)/n * S`` was wrong.
"""

from __future__ import annotations

import numpy as np
import pytest

import sparkgrad as sg
import sparkgrad.distributed as dist
from sparkgrad.autodiff import functional as F
from sparkgrad.parallel.registry import make_strategy
from tests.parallel.strategy_truth import make_batches, make_model, optimizer_factory

STRATEGY_OPTIONS = {
    "data": {},
    "zero1": {},
    "zero2": {},
    "zero3": {},
    "tensor": {},
    "model": {},
    "pipeline": {"micro_batches": 2},
    "hybrid": {"mesh": "dp=2,tp=2"},
}


def _reported_and_moved(name: str, world: int, options: dict) -> list[tuple[int, int]]:
    """Per rank: (bytes the strategy reports for 2 steps, bytes its transport sent)."""
    batches = make_batches(2, 16)

    def rank_fn(rank: int, world_size: int) -> tuple[int, int]:
        dist.init_process_group("threads", rank=rank, world_size=world_size)
        try:
            strategy = make_strategy(
                name, make_model(), optimizer_factory("sgd"), F.cross_entropy, **options
            )
            traffic = dist.state.default_group().pg.transport.traffic
            strategy.timeline.reset()
            before = traffic.bytes_sent
            d, r = strategy.data_parallel_size, strategy.data_parallel_rank
            for x, y in batches:
                rows = slice(r * len(x) // d, (r + 1) * len(x) // d)
                strategy.train_step(sg.tensor(x[rows]), sg.tensor(y[rows]))
            return strategy.report()["bytes_sent"], traffic.bytes_sent - before
        finally:
            dist.destroy_process_group()

    return dist.spawn(rank_fn, world)


@pytest.mark.parametrize("algorithm", ["ring", "tree", "halving_doubling"])
def test_data_parallel_reports_the_bytes_each_all_reduce_algorithm_moved(monkeypatch, algorithm):
    monkeypatch.setenv("NCCL_ALGO", algorithm)
    for reported, moved in _reported_and_moved("data", 4, {}):
        assert moved > 0 and reported == moved


@pytest.mark.parametrize("algorithm", ["tree", "halving_doubling"])
def test_other_algorithms_move_other_bytes_than_the_ring_formula_said(algorithm):
    """The formula the strategies used to write by hand is wrong off the ring.

    On 5 ranks a double binary tree sends one or two halves of the buffer up and down
    depending on where a rank sits; halving-doubling folds rank 4 into rank 0, which
    sends it everything back. The ring itself sends 2(n-1)/n of the buffer, up to the
    rounding of uneven chunks.
    """
    buf = np.ones(1 << 12, np.float32)

    def rank_fn(rank: int, world_size: int) -> int:
        dist.init_process_group("threads", rank=rank, world_size=world_size)
        try:
            pg = dist.state.default_group().pg
            pg.all_reduce(buf.copy(), algorithm=algorithm)
            pg.all_reduce(buf.copy(), algorithm="ring")
            assert sum(r["bytes_sent"] for r in pg.history) == pg.transport.traffic.bytes_sent
            return pg.history[0]["bytes_sent"], pg.history[1]["bytes_sent"]
        finally:
            dist.destroy_process_group()

    n = 5
    ring_formula = 2 * (n - 1) * buf.nbytes // n
    sent = dist.spawn(rank_fn, n)
    assert all(abs(ring - ring_formula) <= 4 for _, ring in sent)
    assert sum(abs(other - ring_formula) for other, _ in sent) > buf.nbytes


@pytest.mark.parametrize("name", sorted(STRATEGY_OPTIONS))
def test_every_strategy_reports_what_its_transport_sent(name):
    for reported, moved in _reported_and_moved(name, 4, STRATEGY_OPTIONS[name]):
        assert reported == moved
