"""Ctrl-C on ``main.py`` while the ranks train on Spark: one line, exit 130, nothing left over.

A real ``main.py --strategy data --world-size 2`` in its own session; once rank 0 reports
its first epoch, SIGINT goes to the whole process group, as a terminal's Ctrl-C does (the
JVM ignores it, PySpark's workers sit in a group of their own). Before issue 17.11 this
printed 54-89 lines of py4j tracebacks, and the ranks logged on for ~2 s after
"interrupted" until Spark killed their workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import warnings

import pytest

from sparkgrad.engine.checkpoint import list_checkpoints, load_latest_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="counts processes in /proc"),
]


def _session_members(sid: int) -> list[str]:
    """Live processes (zombies aside) of session ``sid``, as 'pid state comm'."""
    members = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # it ended while we looked
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, _ppid, _pgrp, session = stat[stat.rindex(")") + 2 :].split()[:4]
        if int(session) == sid and state != "Z":
            members.append(f"{pid} {state} {comm}")
    return members


def test_ctrl_c_prints_one_line_stops_the_ranks_and_leaves_no_process(tmp_path):
    ckpt = tmp_path / "ck"
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYTHONPATH=ROOT)
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "main.py"), "--strategy", "data",
         "--world-size", "2", "--data", "synthetic:4000", "--hidden", "32", "--epochs", "1000",
         "--no-progress", "--checkpoint-dir", str(ckpt), "--checkpoint-every", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    first_epoch = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if line.startswith("[rank 0] epoch 1:"):
                first_epoch.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert first_epoch.wait(300), "no epoch line:\n" + "\n".join(lines)
        mark = len(lines)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
        returncode = proc.wait(120)
        left = _session_members(proc.pid)  # at once: main.py waited for its JVM
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join(10)
    after = lines[mark:]

    assert returncode == 130, "\n".join(lines)
    assert after and after[-1] == "main.py: interrupted", after
    assert len(after) <= 3, after  # at most a rank line or two that was in flight
    assert "Traceback" not in "\n".join(lines) and "py4j" not in "\n".join(lines)
    assert proc.stdout.read() == ""
    assert left == [], left
    # no half-written checkpoint under a final name: every one that exists loads cleanly
    assert list_checkpoints(ckpt), "the run wrote no checkpoint before the interrupt"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_latest_checkpoint(ckpt) is not None
