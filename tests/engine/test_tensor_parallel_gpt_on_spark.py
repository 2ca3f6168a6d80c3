"""``main.py --model gpt --strategy tensor --world-size 2 --sequence-parallel`` on Spark ends
with the export of ``--strategy single`` on the same seed (dropout 0).

Two barrier tasks each hold half of every attention's heads, of every MLP and of the
vocabulary, and half of every sequence between the split layers; the truth is one process
holding everything. SGD with momentum: every parameter's step is proportional to its
gradient, so the exact-zero gradient of the attention's key bias (rounding noise, see
tests/parallel/tp_gpt_helpers.py) moves nothing measurable.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparkgrad.engine.cli import parse_config
from sparkgrad.engine.model import MODELS
from tests.engine.export_truth import assert_export_equals_single


def _corpus(tmp_path, chars: int = 3000) -> str:
    rng = np.random.default_rng(0)
    words = ["spark", "grad", "tensor", "attention", "the", "model", "learns", "text,", "é"]
    path = tmp_path / "corpus.txt"
    path.write_text(" ".join(rng.choice(words, chars // 4))[:chars] + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.slow
def test_gpt_tensor_and_sequence_parallel_on_spark_equals_a_single_process(spark_local, tmp_path):
    from sparkgrad.engine.run import run

    common = [
        *("--model", "gpt", "--data", _corpus(tmp_path), "--epochs", "1", "--no-progress"),
        *("--d-model", "16", "--heads", "4", "--layers", "2", "--context", "16"),
        *("--batch-size", "8", "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9"),
        *("--dropout", "0", "--seed", "3"),
    ]
    single = run(parse_config([*common, "--strategy", "single", "--export", f"{tmp_path}/1.st"]))
    tensor = run(
        parse_config(
            [
                *common,
                *("--strategy", "tensor", "--world-size", "2", "--sequence-parallel"),
                *("--export", f"{tmp_path}/tp.st"),
            ]
        )
    )
    assert tensor.config.sequence_parallel and tensor.comms["calls"] > 0  # 2 ranks talked
    truth = assert_export_equals_single(tmp_path, "tp.st", "tensor", 2)
    fresh = MODELS["gpt"].build(single.config, single.vocab).state_dict()
    for key in ("token.weight", "blocks.layers.1.self_attn.in_proj_weight", "head.weight"):
        assert not np.allclose(fresh[key].numpy(), truth[key]), key  # it trained
    assert tensor.history[-1]["test_loss"] == pytest.approx(
        single.history[-1]["test_loss"], rel=1e-5
    )
