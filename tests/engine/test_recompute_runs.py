"""``main.py --recompute``: the same final weights as without recomputation, and clear errors.

Recomputation replays each layer (or attention core) with the RNG state of its forward, so
a run with dropout on must end with the *same* weights, bit for bit, as ``--recompute
none`` from the same seed; only memory and time differ.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparkgrad.engine.cli import parse_config
from sparkgrad.errors import ConfigError
from sparkgrad.export import load_safetensors
from tests.engine.main_cli import main_no_spark

pytestmark = pytest.mark.slow  # main.py runs, one per recompute mode: the full suite runs it


def _corpus(tmp_path, chars: int = 2000) -> str:
    rng = np.random.default_rng(0)
    words = ["spark", "grad", "tensor", "attention", "the", "model", "learns", "text,"]
    path = tmp_path / "corpus.txt"
    path.write_text(" ".join(rng.choice(words, chars // 4))[:chars] + "\n", encoding="utf-8")
    return str(path)


def _gpt_run(tmp_path, corpus: str, recompute: str) -> dict:
    export = tmp_path / f"gpt-{recompute}.safetensors"
    proc = main_no_spark(
        "--strategy", "single", "--model", "gpt", "--epochs", "1", "--d-model", "32",
        "--layers", "2", "--context", "16", "--dropout", "0.1", "--seed", "3",
        "--data", corpus, "--export", str(export), "--recompute", recompute,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    arrays, meta = load_safetensors(export)
    assert meta["recompute"] == f'"{recompute}"'
    return arrays


def test_gpt_blocks_and_selective_end_with_the_weights_of_no_recompute(tmp_path):
    corpus = _corpus(tmp_path)
    runs = {mode: _gpt_run(tmp_path, corpus, mode) for mode in ("none", "blocks", "selective")}
    assert len(runs["none"]) > 10
    for mode in ("blocks", "selective"):
        assert runs[mode].keys() == runs["none"].keys()
        for name, value in runs["none"].items():
            assert np.array_equal(runs[mode][name], value), f"{mode}: {name} differs"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "cnn", "--recompute", "blocks"], "--model cnn has no blocks"),
        (["--model", "lstm-lm", "--recompute", "blocks"], "--model lstm-lm has no blocks"),
        (["--model", "mlp", "--recompute", "selective"], "mlp has no attention"),
        (["--model", "mlp", "--recompute", "blocks", "--strategy", "pipeline"], "rebuild"),
    ],
)
def test_recompute_where_it_cannot_apply_is_a_config_error(args, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_config(args)


def test_recompute_defaults_to_none_and_reaches_the_config():
    assert parse_config([]).recompute == "none"
    assert parse_config(["--model", "vit", "--recompute", "selective"]).recompute == "selective"
