"""Every ``--strategy`` on real Spark tasks ends with the weights of single-process training.

The truth is ``run(strategy="single")`` on the same seed, data and global batch (10 Adam
steps: enough to move every weight, few enough that float rounding of a different summation
order, e.g. the pipeline's micro-batches, stays far below the 1e-5 tolerance). Each
strategy runs on 2 barrier tasks of a local SparkSession over sparkgrad's TCP transport,
through the same ``run()`` that ``main.py`` calls. Checkpoints are strategy-free: one
written by ZeRO-2 resumes under the pipeline and still lands on the single-process weights.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparkgrad.engine.config import RunConfig
from sparkgrad.engine.run import run

STRATEGIES = [
    ("model", {}),
    ("pipeline", {"micro_batches": 4, "schedule": "1f1b"}),
    ("tensor", {}),
    ("zero1", {}),
    ("zero2", {}),
    ("zero3", {}),
    ("hybrid", {"mesh": "dp=1,tp=2"}),
]


def _config(**overrides) -> RunConfig:
    base = dict(
        world_size=2,
        epochs=2,
        batch_size=64,
        data="synthetic:320",
        hidden=(32, 16),
        optimizer="adam",
        lr=0.01,
        progress=False,
    )
    return RunConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def single_run():
    return run(_config(strategy="single", world_size=1))


def _assert_same_weights(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for key, w in want.items():
        np.testing.assert_allclose(got[key], w, rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("strategy, options", STRATEGIES, ids=[s for s, _ in STRATEGIES])
def test_strategy_on_spark_equals_single_process(spark_local, single_run, strategy, options):
    result = run(_config(strategy=strategy, **options))
    _assert_same_weights(result.state_dict, single_run.state_dict)
    assert [m["train_loss"] for m in result.history] == pytest.approx(
        [m["train_loss"] for m in single_run.history], rel=1e-5
    )
    assert len(result.ranks) == 2 and all(r["compute_s"] > 0 for r in result.ranks)
    assert all(r["bytes_sent"] > 0 for r in result.ranks)


@pytest.mark.slow
def test_a_zero2_checkpoint_resumes_under_the_pipeline(spark_local, single_run, tmp_path):
    ckpt = str(tmp_path / "ckpt")
    run(_config(strategy="zero2", epochs=1, checkpoint_dir=ckpt, checkpoint_every=5))
    resumed = run(_config(strategy="pipeline", micro_batches=2, checkpoint_dir=ckpt, resume=True))
    assert resumed.resumed_from == 5  # 320 samples / 64 per step: epoch 1 ends at step 5
    _assert_same_weights(resumed.state_dict, single_run.state_dict)
