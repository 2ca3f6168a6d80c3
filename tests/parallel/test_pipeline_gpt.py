"""Model and pipeline parallelism on the GPT: stages of units (embedding, blocks, head) end
K steps with a single process's weights, losses and optimizer state (rtol 1e-5).

Truth: :func:`tests.parallel.tp_gpt_helpers.train_single` on the same seed and global
batches. The batches here have no ignored targets: the pipeline's loss is the mean of its
micro-batches' means, which is the batch mean only when every micro-batch scores the same
number of tokens (always so for the GPT's text task).
"""

from __future__ import annotations

import numpy as np
import pytest

from sparkgrad.errors import ConfigError
from sparkgrad.models.sequence_parts import TokenCrossEntropy
from sparkgrad.parallel.pipeline.model_parallel import ModelParallel
from sparkgrad.parallel.pipeline.pipeline_parallel import PipelineParallel
from sparkgrad.parallel.pipeline.stages import gpt_units, make_stage
from tests.parallel.tp_gpt_helpers import (
    assert_matches,
    build,
    on_ranks,
    optimizer_factory,
    run_ranks,
    single_logits,
    train_single,
)

LAYERS = {"num_layers": 4}  # units: embedding, 4 blocks, head


def batches(steps: int = 3, batch: int = 8, seed: int = 1) -> list:
    rng = np.random.default_rng(seed)
    return [
        (rng.integers(0, 11, (batch, 8)), rng.integers(0, 11, (batch, 8))) for _ in range(steps)
    ]


def pipeline(schedule: str | None, optimizer: str, split=None, **options):
    def make():
        model = build(0, **{**LAYERS, **options})
        if schedule is None:
            return ModelParallel(
                model, optimizer_factory(optimizer), TokenCrossEntropy(), split=split
            )
        return PipelineParallel(
            model, optimizer_factory(optimizer), TokenCrossEntropy(),
            micro_batches=4, schedule=schedule, split=split,
        )  # fmt: skip

    return make


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("schedule", [None, "gpipe", "1f1b"])
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_gpt_stages_equal_one_process(world: int, schedule: str | None, optimizer: str) -> None:
    data = batches()
    truth = train_single(data, optimizer, **LAYERS)
    x = data[0][0][:3]
    results = run_ranks(world, pipeline(schedule, optimizer), data, predict_x=x)
    assert_matches(results, truth)
    want = single_logits(truth["state"], x, **LAYERS)
    for r in results:
        np.testing.assert_allclose(r["logits"], want, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
def test_eight_stages_of_a_deeper_gpt(schedule: str) -> None:
    data = batches(2)
    truth = train_single(data, "adamw", num_layers=6)
    results = run_ranks(8, pipeline(schedule, "adamw", num_layers=6), data)
    assert_matches(results, truth)


def test_balanced_split_puts_the_embedding_first_and_the_head_last() -> None:
    reports = run_ranks(3, pipeline("1f1b", "sgd"), batches(1))
    units = [r["report"]["layers"] for r in reports]
    assert units[0][0] == "embedding" and units[-1][-1] == "head"
    assert sum(units, []) == [name for name, _ in gpt_units(build(0, **LAYERS))]


def test_split_is_honoured_and_keys_stay_the_plain_models() -> None:
    model = build(0, **LAYERS)
    stages = [make_stage(model, s, 2, [1, 5]) for s in range(2)]
    assert stages[0].units == ["embedding"]
    assert stages[1].units == ["block 0", "block 1", "block 2", "block 3", "head"]
    keys = [k for s in stages for k in s.module.state_dict()]
    assert sorted(keys) == sorted(model.state_dict())
    data = batches()
    assert_matches(
        run_ranks(2, pipeline("gpipe", "sgd", split=[1, 5]), data),
        train_single(data, "sgd", **LAYERS),
    )


def test_a_checkpoint_moves_between_stage_counts() -> None:
    data = batches(4)
    truth = train_single(data, "adamw", **LAYERS)
    first = run_ranks(2, pipeline("1f1b", "adamw"), data[:2])[0]
    rest = run_ranks(4, pipeline("gpipe", "adamw"), data[2:], load=(first["state"], first["opt"]))
    for r in rest:
        for k, want in truth["state"].items():
            np.testing.assert_allclose(r["state"][k], want, rtol=1e-5, atol=1e-6, err_msg=k)


def test_errors_are_clear() -> None:
    model = build(0, **LAYERS)
    with pytest.raises(ConfigError, match="7 pipeline stages need at least 7 units"):
        make_stage(model, 0, 7, None)
    with pytest.raises(
        ConfigError, match=r"--split must list 2 positive unit counts .* summing to 6"
    ):
        make_stage(model, 0, 2, [3, 2])
    tied = build(0, tie_weights=True, **LAYERS)
    with pytest.raises(ConfigError, match="--tie-weights"):
        on_ranks(2, lambda: ModelParallel(tied, optimizer_factory("sgd"), TokenCrossEntropy()))


def test_one_stage_with_tied_weights_is_the_single_process() -> None:
    data = batches(2)
    truth = train_single(data, "sgd", tie_weights=True, **LAYERS)
    results = run_ranks(1, pipeline("1f1b", "sgd", tie_weights=True), data)
    assert_matches(results, truth)
