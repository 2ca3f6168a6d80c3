"""``main.py --profile DIR``: per-rank traces and the merged one, from real runs.

Truths: the run's own step count and communication counts, and the strict Trace Event
checker (``validate_trace``). The Spark run is real: ``main.py`` in a subprocess, two ranks
as Spark tasks, pipeline parallel so that send/recv pairs (and their flows) exist.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from sparkgrad.autodiff.profiler import validate_trace
from sparkgrad.autodiff.profiler.merge import PREDICTED_PID
from sparkgrad.engine.config import RunConfig
from sparkgrad.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(path) -> dict:
    with open(path) as f:
        return json.load(f)


def _x(trace: dict, pid: int, tid: int | None = None) -> list[dict]:
    return [
        e
        for e in trace["traceEvents"]
        if e["ph"] == "X" and e["pid"] == pid and (tid is None or e["tid"] == tid)
    ]


def test_single_process_run_writes_its_trace(tmp_path):
    from sparkgrad.engine.run import run

    config = RunConfig(
        strategy="single", epochs=1, data="synthetic:256", batch_size=64, progress=False,
        profile=str(tmp_path / "prof"),
    ).validate()  # fmt: skip
    result = run(config)
    rank0 = _load(tmp_path / "prof" / "trace.rank0.json")
    merged = _load(tmp_path / "prof" / "trace.merged.json")
    validate_trace(rank0)
    validate_trace(merged)
    names = Counter(e["name"] for e in _x(rank0, 0))
    assert len(result.history) == 1  # synthetic:256 trains on 256 rows: 4 steps of 64
    assert names["Optimizer.step#SGD.step"] == 4
    assert sum(n.startswith("ProfilerStep#") and c == 1 for n, c in names.items()) == 5
    assert names["LinearBackward"] == 3 * 4  # three Linear layers, four steps
    assert not _x(merged, 0, 2)  # one process: no communication


@pytest.mark.parametrize("where", ["hdfs://nn/prof", "  "])
def test_profile_needs_a_local_directory(where):
    with pytest.raises(ConfigError, match="--profile needs a local directory"):
        RunConfig(profile=where).validate()


@pytest.mark.slow
def test_spark_run_writes_per_rank_and_merged_traces(tmp_path):
    out = tmp_path / "prof"
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
    proc = subprocess.run(
        [
            sys.executable, os.path.join(ROOT, "main.py"), "--no-progress",
            "--strategy", "pipeline", "--world-size", "2", "--model", "mlp", "--epochs", "1",
            "--data", "synthetic:128", "--batch-size", "64", "--profile", str(out),
        ],
        capture_output=True, text=True, timeout=600, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "trace.merged.json", "trace.rank0.json", "trace.rank1.json",
    ]  # fmt: skip
    per_rank = [_load(out / f"trace.rank{r}.json") for r in (0, 1)]
    for r, trace in enumerate(per_rank):
        validate_trace(trace)
        assert {e["pid"] for e in trace["traceEvents"]} == {r}
        steps = [e for e in _x(trace, r, 1) if e["name"].startswith("ProfilerStep#")]
        assert len(steps) == 2 + 1  # two optimizer steps, then the rest of the run
    merged = _load(out / "trace.merged.json")
    counts = validate_trace(merged)
    sends = [e for r in (0, 1) for e in _x(merged, r, 2) if e["name"] == "send"]
    recvs = [e for r in (0, 1) for e in _x(merged, r, 2) if e["name"] == "recv"]
    assert sends and len(sends) == len(recvs)
    assert counts["flows"] == 2 * len(sends)  # measured and predicted tracks
    for r in (0, 1):  # the merged trace holds each rank's slices unchanged (up to the shift)
        assert len(_x(merged, r)) == len(_x(per_rank[r], r))
        predicted = _x(merged, PREDICTED_PID + r, 2)
        assert {e["name"] for e in predicted} >= {"send", "recv"}
        for e in predicted:
            if e["cat"] == "comm":
                assert e["dur"] == pytest.approx(e["args"]["predicted_us"], abs=2e-3)
                assert e["args"]["topology"].startswith("2x8")  # main.py's --sim-topology
    assert merged["otherData"]["clock"]["method"].startswith("one host")
