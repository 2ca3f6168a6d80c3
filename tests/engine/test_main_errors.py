"""``main.py`` refuses bad input on the driver: one line on stderr, exit code 2, nothing written.

Every case here runs the real ``main.py`` in a subprocess with ``SPARK_HOME`` pointing
nowhere: had the run tried to start Spark (a task, a session, a JVM), it would have died
with another error. So a pass proves the error was found before any Spark task started.
The last test runs ``spark-submit`` itself, to check the line lands on *its* stderr.
"""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from main_cli import main_no_spark

from sparkgrad.dataset import make_synthetic, write_idx
from sparkgrad.engine.config import RunConfig
from sparkgrad.engine.run import run

# each case starts main.py in a subprocess (~0.7 s): the full suite runs them, the quick
# loop keeps test_main.py's one-line-error cases
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _assert_one_line_on_stderr(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr + proc.stdout
    assert proc.stdout == "", proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("main.py: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _mnist_dir(directory, n_train: int = 64, n_test: int = 16) -> None:
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images, labels = make_synthetic(n, split)
        write_idx(directory / f"{prefix}-images-idx3-ubyte", images[:n])
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", labels[:n].astype(np.uint8))


# ---- item 10: nonsense hyper-parameters -----------------------------------------------------
@pytest.mark.parametrize(
    "args, needle",
    [
        (["--lr", "inf"], "--lr must be in (0, inf), a finite number, found inf"),
        (["--lr", "nan"], "--lr must be in (0, inf)"),
        (["--lr", "-0.1"], "--lr must be in (0, inf)"),
        (["--lr", "0"], "--lr must be in (0, inf)"),
        (["--momentum", "-1"], "--momentum must be in [0, 1)"),
        (["--momentum", "nan"], "--momentum must be in [0, 1)"),
        (["--momentum", "inf"], "--momentum must be in [0, 1)"),
        (["--momentum", "1"], "--momentum must be in [0, 1)"),
        (["--gamma", "nan"], "--gamma must be in (0, 1]"),
        (["--gamma", "inf"], "--gamma must be in (0, 1]"),
        (["--gamma", "1.5"], "--gamma must be in (0, 1]"),
        (["--seed", "-1"], "--seed must be an integer in 0..2**63-1"),
        (["--fail-at-step", "0"], "--fail-at-step must be >= 1"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--micro-batches", "0", "--strategy", "pipeline"], "--micro-batches must be >= 1"),
        (["--lr", "abc"], "invalid float value: 'abc'"),
    ],
)
def test_nonsense_hyper_parameters_are_refused(args, needle):
    _assert_one_line_on_stderr(main_no_spark(*args), needle)


def test_in_range_values_at_the_edges_are_accepted():
    """The ranges are what --help says: momentum 0 and gamma 1 train."""
    proc = main_no_spark(
        "--strategy", "single", "--data", "synthetic:64", "--epochs", "1",
        "--momentum", "0", "--gamma", "1", "--lr", "1e-3", "--batch-size", "32",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_help_lists_the_ranges():
    proc = main_no_spark("--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for phrase in ("learning rate, in (0, inf)", "momentum, in [0, 1)", "GAMMA, in (0, 1]"):
        assert phrase in text, phrase
    assert "--allow-nonfinite-loss" in text


def test_allow_nonfinite_loss_reaches_the_config():
    from sparkgrad.engine.cli import parse_config

    assert parse_config(["--allow-nonfinite-loss"]).allow_nonfinite_loss is True
    assert parse_config([]).allow_nonfinite_loss is False


# ---- item 10b: a loss that diverges during training --------------------------------------------
def test_a_diverging_loss_stops_the_run_naming_the_step():
    """lr 1e30 is finite (accepted), but the second step's loss is NaN: one line, exit 2
    (the user's setting is wrong), and no screen of NumPy overflow warnings."""
    _assert_one_line_on_stderr(
        main_no_spark(
            "--strategy", "single", "--data", "synthetic:640", "--hidden", "16",
            "--epochs", "1", "--lr", "1e30",
        ),
        "the training loss became nan at step 2 (epoch 1, batch 2) with lr 1e+30",
        "--allow-nonfinite-loss",
    )  # fmt: skip


def test_allow_nonfinite_loss_trains_through_with_one_warning(caplog):
    import logging
    import math

    with caplog.at_level(logging.WARNING, logger="sparkgrad.engine.trainer"):
        result = run(
            RunConfig(
                strategy="single", data="synthetic:640", hidden=(16,), epochs=2, lr=1e30,
                allow_nonfinite_loss=True, progress=False,
            )
        )  # fmt: skip
    assert [m["epoch"] for m in result.history] == [1, 2]  # all 20 steps ran
    assert all(math.isnan(m["train_loss"]) for m in result.history)
    (record,) = caplog.records  # once, for the first non-finite step
    assert "became nan at step 2 (epoch 1, batch 2); training goes on" in record.getMessage()


def test_help_says_what_a_resume_takes_from_where():
    text = " ".join(main_no_spark("--help").stdout.split())
    for phrase in (
        "From the checkpoint: the weights, the optimizer's buffers",
        "From the command line: everything else",
        "--lr, --momentum, --gamma, --batch-size and --seed must equal the checkpoint's",
        "a conflict is an error, nothing is silently overridden",
    ):
        assert phrase in text, phrase


# ---- item 3: the modelled cluster -------------------------------------------------------------
@pytest.mark.parametrize(
    "args, needles",
    [
        (["--sim-topology", "9x9-foo"], ["--sim-topology", "unknown system 'foo'"]),
        (["--sim-topology", "two-by-eight"], ["--sim-topology", "NODESxRANKS"]),
        (["--world-size", "64"], ["--world-size 64 does not fit", "holds 1..16", "8x8-h100"]),
        (["--world-size", "12", "--batch-size", "48"], ["do not fill whole nodes of 8"]),
        (
            ["--strategy", "hybrid", "--world-size", "12", "--mesh", "dp=2,tp=6",
             "--sim-topology", "3x4-h100", "--hidden", "36", "--batch-size", "24"],
            ["--mesh dp=2,tp=6: its groups of 6 ranks"],
        ),
    ],
)  # fmt: skip
def test_a_topology_that_cannot_hold_the_run_is_refused_on_the_driver(args, needles):
    _assert_one_line_on_stderr(main_no_spark(*args), *needles)


def test_a_topology_that_holds_the_run_is_accepted():
    RunConfig(world_size=16, batch_size=64).validate()
    RunConfig(world_size=4, sim_topology="1x4:pcie5").validate()
    RunConfig(strategy="single", sim_topology="1x1-h100").validate()


# ---- items 3 and 9: the data, both splits, and their sizes -------------------------------------
@pytest.mark.parametrize("prefix", ["train", "t10k"])
@pytest.mark.parametrize("gz", [False, True])
def test_a_corrupt_train_or_test_file_is_found_on_the_driver(tmp_path, prefix, gz):
    _mnist_dir(tmp_path)
    name = tmp_path / f"{prefix}-images-idx3-ubyte"
    data = name.read_bytes()[:-500]
    name.unlink()
    (tmp_path / (name.name + (".gz" if gz else ""))).write_bytes(
        gzip.compress(data) if gz else data
    )
    line = _assert_one_line_on_stderr(main_no_spark("--data", str(tmp_path)), "truncated")
    assert f"{prefix}-images-idx3-ubyte" in line


def test_a_training_file_of_another_shape_is_found_on_the_driver(tmp_path):
    _mnist_dir(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((64, 32, 32), np.uint8))
    _assert_one_line_on_stderr(
        main_no_spark("--data", str(tmp_path)), "train-images-idx3-ubyte", "wrong image size"
    )


def test_a_bad_first_row_of_the_training_csv_is_found_on_the_driver(tmp_path):
    row = ",".join(["0"] * 785)
    (tmp_path / "mnist_train.csv").write_text("label,p\n" + "3,1,2\n" + (row + "\n") * 100)
    (tmp_path / "mnist_test.csv").write_text((row + "\n") * 10)
    _assert_one_line_on_stderr(
        main_no_spark("--data", str(tmp_path)), "mnist_train.csv", "column count"
    )


@pytest.mark.parametrize("strategy", ["single", "data"])
def test_data_smaller_than_one_batch_per_rank_is_refused(strategy):
    line = _assert_one_line_on_stderr(
        main_no_spark("--strategy", strategy, "--data", "synthetic:3"),
        "the training split has 3 samples",
        "--batch-size 64",
    )
    assert "--batch-size <= 3" in line if strategy == "single" else "--batch-size <= 2" in line


def test_exactly_one_batch_per_rank_trains_one_step():
    """64 samples, 2 ranks of 32: the boundary case runs (one step per epoch)."""
    result = run(RunConfig(strategy="single", data="synthetic:64", epochs=1, progress=False))
    assert result.history and result.history[0]["epoch"] == 1
    with pytest.raises(Exception, match="63 samples"):
        run(RunConfig(strategy="single", data="synthetic:63", epochs=1, progress=False))


def test_zero_record_files_are_a_named_data_error(tmp_path):
    _mnist_dir(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(0, np.uint8))
    _assert_one_line_on_stderr(main_no_spark("--data", str(tmp_path)), "no records")


def test_a_one_row_csv_is_a_named_data_error(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("5," + ",".join(["0"] * 784) + "\n")
    _assert_one_line_on_stderr(main_no_spark("--data", str(path)), "leave no test samples")


def test_a_header_declaring_gigabytes_is_refused_with_the_bound(tmp_path):
    _mnist_dir(tmp_path)
    header = struct.pack(">BBBBIII", 0, 0, 8, 3, 4_000_000, 28, 28)
    (tmp_path / "train-images-idx3-ubyte").unlink()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header))
    _assert_one_line_on_stderr(main_no_spark("--data", str(tmp_path)), "2147483648 bytes")


def test_an_unreadable_data_file_is_a_named_error(tmp_path):
    """A dangling link cannot be opened even by root (chmod 000 could be)."""
    _mnist_dir(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    (tmp_path / "train-labels-idx1-ubyte").symlink_to(tmp_path / "elsewhere")
    _assert_one_line_on_stderr(
        main_no_spark("--data", str(tmp_path)), "train-labels-idx1-ubyte: cannot read the file"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod-000 directory anyway")
def test_a_data_directory_without_permissions_is_a_named_error(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _mnist_dir(data)
    data.chmod(0)
    try:
        _assert_one_line_on_stderr(main_no_spark("--data", str(data)), "Permission denied")
    finally:
        data.chmod(0o755)


# ---- item 5: every path the run writes, checked first -----------------------------------------
def test_export_onto_an_existing_directory(tmp_path):
    _assert_one_line_on_stderr(
        main_no_spark("--export", str(tmp_path)), "--export", "is an existing directory"
    )


def test_export_and_metrics_under_a_regular_file(tmp_path):
    (tmp_path / "file").write_text("x")
    for flag in ("--export", "--metrics-out"):
        line = _assert_one_line_on_stderr(
            main_no_spark(flag, str(tmp_path / "file" / "sub" / "out")), flag, "is a file"
        )
        assert str(tmp_path / "file") in line


def test_checkpoint_dir_that_is_a_file(tmp_path):
    (tmp_path / "ckpt").write_text("x")
    _assert_one_line_on_stderr(
        main_no_spark("--checkpoint-dir", str(tmp_path / "ckpt")), "is an existing file"
    )


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
@pytest.mark.parametrize("flag", ["--export", "--metrics-out", "--checkpoint-dir"])
def test_a_directory_nobody_can_write_into(flag):
    """/proc refuses new files even to root: the probe finds what os.access would not."""
    target = "/proc/sparkgrad-out" if flag == "--checkpoint-dir" else "/proc/out.safetensors"
    _assert_one_line_on_stderr(main_no_spark(flag, target), flag, "cannot write into /proc")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only (chmod) directory")
@pytest.mark.parametrize("flag", ["--export", "--metrics-out", "--checkpoint-dir"])
def test_a_read_only_directory(tmp_path, flag):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        _assert_one_line_on_stderr(main_no_spark(flag, str(out / "x")), flag, "cannot write into")
    finally:
        out.chmod(0o755)


def test_export_and_metrics_onto_the_same_file(tmp_path):
    target = str(tmp_path / "x")
    _assert_one_line_on_stderr(
        main_no_spark("--export", target, "--metrics-out", target), "same file"
    )


def test_missing_output_directories_are_created_and_nothing_else_is_left(tmp_path):
    """A directory that does not exist yet is made when the run writes (as --export always
    did); the probe files of the checks are gone."""
    export = tmp_path / "a" / "b" / "model.safetensors"
    metrics = tmp_path / "m" / "metrics.json"
    proc = main_no_spark(
        "--strategy", "single", "--data", "synthetic:64", "--epochs", "1",
        "--export", str(export), "--metrics-out", str(metrics),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert export.is_file() and metrics.is_file()
    every = [p.name for p in tmp_path.rglob("*")]
    assert sorted(every) == sorted(["a", "b", "model.safetensors", "m", "metrics.json"])


def test_a_failed_check_writes_nothing(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = main_no_spark(
        "--strategy", "single", "--data", "synthetic:64", "--epochs", "1",
        "--export", str(tmp_path / "new" / "model.safetensors"),
        "--checkpoint-dir", str(tmp_path / "ck"),
        "--metrics-out", str(tmp_path / "file" / "metrics.json"),
    )  # fmt: skip
    _assert_one_line_on_stderr(proc, "--metrics-out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


# ---- item 8: resume with other settings ---------------------------------------------------------
def _checkpointed(tmp_path, *extra: str) -> str:
    ckpt = str(tmp_path / "ckpt")
    proc = main_no_spark(
        "--strategy", "single", "--data", "synthetic:320", "--epochs", "1", "--hidden", "16",
        "--checkpoint-dir", ckpt, "--checkpoint-every", "2", *extra,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return ckpt


def test_resume_with_another_optimizer_names_both(tmp_path):
    ckpt = _checkpointed(tmp_path)
    _assert_one_line_on_stderr(
        main_no_spark(
            "--strategy", "data", "--data", "synthetic:320", "--hidden", "16",
            "--checkpoint-dir", ckpt, "--resume", "--optimizer", "adam",
        ),
        "--optimizer sgd (this run: adam)",
        "(step 4)",
    )  # fmt: skip


def test_resume_with_other_settings_lists_every_conflict(tmp_path):
    ckpt = _checkpointed(tmp_path)
    line = _assert_one_line_on_stderr(
        main_no_spark(
            "--strategy", "single", "--data", "synthetic:320", "--checkpoint-dir", ckpt,
            "--resume", "--model", "cnn", "--lr", "0.1", "--batch-size", "32",
        )
    )  # fmt: skip
    for part in ("--model mlp (this run: cnn)", "--lr 0.05 (this run: 0.1)",
                 "--batch-size 64 (this run: 32)", "--hidden 16 (this run: 256,256)"):  # fmt: skip
        assert part in line, part


def test_resume_with_the_same_settings_and_more_epochs_continues(tmp_path):
    ckpt = _checkpointed(tmp_path)
    result = run(
        RunConfig(
            strategy="single", data="synthetic:320", epochs=2, hidden=(16,),
            checkpoint_dir=ckpt, checkpoint_every=2, resume=True, progress=False,
        )
    )  # fmt: skip
    assert result.resumed_from == 4 and [m["epoch"] for m in result.history] == [1, 2]


# ---- item 5: under spark-submit the line is on spark-submit's stderr ----------------------------
@pytest.mark.slow
@pytest.mark.parametrize("args", [["--lr", "inf"], ["--lr", "x"]])
def test_under_spark_submit_the_error_line_is_on_stderr(args):
    """spark-submit merges the Python driver's stderr into its stdout; the line must not."""
    submit = os.path.join(os.path.dirname(sys.executable), "spark-submit")
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable)
    proc = subprocess.run(
        [submit, "--master", "local[1]", os.path.join(ROOT, "main.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "main.py: error:" not in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    ours = [line for line in proc.stderr.splitlines() if line.startswith("main.py: error:")]
    assert len(ours) == 1 and "--lr" in ours[0], proc.stderr


# ---- item 3: a device the driver can see is missing --------------------------------------------
def _has_gpu() -> bool:
    from sparkgrad.autodiff.backend import cuda_is_available

    return cuda_is_available()


@pytest.mark.skipif(_has_gpu(), reason="this machine has CuPy and a GPU: --device cuda works")
def test_device_cuda_without_a_gpu_is_one_line():
    _assert_one_line_on_stderr(
        main_no_spark("--strategy", "single", "--device", "cuda", "--data", "synthetic:64"),
        "device='cuda' needs CuPy",
    )


@pytest.mark.slow
@pytest.mark.skipif(_has_gpu(), reason="this machine has CuPy and a GPU: --device cuda works")
def test_device_cuda_without_a_gpu_is_found_before_the_tasks(spark_local):
    """On a local master the driver's machine is the ranks' machine: checked there. A
    rank's error would read 'rank 0 failed on attempt 0 with DeviceError: ...'."""
    from sparkgrad.errors import DeviceError

    with pytest.raises(DeviceError, match=r"^device='cuda' needs CuPy"):
        run(RunConfig(device="cuda", data="synthetic:128", epochs=1, progress=False))
