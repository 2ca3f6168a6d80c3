"""``main.py --model gpt --strategy context --world-size 2`` on Spark ends with the export
of ``--strategy single`` on the same seed (dropout 0).

Two barrier tasks each hold the whole model and half of every window (balanced causal
chunks); K/V blocks travel between them in every attention, forward and backward (ring
attention). SGD with momentum (see tests/engine/test_tensor_parallel_gpt_on_spark.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from sparkgrad.engine.cli import parse_config
from sparkgrad.export import load_safetensors
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
    ours, meta = load_safetensors(tmp_path / "cp.st")
    truth, _ = load_safetensors(tmp_path / "1.st")
    assert meta["strategy"] == "context" and meta["world_size"] == "2"
    assert sorted(ours) == sorted(truth)
    for key, want in truth.items():
        np.testing.assert_allclose(ours[key], want, rtol=1e-5, atol=1e-6, err_msg=key)
    assert ctx.history[-1]["test_loss"] == pytest.approx(single.history[-1]["test_loss"], rel=1e-5)
