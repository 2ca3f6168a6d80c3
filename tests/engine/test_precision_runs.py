"""``--precision fp16|bf16`` end to end: main.py for one process, Spark for data parallel.

The truths: the fp32 run of the same command (mixed precision must land close to it, and
far better than chance), the printed/recorded loss scale (fp16 keeps GradScaler's 2¹⁶ when
nothing overflows, bf16 has no scaler: 1) and the skipped-step count.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from main_cli import main_no_spark

from sparkgrad.engine.config import RunConfig
from sparkgrad.errors import ConfigError

pytestmark = pytest.mark.slow  # main.py runs in fp32, fp16 and bf16: the full suite runs it


def _corpus(tmp_path, chars: int = 3000) -> str:
    rng = np.random.default_rng(0)
    words = ["spark", "grad", "tensor", "attention", "the", "model", "learns", "text,"]
    path = tmp_path / "corpus.txt"
    path.write_text(" ".join(rng.choice(words, chars // 4))[:chars] + "\n", encoding="utf-8")
    return str(path)


MLP = ("--model", "mlp", "--epochs", "1", "--hidden", "64")
GPT = ("--model", "gpt", "--epochs", "2", "--d-model", "16", "--layers", "1", "--context", "16",
       "--batch-size", "8", "--lr", "1e-2")  # fmt: skip


def _main(tmp_path, precision: str, *args: str) -> tuple[list[str], dict]:
    metrics = tmp_path / f"{precision}.json"
    proc = main_no_spark(
        "--strategy", "single", "--precision", precision, "--metrics-out", str(metrics), *args
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines(), json.loads(metrics.read_text())


@pytest.mark.parametrize("model", ["mlp", "gpt"])
def test_single_process_mixed_precision_runs_like_fp32(tmp_path, model) -> None:
    args = MLP if model == "mlp" else (*GPT, "--data", _corpus(tmp_path))
    _, fp32 = _main(tmp_path, "fp32", *args)
    for precision, scale in (("fp16", 65536.0), ("bf16", 1.0)):
        lines, got = _main(tmp_path, precision, *args)
        assert lines[-2] == f"precision={precision} loss_scale={scale:g} skipped_steps=0"
        assert got["precision"] == {
            "precision": precision, "loss_scale": scale, "skipped_steps": 0,
        }  # fmt: skip
        if model == "mlp":
            assert got["test_accuracy"] >= 0.80  # 10 classes: chance is 10%
            assert abs(got["test_accuracy"] - fp32["test_accuracy"]) <= 0.02
        else:
            vocab = 16  # 15 distinct characters + newline: chance is a perplexity of ~16
            assert got["test_perplexity"] < vocab / 3
            assert math.isclose(got["test_perplexity"], fp32["test_perplexity"], rel_tol=0.05)
    assert lines[-1].startswith("done: strategy=single")


def test_bad_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--precision must be fp32, fp16 or bf16, found 'fp8'"):
        RunConfig(strategy="single", precision="fp8").validate()
    proc = main_no_spark("--strategy", "single", "--precision", "fp8")
    assert proc.returncode == 2 and "invalid choice: 'fp8'" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mlp", "gpt"])
def test_data_parallel_mixed_precision_on_spark(spark_local, tmp_path, model) -> None:
    """2 Spark ranks: the scaler's step is agreed (no rank skips alone), scores are sane."""
    from sparkgrad.engine.run import run

    if model == "mlp":
        common = dict(model="mlp", epochs=1, hidden=(64,))
    else:
        common = dict(
            model="gpt", data=_corpus(tmp_path), d_model=16, layers=1, context=16, epochs=2,
            batch_size=8, lr=1e-2, optimizer="adamw",
        )  # fmt: skip
    for precision in ("fp16", "bf16"):
        result = run(
            RunConfig(strategy="data", world_size=2, precision=precision, progress=False, **common)
        )
        assert result.config.world_size == 2 and result.comms["calls"] > 0
        assert result.precision["precision"] == precision
        assert result.precision["skipped_steps"] == 0
        assert result.precision["loss_scale"] == (65536.0 if precision == "fp16" else 1.0)
        if model == "mlp":
            assert result.score >= 0.80
        else:
            assert result.score < 16 / 3
