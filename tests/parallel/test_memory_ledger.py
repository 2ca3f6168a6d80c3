"""MemoryLedger: bytes per rank of parameters, gradients and optimizer state, measured.

The strategies' live arrays are measured; the test computes the padded sizes itself from
the model and checks the measurement against the ZeRO formulas (fp32, Adam: 16P for data
parallel, 8P + 8P/N, 4P + 12P/N, 16P/N). The only extra bytes allowed are the padding and
one 4-byte ``step`` counter per optimized tensor.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import sparkgrad as sg
import sparkgrad.distributed as dist
from sparkgrad.autodiff import functional as F
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.data.strategy import DataParallelStrategy
from sparkgrad.parallel.memory_ledger import MemoryLedger, held_bytes
from sparkgrad.parallel.zero.strategy import ZeRO
from tests.parallel.strategy_truth import make_batches, make_model, optimizer_factory, rows

BATCH = 24


def layer_sizes() -> list[int]:
    """Elements per Linear layer (weight + bias) of the test model, counted here."""
    model = make_model()
    return [
        sum(p.array.size for p in child.parameters())
        for _, child in model.named_children()
        if list(child.parameters())
    ]


def padded(numel: int, n: int) -> int:
    return math.ceil(numel / n) * n


def ledgers(stage: int, world: int, optimizer: str, steps: int) -> list[dict]:
    """Each rank's ledger (as a dict) before training and after ``steps`` steps."""
    models = [make_model() for _ in range(world)]
    batches = make_batches(steps, BATCH)

    def rank_fn(rank: int, world_size: int) -> dict:
        dist.init_process_group("threads", rank=rank, world_size=world_size)
        try:
            if stage == 0:
                s = DataParallelStrategy(
                    models[rank], optimizer_factory(optimizer), F.cross_entropy
                )
                measure = lambda: MemoryLedger.from_module(  # noqa: E731
                    s.model.module, s.optimizer, world_size, optimizer
                )
            else:
                s = ZeRO(models[rank], optimizer_factory(optimizer), F.cross_entropy, stage=stage)
                measure = s.memory_ledger
            before = measure().as_dict()
            for x, y in batches:
                s.train_step(sg.tensor(rows(x, world, rank)), sg.tensor(rows(y, world, rank)))
            return {"before": before, "after": measure().as_dict(), "table": measure().table()}
        finally:
            dist.destroy_process_group()

    return dist.spawn(rank_fn, world)


@pytest.mark.parametrize("world", [2, 3, 4])
@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_measured_bytes_match_the_formula_up_to_padding(stage: int, world: int) -> None:
    sizes = layer_sizes()
    P = sum(sizes)  # noqa: N806
    if stage == 0:
        padded_p, scalars = P, 2 * len(sizes)  # one step counter per parameter tensor
    elif stage < 3:
        padded_p, scalars = padded(P, world), 1  # one flat buffer, one shard tensor
    else:
        padded_p, scalars = sum(padded(s, world) for s in sizes), len(sizes)  # one per layer
    want = MemoryLedger.expected(stage, padded_p, world, "adam")
    at_p = MemoryLedger.expected(stage, P, world, "adam")
    for r in ledgers(stage, world, "adam", steps=2):
        got = r["after"]["measured_bytes"]
        assert got["parameters"] == want["parameters"]
        assert got["gradients"] == want["gradients"]
        assert got["optimizer"] == want["optimizer"] + 4 * scalars
        # against the formula at the real P: off by no more than padding and step counters
        assert 0 <= got["total"] - at_p["total"] <= want["total"] - at_p["total"] + 4 * scalars
        assert r["after"]["expected_bytes"] == at_p  # the report carries the formula at P
        # measured, not evaluated: Adam's moments do not exist before the first step
        assert r["before"]["measured_bytes"]["optimizer"] == 0
        assert f"ZeRO stage {stage}" in r["table"] and "optimizer" in r["table"]


def test_sgd_momentum_keeps_one_buffer() -> None:
    P = sum(layer_sizes())  # noqa: N806
    for r in ledgers(2, 4, "sgd", steps=1):
        got = r["after"]["measured_bytes"]["optimizer"]
        assert got == MemoryLedger.expected(2, padded(P, 4), 4, "sgd")["optimizer"]
        assert r["after"]["optimizer"] == "sgd"


def test_zero_stages_shrink_memory() -> None:
    totals = [
        ledgers(stage, 4, "adam", steps=1)[0]["after"]["measured_bytes"]["total"]
        for stage in range(4)
    ]
    assert totals == sorted(totals, reverse=True) and len(set(totals)) == 4


def test_expected_totals_are_the_zero_formulas() -> None:
    for P, N in [(1000, 1), (1000, 4), (12345, 8)]:  # noqa: N806
        totals = [MemoryLedger.expected(s, P, N)["total"] for s in range(4)]
        closed = [16 * P, 8 * P + 8 * P / N, 4 * P + 12 * P / N, 16 * P / N]
        np.testing.assert_allclose(totals, closed)
        # with SGD momentum the optimizer part is 4P (sharded from stage 1 on)
        assert MemoryLedger.expected(1, P, N, "sgd")["optimizer"] == pytest.approx(4 * P / N)


def test_held_bytes_counts_each_owner_once() -> None:
    flat = np.zeros(100, np.float32)
    views = [flat[:10], flat[10:60].reshape(5, 10), flat]
    assert held_bytes(views) == 400
    assert held_bytes([None, sg.tensor(np.zeros(3, np.float32))]) == 12
    assert held_bytes([np.zeros(3, np.float64), np.zeros(3, np.float64)]) == 48  # two owners


def test_as_dict_is_json_and_errors_are_clear() -> None:
    ledger = MemoryLedger([np.zeros(8, np.float32)], [], [], stage=3, world_size=2, numel=16)
    d = json.loads(json.dumps(ledger.as_dict()))
    assert d["measured_bytes"]["parameters"] == 32 and d["expected_bytes"]["parameters"] == 32
    with pytest.raises(ConfigError, match="stage must be 0..3, found 4"):
        MemoryLedger.expected(4, 10, 2)
    with pytest.raises(ConfigError, match="optimizer must be one of"):
        MemoryLedger.expected(1, 10, 2, "lion")
