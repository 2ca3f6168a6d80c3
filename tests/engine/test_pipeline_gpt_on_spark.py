"""``main.py --model gpt --strategy pipeline --world-size 2 --micro-batches 2`` on Spark ends
with the export of ``--strategy single`` on the same seed (dropout 0).

Two barrier tasks: stage 0 holds the embedding and the first blocks, stage 1 the rest and
the head; activations (micro-batch, T, d) cross the socket between them, gradients come
back. SGD with momentum (see tests/engine/test_tensor_parallel_gpt_on_spark.py for why).
"""

from __future__ import annotations

import pytest

from sparkgrad.engine.cli import parse_config
from tests.engine.export_truth import assert_export_equals_single
from tests.engine.test_tensor_parallel_gpt_on_spark import _corpus


@pytest.mark.slow
def test_gpt_pipeline_on_spark_equals_a_single_process(spark_local, tmp_path):
    from sparkgrad.engine.run import run

    common = [
        *("--model", "gpt", "--data", _corpus(tmp_path), "--epochs", "1", "--no-progress"),
        *("--d-model", "16", "--heads", "4", "--layers", "3", "--context", "16"),
        *("--batch-size", "8", "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9"),
        *("--dropout", "0", "--seed", "3"),
    ]
    single = run(parse_config([*common, "--strategy", "single", "--export", f"{tmp_path}/1.st"]))
    pipe = run(
        parse_config(
            [
                *common,
                *("--strategy", "pipeline", "--world-size", "2", "--micro-batches", "2"),
                *("--export", f"{tmp_path}/pp.st"),
            ]
        )
    )
    assert pipe.comms["calls"] > 0  # the stages talked
    assert_export_equals_single(tmp_path, "pp.st", "pipeline", 2)
    assert pipe.history[-1]["test_loss"] == pytest.approx(single.history[-1]["test_loss"], rel=1e-5)
