"""ZeRO under fp16/bf16 measures the paper's table, by dtype, from the arrays it really holds.

With Adam, Ψ parameters (padded: the flat buffers' length) and N ranks, after training a
rank holds exactly (bytes)::

    stage   16-bit parameters   16-bit gradients   fp32 optimizer (master 4 + moments 8)
    1       2Ψ                  2Ψ                 12Ψ/N
    2       2Ψ                  2Ψ/N               12Ψ/N
    3       2Ψ/N                2Ψ/N               12Ψ/N

plus one 4-byte ``step`` counter per optimized shard, and nothing in any other dtype. The
padded sizes are computed here from the model (stage 3 pads each unit on its own).
"""

from __future__ import annotations

import math

import pytest

from sparkgrad.autodiff import functional as F
from sparkgrad.models.sequence_parts import TokenCrossEntropy
from sparkgrad.parallel.memory_ledger import MemoryLedger
from tests.parallel import tp_gpt_helpers as gpt
from tests.parallel.strategy_truth import make_batches, make_model, optimizer_factory
from tests.parallel.test_memory_ledger import layer_sizes
from tests.parallel.zero_precision_truth import run_zero

DTYPE = {"fp16": "float16", "bf16": "bfloat16"}


def padded(numel: int, n: int) -> int:
    return math.ceil(numel / n) * n


def check_table(results: list, stage: int, world: int, precision: str, unit_sizes: list) -> None:
    P = sum(unit_sizes)  # noqa: N806 - the real parameter count
    psi = padded(P, world) if stage < 3 else sum(padded(s, world) for s in unit_sizes)
    counters = 1 if stage < 3 else len(unit_sizes)
    want = MemoryLedger.expected(stage, psi, world, "adam", precision)
    low = DTYPE[precision]
    assert want["optimizer"] == 12 * psi / world  # 4 master + 8 moments, sharded
    for r in results:
        d = r["ledger"]
        assert d["precision"] == precision and d["numel"] == P
        assert d["measured_by_dtype"] == {
            "parameters": {low: want["parameters"]},
            "gradients": {low: want["gradients"]},
            "optimizer": {"float32": want["optimizer"] + 4 * counters},
        }
        by_dtype = MemoryLedger.expected_by_dtype(stage, psi, world, "adam", precision)
        by_dtype["optimizer"]["float32"] += 4 * counters
        assert d["measured_by_dtype"] == by_dtype  # the prediction, split by dtype
        assert d["measured_bytes"]["total"] == want["total"] + 4 * counters
        assert d["expected_bytes"] == MemoryLedger.expected(stage, P, world, "adam", precision)
        assert d["expected_by_dtype"]["parameters"] == {low: d["expected_bytes"]["parameters"]}


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_mlp_measures_the_paper_table(stage: int, world: int, precision: str) -> None:
    models = [make_model() for _ in range(world)]
    factory = optimizer_factory("adam")
    results = run_zero(models, factory, F.cross_entropy, make_batches(2, 24), stage, precision)
    check_table(results, stage, world, precision, layer_sizes())


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_gpt_measures_the_paper_table(stage: int, world: int) -> None:
    batches = gpt.make_batches(2, batch=8)
    results = run_zero(
        [gpt.build(0) for _ in range(world)], gpt.optimizer_factory("adamw"), TokenCrossEntropy(),
        batches, stage, "fp16",
    )  # fmt: skip
    P = sum(p.array.size for p in gpt.build(0).parameters())  # noqa: N806
    if stage < 3:
        sizes = [P]
    else:  # stage 3 pads each unit: their sizes, checked to add up to the model's
        sizes = [u.layout.numel for u in results[0]["strategy"].units]
        assert sum(sizes) == P and len(sizes) > 1
    check_table(results, stage, world, "fp16", sizes)
