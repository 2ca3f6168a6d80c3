"""PipelineParallel (GPipe and 1F1B) on N thread ranks against one process.

Micro-batching must not change the arithmetic: the weights after K steps equal a single
process on the whole batch, and the two schedules give bit-identical weights. The report
must show the schedule's peak of live activations.
"""

from __future__ import annotations

import numpy as np
import pytest

import sparkgrad as sg
from sparkgrad.autodiff import functional as F
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.pipeline.pipeline_parallel import PipelineParallel
from sparkgrad.parallel.pipeline.schedules import SCHEDULES, bubble_fraction, peak_live
from sparkgrad.parallel.single import SingleProcess
from tests.parallel.strategy_truth import (
    assert_same_state,
    make_batches,
    make_model,
    optimizer_factory,
    train_single,
)
from tests.parallel.test_model_parallel import assert_matches, run_strategy


@pytest.mark.parametrize("schedule", ["1f1b", "gpipe"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_pipeline_equals_single_process(world_size: int, optimizer: str, schedule: str) -> None:
    batches = make_batches(steps=3, batch=8)
    truth = train_single(batches, optimizer)
    results = run_strategy(
        PipelineParallel, world_size, optimizer, batches, micro_batches=4, schedule=schedule
    )
    for stage, r in enumerate(results):
        assert_matches(r, truth, batches[0][0])
        report = r["report"]
        want_peak = peak_live(SCHEDULES[schedule](stage, world_size, 4))
        assert report["peak_live_activations"] == want_peak
        assert (report["schedule"], report["micro_batches"], report["stage"]) == (
            schedule,
            4,
            stage,
        )
        assert report["bubble_theoretical"] == bubble_fraction(world_size, 4)
        assert 0.0 <= report["bubble_measured"] <= 1.0
        assert report["layers"]


@pytest.mark.parametrize("world_size", [2, 4])
def test_gpipe_and_1f1b_give_identical_weights(world_size: int) -> None:
    batches = make_batches(steps=3, batch=12)
    runs = {
        s: run_strategy(PipelineParallel, world_size, "adam", batches, micro_batches=6, schedule=s)
        for s in ("gpipe", "1f1b")
    }
    assert_same_state(runs["gpipe"][0]["state"], runs["1f1b"][0]["state"], rtol=0, atol=0)
    assert runs["gpipe"][0]["losses"] == runs["1f1b"][0]["losses"]
    peaks = {s: [r["report"]["peak_live_activations"] for r in rs] for s, rs in runs.items()}
    assert peaks["gpipe"] == [6] * world_size  # GPipe holds every micro-batch
    assert max(peaks["1f1b"]) == world_size  # 1F1B at most p, on stage 0


def test_single_micro_batch_and_explicit_split() -> None:
    batches = make_batches(steps=2, batch=6)
    truth = train_single(batches, "sgd")
    results = run_strategy(PipelineParallel, 2, "sgd", batches, micro_batches=1, split=[1, 3])
    for r in results:
        assert_matches(r, truth, batches[0][0])
        assert r["report"]["peak_live_activations"] == 1


def test_checkpoint_moves_between_pipeline_and_other_world_sizes() -> None:
    batches = make_batches(steps=6, batch=8)
    truth = train_single(batches, "sgd")
    first = train_single(batches[:2], "sgd")
    on_four = run_strategy(
        PipelineParallel, 4, "sgd", batches[2:4], start=first, micro_batches=2, schedule="gpipe"
    )[3]
    on_two = run_strategy(PipelineParallel, 2, "sgd", batches[4:5], start=on_four, micro_batches=4)
    s = SingleProcess(make_model(seed=3), optimizer_factory("sgd"), F.cross_entropy)
    s.load_full_state(on_two[0]["state"], on_two[0]["optimizer_state"])
    x, y = batches[5]
    s.train_step(sg.tensor(x), sg.tensor(y))
    assert_same_state(s.full_state_dict(), truth["state"])
    np.testing.assert_allclose(on_two[1]["losses"], truth["losses"][4:5], rtol=1e-5)


def test_micro_batches_must_divide_the_batch() -> None:
    with pytest.raises(ConfigError, match="micro_batches=3 must divide .* batch of 8 rows"):
        run_strategy(PipelineParallel, 2, "sgd", make_batches(1, 8), micro_batches=3)


def test_more_stages_than_linear_layers() -> None:
    with pytest.raises(ConfigError, match="4 pipeline stages need at least 4 Linear.*found 2"):
        run_strategy(PipelineParallel, 4, "sgd", make_batches(1, 8), widths=(12, 8, 4))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"schedule": "zigzag"}, "schedule must be one of gpipe, 1f1b"),
        ({"micro_batches": 0}, "micro_batches must be >= 1, found 0"),
        ({"micro_batches": 2.0}, "micro_batches must be an int"),
    ],
)
def test_bad_options(options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        PipelineParallel(make_model(), optimizer_factory("sgd"), F.cross_entropy, **options)
