"""``main.py --model gpt --strategy context --world-size 2`` on Spark ends with the export
of ``--strategy single`` on the same seed (dropout 0).

Two barrier tasks each hold the whole model and half of every window (balanced causal
chunks); K/V blocks travel between them in every attention, forward and backward (ring
attention). SGD with momentum (see tests/engine/test_tensor_parallel_gpt_on_spark.py).
"""

from __future__ import annotations

import pytest

from sparkgrad.engine.cli import parse_config
from tests.engine.export_truth import assert_export_equals_single
from tests.engine.test_tensor_parallel_gpt_on_spark import _corpus


@pytest.mark.slow
def test_gpt_context_parallel_on_spark_equals_a_single_process(spark_local, tmp_path):
    from sparkgrad.engine.run import run

    common = [
        *("--model", "gpt", "--data", _corpus(tmp_path), "--epochs", "1", "--no-progress"),
        *("--d-model", "16", "--heads", "4", "--layers", "3", "--context", "16"),
        *("--batch-size", "8", "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9"),
        *("--dropout", "0", "--seed", "3"),
    ]
    single = run(parse_config([*common, "--strategy", "single", "--export", f"{tmp_path}/1.st"]))
    ctx = run(
        parse_config(
            [
                *common,
                *("--strategy", "context", "--world-size", "2"),
                *("--export", f"{tmp_path}/cp.st"),
            ]
        )
    )
    assert ctx.comms["calls"] > 0  # the ring turned
    assert_export_equals_single(tmp_path, "cp.st", "context", 2)
    assert ctx.history[-1]["test_loss"] == pytest.approx(single.history[-1]["test_loss"], rel=1e-5)
