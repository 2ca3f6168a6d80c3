"""Data parallelism and ZeRO 1/2/3 on the GPT need no change to the model: on 2 and 4 thread
ranks (8 in a slow test) they end K steps with a single process's weights, losses and
optimizer state (rtol 1e-5; the truth and the AdamW settings: tests/parallel/tp_gpt_helpers).

Every target is scored (no ``ignore_index``): the replicas average equal shares of tokens.
"""

from __future__ import annotations

import pytest

from sparkgrad.models.sequence_parts import TokenCrossEntropy
from sparkgrad.parallel.registry import make_strategy
from tests.parallel.test_gpt_mesh import OPTIONS, batches
from tests.parallel.tp_gpt_helpers import (
    assert_matches,
    build,
    optimizer_factory,
    run_ranks,
    train_single,
)


def maker(name: str, optimizer: str):
    def make():
        return make_strategy(
            name, build(0, **OPTIONS), optimizer_factory(optimizer), TokenCrossEntropy()
        )

    return make


@pytest.mark.parametrize("name", ["data", "zero1", "zero2", "zero3"])
@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_data_and_zero_on_the_gpt_equal_one_process(name: str, world: int, optimizer: str):
    data = batches()
    assert_matches(
        run_ranks(world, maker(name, optimizer), data), train_single(data, optimizer, **OPTIONS)
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["data", "zero1", "zero2", "zero3"])
def test_eight_ranks(name: str):
    data = batches(2)
    assert_matches(run_ranks(8, maker(name, "adamw"), data), train_single(data, "adamw", **OPTIONS))
