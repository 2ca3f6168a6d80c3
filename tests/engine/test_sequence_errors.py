"""The sequence models' errors: one line on stderr and exit 2 from ``main.py``, and the
model-level errors (a window longer than the context, an id outside the vocabulary) in
process, as the exception classes of :mod:`sparkgrad.errors`.

The command-line cases run the real ``main.py`` with ``SPARK_HOME`` pointing nowhere (the
helpers of ``test_main_errors``): a pass proves the error was found on the driver before
any Spark task started.
"""

from __future__ import annotations

import numpy as np
import pytest
from main_cli import main_no_spark
from test_main_errors import _assert_one_line_on_stderr

import sparkgrad as sg
from sparkgrad.engine.config import RunConfig
from sparkgrad.engine.model import MODELS
from sparkgrad.errors import ConfigError, ShapeError

pytestmark = pytest.mark.slow  # a main.py subprocess per case: the full suite runs it


@pytest.mark.parametrize(
    "args, needles",
    [
        (
            ["--model", "gpt", "--d-model", "30", "--heads", "4"],
            ["--d-model 30 must be divisible by --heads 4"],
        ),
        (["--model", "gpt", "--data", "mnist-5k"], ["--model gpt learns a text", "mnist-5k"]),
        (
            ["--model", "vit", "--data", "reverse:100"],
            ["--model vit learns MNIST digits", "reverse:100 is for --model seq2seq"],
        ),
        (
            ["--model", "seq2seq", "--data", "pydoc-topics"],
            ["--model seq2seq learns to reverse digit strings", "reverse:N"],
        ),
        (  # tensor splits mlp, gpt and seq2seq (issue 18), not the LSTM
            ["--model", "lstm-lm", "--strategy", "tensor"],
            ["cannot split --model lstm-lm", "single, data"],
        ),
        (["--model", "lstm-lm", "--strategy", "pipeline"], ["cannot split --model lstm-lm"]),
        (["--model", "gpt", "--context", "0"], ["--context must be >= 1, found 0"]),
        (  # the GPT's pipeline units: embedding, 2 blocks, head (issue 18)
            ["--model", "gpt", "--strategy", "pipeline", "--world-size", "8", "--layers", "2"],
            ["on each of the 8 ranks", "--model gpt has only 4", "--world-size <= 4"],
        ),
        (
            ["--model", "gpt", "--strategy", "model", "--world-size", "2", "--split", "1,2"],
            ["--split needs 2 positive counts of units", "summing to 4, found 1,2"],
        ),
        (
            ["--model", "gpt", "--strategy", "model", "--world-size", "2", "--tie-weights"],
            ["--tie-weights", "first and the last stage"],
        ),
        (  # the GPT mesh (issue 18)
            [
                *("--model", "gpt", "--strategy", "hybrid", "--world-size", "4", "--mesh"),
                *("cp=4", "--context", "12"),
            ],
            ["cp=4 cuts each window into 2·cp = 8", "found 12"],
        ),
        (
            ["--model", "gpt", "--strategy", "hybrid", "--world-size", "8", "--mesh", "pp=8"],
            ["pp=8 stages need at least 8 units", "found 4"],
        ),
        (
            [
                *("--model", "gpt", "--strategy", "hybrid", "--world-size", "4", "--mesh"),
                *("pp=2,tp=2", "--sequence-parallel"),
            ],
            ["--sequence-parallel runs on data x tensor meshes"],
        ),
        (
            [
                "--model",
                "gpt",
                "--strategy",
                "hybrid",
                "--world-size",
                "2",
                "--mesh",
                "cp=2",
                "--dropout",
                "0.1",
            ],
            ["ring attention (cp > 1) has no dropout", "found 0.1"],
        ),
        (
            ["--model", "gpt", "--strategy", "hybrid", "--world-size", "2", "--mesh", "dp=2,xp=1"],
            ["expected axes among ('dp', 'pp', 'cp', 'tp'), found 'xp'"],
        ),
    ],
)
def test_bad_sequence_model_arguments_are_one_line(args, needles):
    _assert_one_line_on_stderr(main_no_spark(*args), *needles)


def test_a_corpus_that_is_not_utf8_is_one_line_naming_the_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(("plenty of text " * 40).encode() + "déjà vu".encode("latin-1"))
    offset = len(("plenty of text " * 40).encode()) + 1  # 'd', then é as latin-1 0xe9
    _assert_one_line_on_stderr(
        main_no_spark("--strategy", "single", "--model", "gpt", "--data", str(path)),
        str(path),
        f"byte 0xe9 at offset {offset}",
        "UTF-8",
    )


def test_a_corpus_shorter_than_one_context_window_is_one_line(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("just a few words of text\n", encoding="utf-8")
    _assert_one_line_on_stderr(
        main_no_spark(
            "--strategy", "single", "--model", "lstm-lm", "--context", "64", "--data", str(path)
        ),
        "shorter than one context window of 65",
        "--context",
    )


# ---- in process ---------------------------------------------------------------------------------
def _gpt(context: int = 8):
    config = RunConfig(
        strategy="single", model="gpt", d_model=8, heads=2, layers=1, context=context
    ).validate()
    return MODELS["gpt"].build(config, "abcde")


def test_a_window_longer_than_the_context_is_a_shape_error():
    model = _gpt(context=8)
    model(sg.tensor(np.zeros((2, 8), dtype=np.int64)))  # exactly the context: fine
    with pytest.raises(ShapeError, match=r"9 tokens is longer than the model's context of 8"):
        model(sg.tensor(np.zeros((2, 9), dtype=np.int64)))


@pytest.mark.parametrize("bad", [5, -1])
def test_a_token_id_outside_the_vocabulary_is_a_config_error(bad):
    ids = np.array([[0, 1, bad, 2]], dtype=np.int64)
    with pytest.raises(ConfigError, match=rf"token id {bad} is outside .*expected 0\.\.4"):
        _gpt()(sg.tensor(ids))
    config = RunConfig(strategy="single", model="lstm-lm", d_model=8, layers=1).validate()
    with pytest.raises(ConfigError, match=rf"token id {bad} is outside"):
        MODELS["lstm-lm"].build(config, "abcde")(sg.tensor(ids))


def test_a_seq2seq_input_without_a_target_part_is_a_shape_error():
    config = RunConfig(
        strategy="single", model="seq2seq", data="reverse:10", d_model=8, heads=2, layers=1
    ).validate()
    with pytest.raises(ShapeError, match=r"source \(10 ids\) and target side by side"):
        MODELS["seq2seq"].build(config, "")(sg.tensor(np.full((1, 10), 3, dtype=np.int64)))
