"""Temporary files of killed exports are cleaned by the next successful write of the target.

A writer killed between ``open(tmp)`` and ``os.replace`` leaves ``model.safetensors.tmp-PID-XXXX``
behind (up to the model's size). The next successful write of the *same* target removes
such files of its own pattern when their process is gone or they are old; nothing else.
The truth is a real process that really ended (its PID is dead) and a real kill.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from sparkgrad.export import load_safetensors, save_safetensors
from sparkgrad.export.safetensors_io import STALE_TMP_SECONDS, remove_stale_tmp, write_atomic


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _touch(path, age: float = 0.0) -> None:
    path.write_bytes(b"half a model")
    if age:
        old = time.time() - age
        os.utime(path, (old, old))


def test_a_write_removes_stale_temp_files_of_its_own_target_only(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    target = tmp_path / "model.safetensors"
    stale = [
        tmp_path / f"model.safetensors.tmp-{dead}-0badc0de",  # dead writer
        tmp_path / f"model.safetensors.tmp-{dead}",  # older versions' name, dead writer
        tmp_path / f"model.safetensors.tmp-{alive}-12345678",  # PID alive, but an hour old
    ]
    kept = [
        tmp_path / f"model.safetensors.tmp-{alive}-abcdef01",  # a live writer at work
        tmp_path / f"other.safetensors.tmp-{dead}-0badc0de",  # another target
        tmp_path / f"xmodel.safetensors.tmp-{dead}-0badc0de",  # another target
        tmp_path / f"model.safetensors.tmp-{dead}-zz",  # not our pattern
        tmp_path / "model.safetensors.bak",
    ]
    for path in stale[:2] + kept:
        _touch(path)
    _touch(stale[2], age=STALE_TMP_SECONDS + 60)
    (tmp_path / f"model.safetensors.tmp-{dead}-00000000").mkdir()  # a folder: not ours
    save_safetensors({"w": np.ones(3, np.float32)}, target)
    assert all(not p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert (tmp_path / f"model.safetensors.tmp-{dead}-00000000").is_dir()
    np.testing.assert_array_equal(load_safetensors(target)[0]["w"], np.ones(3))


def test_remove_stale_tmp_on_a_missing_directory_does_nothing(tmp_path):
    assert remove_stale_tmp(tmp_path / "nowhere" / "model.safetensors") == []


def test_a_killed_export_leaves_a_file_the_next_export_removes(tmp_path):
    """A real writer, killed with SIGKILL while it writes: its file stays, then goes."""
    target = tmp_path / "model.safetensors"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import os, time
                import sparkgrad.export.safetensors_io as io
                def hang(fd):  # the payload is written; hang before the rename
                    print("written", flush=True)
                    time.sleep(600)
                os.fsync = hang
                io.write_atomic({str(target)!r}, b"x" * 1000)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "written"
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait()
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith("model.safetensors.tmp-")]
    assert len(leftovers) == 1 and f".tmp-{writer.pid}-" in leftovers[0].name
    write_atomic(target, b"complete")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
    assert target.read_bytes() == b"complete"


@pytest.mark.parametrize("age", [0.0, STALE_TMP_SECONDS + 60])
def test_a_failed_write_cleans_nothing(tmp_path, age):
    """Only a successful write cleans: a failing one must not remove anybody's file."""
    other = tmp_path / f"model.safetensors.tmp-{_dead_pid()}-0badc0de"
    _touch(other, age)
    (tmp_path / "model.safetensors").mkdir()  # os.replace cannot put a file over a folder
    with pytest.raises(OSError):
        write_atomic(tmp_path / "model.safetensors", b"x")
    assert other.exists()
