"""``--recompute`` under the ZeRO strategies: the same steps, bit for bit, as without it.

ZeRO-2 reduces each gradient from a hook as soon as backward has it, and ZeRO-3 gathers
each unit's weights in forward and again when a checkpointed block is recomputed in
backward (as DeepSpeed does); the ranks recompute in the same order, so the collectives
still pair up. The truth is the same strategy with ``recompute="none"``: 2 thread ranks,
3 AdamW steps on a 2-layer GPT in float64, every loss and weight equal (``==``).
"""

from __future__ import annotations

import numpy as np
import pytest

import sparkgrad as sg
import sparkgrad.distributed as dist
from sparkgrad.models.gpt import build_gpt
from sparkgrad.models.sequence_parts import TokenCrossEntropy
from sparkgrad.parallel.zero.strategy import ZeRO

VOCAB, BATCH, STEPS = 11, 4, 3


def _run(stage: int, recompute: str) -> list[dict]:
    rng = np.random.default_rng(1)
    batches = [(x, y) for x, y in rng.integers(0, VOCAB, (STEPS, 2, BATCH, 8))]
    models = [
        build_gpt(
            VOCAB, 0, context=8, d_model=8, nhead=2, num_layers=2, recompute=recompute
        ).double()
        for _ in range(2)
    ]  # built before the ranks start: the builders seed the shared global generator

    def rank_fn(rank: int, size: int) -> dict:
        dist.init_process_group("threads", rank=rank, world_size=size)
        try:
            s = ZeRO(
                models[rank], lambda p: sg.optim.AdamW(p, lr=1e-2), TokenCrossEntropy(), stage=stage
            )
            losses = []
            for x, y in batches:
                mine = slice(rank * BATCH // size, (rank + 1) * BATCH // size)
                losses.append(s.train_step(sg.tensor(x[mine]), sg.tensor(y[mine])))
            return {"losses": losses, "state": s.full_state_dict()}
        finally:
            dist.destroy_process_group()

    return dist.spawn(rank_fn, 2)


@pytest.mark.parametrize("stage", [2, 3])
@pytest.mark.parametrize("recompute", ["blocks", "selective"])
def test_zero_with_recompute_equals_zero_without_it(stage, recompute):
    for plain, checked in zip(_run(stage, "none"), _run(stage, recompute), strict=True):
        assert plain["losses"] == checked["losses"]
        assert list(plain["state"]) == list(checked["state"])
        for name, value in plain["state"].items():
            assert np.array_equal(value, checked["state"][name]), name
