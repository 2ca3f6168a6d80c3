"""``python -m sparkgrad.simulate``: a readable prediction, or one error line and exit code 2."""

import json

import pytest

from sparkgrad.autodiff.profiler.trace import load_trace, validate_trace
from sparkgrad.simulate.cli import main

ISSUE = [
    "--model",
    "gpt",
    "--d-model",
    "4096",
    "--layers",
    "32",
    "--heads",
    "32",
    "--context",
    "2048",
    "--vocab",
    "50257",
    "--mesh",
    "dp=8,tp=8,pp=4",
    "--cluster",
    "32x8-h100",
    "--global-batch",
    "512",
    "--micro-batches",
    "8",
    "--precision",
    "bf16",
]


def test_issue_command_prints_the_prediction(tmp_path, capsys):
    trace, out = tmp_path / "t.json", tmp_path / "p.json"
    assert main([*ISSUE, "--trace", str(trace), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for needle in ("step time", "tokens/s", "MFU", "stage 3", "ring/Simple", "beats"):
        assert needle in text
    validate_trace(load_trace(trace))
    numbers = json.loads(out.read_text())
    assert numbers["step_seconds"] > 0 and len(numbers["memory_bytes"]) == 4


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--mesh", "dp=3"], "has 3 ranks"),
        (["--mesh", "xp=2"], "expected comma-separated"),
        (["--cluster", "8x8-tpu"], "expected NODESxGPUS-SYSTEM"),
        (["--heads", "5"], "must divide into 5 heads"),
        (["--mesh", "dp=8", "--global-batch", "12"], "global batch 12"),
        (["--validate-local", "--world-size", "1"], "need world >= 2 ranks, found 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv", [["--precision", "int4"], ["--validate-local", "--transport", "udp"]]
)
def test_argparse_errors_are_one_line_too(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_validate_prints_the_table(capsys):
    assert main(["--validate"]) == 0
    assert "| b4 |" in capsys.readouterr().out
