"""``main.py`` end to end: the job a new user runs first, its errors, and crash-and-resume.

The independent truths: PyTorch (the exported file loads into ``torch.nn.Sequential`` and
predicts what the run reported), a single-process run (data parallel on Spark must give
the same weights), and an uninterrupted run (a run that crashed and resumed from its
checkpoint must end with exactly its weights).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sparkgrad.dataset import load_mnist
from sparkgrad.engine.config import RunConfig
from sparkgrad.engine.run import run
from sparkgrad.export import load_safetensors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _main(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "main.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def _assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    # spark-submit pipes the Python driver's stderr into its own stdout: look at both
    output = proc.stderr + proc.stdout
    assert proc.returncode == 2, output
    assert "Traceback" not in output
    # Spark's JVM may log around it; ours is exactly one line
    ours = [line for line in output.splitlines() if line.startswith("main.py: error:")]
    assert len(ours) == 1, output
    for needle in needles:
        assert needle in ours[0], ours[0]


# ---- errors: one clear line, exit code 2 ------------------------------------------------------
def slow(*values):  # the full suite runs every case; the quick loop three (one subprocess each)
    return pytest.param(*values, marks=pytest.mark.slow)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        slow(["--batch-size", "63", "--world-size", "2"], "divide evenly"),
        slow(["--hidden", "256,x"], "--hidden"),
        slow(["--optimizer", "lbfgs"], "--optimizer"),
        slow(["--resume"], "--checkpoint-dir"),
        slow(["--strategy", "pipeline", "--micro-batches", "5"], "--micro-batches 5 must divide"),
        slow(["--strategy", "pipeline", "--world-size", "4"], "--model mlp has only 3"),
        slow(["--strategy", "model", "--split", "3,1"], "--split needs 2"),
        slow(["--strategy", "tensor", "--world-size", "3", "--hidden", "256,100"], "do not divide"),
        (["--strategy", "hybrid", "--world-size", "2", "--mesh", "dp=2,tp=2"], "dp=2,tp=2"),
        slow(
            ["--strategy", "hybrid", "--world-size", "2", "--mesh", "pp=2"], "data x tensor meshes"
        ),
        (["--strategy", "zero4"], "--strategy"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args, needle):
    _assert_one_line_error(_main(*args), needle)


def test_missing_data_directory_gives_one_line_and_exit_2(tmp_path):
    _assert_one_line_error(_main("--data", str(tmp_path / "nope")), "nope")


def test_corrupt_data_file_gives_one_line_and_exit_2(tmp_path):
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (tmp_path / name).write_bytes(b"\x00\x00\x08\x03 not an idx file")
    _assert_one_line_error(_main("--data", str(tmp_path)), "idx")


@pytest.mark.slow
def test_world_size_beyond_the_cluster_gives_one_line_and_exit_2():
    """``spark-submit --master local[2]`` has 2 task slots: 3 barrier tasks would wait forever."""
    submit = os.path.join(os.path.dirname(sys.executable), "spark-submit")
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable)
    proc = subprocess.run(
        [
            submit,
            "--master",
            "local[2]",
            os.path.join(ROOT, "main.py"),
            "--world-size",
            "3",
            "--batch-size",
            "63",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    _assert_one_line_error(proc, "slots")


# ---- the run itself -------------------------------------------------------------------------
def _torch_mlp(state: dict) -> torch.nn.Sequential:
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )
    model.load_state_dict(state)
    return model


@pytest.mark.slow
def test_main_trains_on_spark_and_pytorch_loads_the_export(tmp_path):
    """The README's command: 2 ranks on local Spark, >= 88% on the embedded MNIST test split."""
    export, metrics = tmp_path / "model.safetensors", tmp_path / "metrics.json"
    proc = _main(
        "--strategy",
        "data",
        "--world-size",
        "2",
        "--epochs",
        "3",
        "--no-progress",
        "--export",
        str(export),
        "--metrics-out",
        str(metrics),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = proc.stdout.strip().splitlines()[-1]
    assert final.startswith("done: strategy=data world_size=2 epochs=3"), final
    assert "comm_predicted[2x8-h100]" in final
    reported = float(final.split("test_accuracy=")[1].split("%")[0]) / 100
    assert reported >= 0.88

    images, labels = load_mnist("mnist-5k", "test")
    with torch.no_grad():
        logits = _torch_mlp(load_file(str(export)))(torch.from_numpy(images))
    torch_accuracy = (logits.argmax(1).numpy() == labels).mean()
    assert abs(torch_accuracy - reported) < 1e-3
    written = json.loads(metrics.read_text())
    assert [e["epoch"] for e in written["epochs"]] == [1, 2, 3]
    assert written["test_accuracy"] == pytest.approx(reported, abs=1e-4)
    assert written["comms"]["calls"] > 0 and written["comms"]["predicted_s"] > 0
    _, meta = load_safetensors(export)
    assert meta["strategy"] == "data" and meta["world_size"] == "2"
    assert meta["architecture"] == "mlp-784-256-256-10"


def _config(**overrides) -> RunConfig:
    base = dict(
        strategy="data",
        world_size=2,
        epochs=2,
        batch_size=64,
        data="synthetic:1280",
        hidden=(32,),
        progress=False,
        checkpoint_every=7,
    )
    return RunConfig(**{**base, **overrides})


@pytest.mark.slow
def test_data_parallel_on_spark_equals_single_process_training(spark_local):
    """Two Spark tasks with 32 samples each per step == one process with 64 per step."""
    single = run(_config(strategy="single", world_size=1))
    data = run(_config())
    for key, w in single.state_dict.items():
        np.testing.assert_allclose(data.state_dict[key], w, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_crash_resumes_from_the_checkpoint_with_exactly_the_same_weights(spark_local, tmp_path):
    """Rank 1 dies at step 30; Spark reruns the stage; the ranks resume from step 28."""
    clean = run(_config(checkpoint_dir=str(tmp_path / "clean")))
    crashed = run(_config(checkpoint_dir=str(tmp_path / "crash"), fail_at_step=30, fail_rank=1))
    assert (clean.attempt, clean.resumed_from) == (0, None)
    assert (crashed.attempt, crashed.resumed_from) == (1, 28)  # it did crash, and resumed
    assert crashed.history[-1]["epoch"] == 2
    for key, w in clean.state_dict.items():
        np.testing.assert_array_equal(crashed.state_dict[key], w)
    assert [m["train_loss"] for m in crashed.history] == pytest.approx(
        [m["train_loss"] for m in clean.history], rel=1e-6
    )


@pytest.mark.slow
def test_data_from_a_uri_is_read_by_spark_and_sharded_per_rank(spark_local, tmp_path):
    """``--data file://DIR``: Spark reads the IDX files; each task gets only its shard."""
    from sparkgrad.dataset import make_synthetic, write_idx

    for split, prefix, n in (("train", "train", 1024), ("test", "t10k", 1024)):
        images, labels = make_synthetic(n, split, seed=3)  # same class templates, new samples
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels.astype(np.uint8))
    result = run(_config(data=tmp_path.as_uri(), epochs=3, batch_size=32))
    assert result.history[-1]["test_accuracy"] > 0.5  # 10 classes: chance is 0.1


@pytest.mark.slow
def test_a_single_process_checkpoint_resumes_under_data_parallel_with_its_train_loss(
    spark_local, tmp_path
):
    """Issue 17.13: the restored (loss sum, samples) of epoch 1 were one process's sums, and
    the ranks went on adding their own rows only (1.4471 reported instead of 1.3061). Now
    both count global batches: the epoch-1 loss is the uninterrupted run's."""
    ckpt = str(tmp_path / "ck")
    run(_config(strategy="single", world_size=1, epochs=1, checkpoint_dir=ckpt))
    assert sorted(os.listdir(ckpt)) == ["step-000007", "step-000014"]  # 20 steps per epoch
    clean = run(_config(strategy="single", world_size=1))
    resumed = run(_config(checkpoint_dir=ckpt, resume=True))  # data, world size 2
    assert resumed.resumed_from == 14
    assert [m["train_loss"] for m in resumed.history] == pytest.approx(
        [m["train_loss"] for m in clean.history], rel=1e-6
    )
    for key, w in clean.state_dict.items():
        np.testing.assert_allclose(resumed.state_dict[key], w, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_diverging_loss_on_spark_is_one_line_and_not_retried(tmp_path):
    """Every rank raises NonFiniteLossError at the same step; no rerun (it would diverge
    again), no Java or Python trace on the console, nothing checkpointed."""
    ckpt = tmp_path / "ck"
    proc = _main(
        "--strategy", "data", "--world-size", "2", "--data", "synthetic:640", "--hidden", "16",
        "--epochs", "1", "--lr", "1e30", "--no-progress", "--checkpoint-dir", str(ckpt),
    )  # fmt: skip
    _assert_one_line_error(
        proc,
        "failed on attempt 0 with NonFiniteLossError: the training loss became nan at step 2",
        "--allow-nonfinite-loss",
    )
    output = proc.stderr + proc.stdout
    assert "org.apache.spark" not in output and "RuntimeWarning" not in output, output
    assert "attempt 1" not in output
    assert not ckpt.exists() or os.listdir(ckpt) == []
