"""``main.py --model seq2seq --strategy tensor --world-size 2 --data reverse:N`` on Spark ends
with the export of ``--strategy single`` on the same seed (dropout 0).

Two barrier tasks each hold half of every attention's heads (encoder self, decoder causal
self, decoder cross over the memory) and half of every feed-forward; the 13-token embedding
and head are whole on both. The truth is one process holding everything. SGD with momentum:
every step is proportional to its gradient, so the key biases' exact-zero gradients
(rounding noise, see tests/parallel/tp_gpt_helpers.py) move nothing measurable. The test
metrics come from greedy decoding through ``predict`` on the two ranks.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparkgrad.engine.cli import parse_config
from sparkgrad.engine.model import MODELS
from tests.engine.export_truth import assert_export_equals_single


@pytest.mark.slow
def test_seq2seq_tensor_parallel_on_spark_equals_a_single_process(spark_local, tmp_path):
    from sparkgrad.engine.run import run

    common = [
        *("--model", "seq2seq", "--data", "reverse:96", "--epochs", "1", "--no-progress"),
        *("--d-model", "16", "--heads", "4", "--layers", "2", "--dropout", "0"),
        *("--batch-size", "16", "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9"),
        *("--seed", "3",),
    ]  # fmt: skip
    single = run(parse_config([*common, "--strategy", "single", "--export", f"{tmp_path}/1.st"]))
    tensor = run(
        parse_config(
            [*common, "--strategy", "tensor", "--world-size", "2", "--export", f"{tmp_path}/tp.st"]
        )
    )
    assert tensor.comms["calls"] > 0  # the 2 ranks talked
    truth = assert_export_equals_single(tmp_path, "tp.st", "tensor", 2)
    fresh = MODELS["seq2seq"].build(single.config, single.vocab).state_dict()
    for key in (
        "transformer.decoder.layers.1.multihead_attn.in_proj_weight",
        "transformer.encoder.layers.0.linear1.weight",
        "head.weight",
    ):
        assert not np.allclose(fresh[key].numpy(), truth[key]), key  # it trained
    got, want = tensor.history[-1], single.history[-1]
    assert got["test_loss"] == pytest.approx(want["test_loss"], rel=1e-5)
    assert got["test_exact_match"] == want["test_exact_match"]
