"""``--mode`` and ``--staleness`` on the command line, and one real Spark run with --mode async.

The errors are checked in-process through ``cli.main`` (one line on stderr, exit 2, no
traceback) and once as a user would see it, in a subprocess. The Spark run goes through
``main.py`` like the README's command: the parameter server on the driver, two Spark tasks
as workers, the export loaded into PyTorch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from sparkgrad.dataset import load_mnist
from sparkgrad.engine import cli
from sparkgrad.engine.config import RunConfig
from sparkgrad.errors import ConfigError
from tests.engine.main_cli import main_no_spark

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CASES = [
    (["--mode", "bogus"], "--mode must be one of sync, async, hogwild, ssp, found 'bogus'"),
    (["--mode", "ssp", "--staleness", "-1"], "--staleness must be >= 0"),
    (["--mode", "async", "--staleness", "2"], "needs --mode ssp, found --mode async"),
    (["--staleness", "2"], "needs --mode ssp, found --mode sync"),
    (["--mode", "ssp"], "--mode ssp needs --staleness S"),
    (["--mode", "async", "--strategy", "pipeline"], "--strategy pipeline cannot be combined"),
    (["--mode", "hogwild", "--checkpoint-dir", "/tmp/x"], "--checkpoint-dir is not supported"),
    (["--mode", "ssp", "--staleness", "x"], "--staleness: invalid int value"),
]


@pytest.mark.parametrize("args, needle", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_mode_errors_are_one_line_and_exit_2(args, needle, capsys):
    try:
        code = cli.main(["--no-progress", *args])
    except SystemExit as exc:  # argparse's own usage errors exit from the parser
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("main.py: error:"), err
    assert needle in err[0], err[0]


def test_the_config_fields_validate_without_the_cli():
    assert RunConfig(mode="ssp", staleness=0).validate().staleness == 0
    with pytest.raises(ConfigError, match="--mode must be one of"):
        RunConfig(mode="ASYNC").validate()
    config = cli.parse_config(["--mode", "ssp", "--staleness", "3"])
    assert (config.mode, config.staleness) == ("ssp", 3)
    assert config.to_dict()["mode"] == "ssp"


@pytest.mark.slow
def test_a_mode_error_from_main_py_is_one_line():
    proc = main_no_spark("--mode", "ssp", "--staleness", "-2")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["main.py: error: --staleness must be >= 0 (clocks ahead), found -2"], lines


def _torch_mlp(state: dict) -> torch.nn.Module:
    model = torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    model.load_state_dict(state)
    return model


@pytest.mark.slow
def test_main_trains_with_mode_async_on_spark(tmp_path):
    export, metrics = tmp_path / "model.safetensors", tmp_path / "metrics.json"
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYTHONPATH=ROOT)
    args = ["--mode", "async", "--world-size", "2", "--epochs", "2", "--hidden", "64"]
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "main.py"), *args, "--no-progress",
         "--export", str(export), "--metrics-out", str(metrics)],
        capture_output=True, text=True, timeout=600, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stderr + proc.stdout)[-3000:]
    final = proc.stdout.strip().splitlines()[-1]
    assert final.startswith("done: strategy=data world_size=2 epochs=2"), final
    assert " mode=async pushes=248 " in final and "lost_workers=0" in final, final
    written = json.loads(metrics.read_text())
    ps = written["parameter_server"]
    assert ps["mode"] == "async" and ps["pushes_per_worker"] == {"0": 124, "1": 124}
    assert sum(ps["version_lag"].values()) == 248 and ps["pushes_per_s"] > 0
    assert [r["rank"] for r in written["ranks"]] == [0, 1]
    # the export is the SERVER's final weights, and PyTorch agrees they classify digits
    images, labels = load_mnist("mnist-5k", "test")
    with torch.no_grad():
        logits = _torch_mlp(load_file(str(export)))(torch.from_numpy(images))
    assert (logits.argmax(1).numpy() == labels).mean() >= 0.85
