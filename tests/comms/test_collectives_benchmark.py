"""Lesson: how the nccl-tests-style benchmark checks results and turns times into bandwidths.

The benchmark is a script, not a timed test: these tests check its arithmetic (sizes,
busbw), that its exact-sum check really catches a wrong reduction, and that a tiny run
over real processes on 127.0.0.1 prints a table with zero wrong elements.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparkgrad.benchmark import collective_worker as worker
from sparkgrad.benchmark.collectives import (
    format_report,
    main,
    message_sizes,
    parse_size,
    run_backend,
)
from sparkgrad.errors import ConfigError


def test_sizes_follow_nccl_tests_steps():
    # -b 8 -e 64M -f 4: 8, 32, ..., 32 MiB = 8 * 4^11, then the end size itself
    sizes = message_sizes(8, parse_size("64M"))
    assert sizes[:3] == [8, 32, 128]
    assert sizes[-2:] == [8 * 4**11, 64 * 2**20]
    assert len(sizes) == 13
    assert parse_size("64K") == 65536 and parse_size("1MiB") == 2**20 and parse_size("12") == 12
    with pytest.raises(ConfigError, match="64M"):
        parse_size("lots")
    with pytest.raises(ConfigError, match="min size"):
        message_sizes(64, 8)


def test_exact_sum_inputs_are_exact_in_float32():
    for n in (2, 3, 8):
        count = 1000
        as_float = sum(worker.exact_inputs(r, count) for r in range(n))  # float32 additions
        assert np.array_equal(as_float.astype(np.int64), worker.expected_sum(n, count))
        assert np.abs(worker.expected_sum(n, count)).max() <= 5 * n


class _FakeDist:
    def barrier(self) -> None:
        pass

    def get_world_size(self) -> int:
        return 3


class _DoublingBackend:
    """A broken 'all_reduce' that doubles the buffer: right only where 2x == sum."""

    dist = _FakeDist()

    def wrap(self, array):
        return array

    def all_reduce(self, buf) -> None:
        buf *= 2


def test_wrong_reduction_is_counted():
    # with 3 ranks, 2 * rank-0's input equals the 3-rank sum only by accident
    row = worker._measure_size(_DoublingBackend(), 0, 3, 4096, iters=1, warmup=0)
    count = 1024
    truth = np.count_nonzero(2 * worker.exact_inputs(0, count) != worker.expected_sum(3, count))
    assert row["wrong"] == truth > 0
    assert row["count"] == count and row["nbytes"] == 4096


class _RecordingBackend(_DoublingBackend):
    """Remembers, call by call, whether it reduced the zeros buffer or the table's data."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def all_reduce(self, buf) -> None:
        self.calls.append("zeros" if not buf.any() else "data")


def test_calibration_calls_take_turns_with_the_measured_ones():
    """Rounds go over every size, in varying orders; one calibration call per round and size,
    beside the table's call."""
    backend = _RecordingBackend()
    sizes = [4096, 64]
    rows, points = worker._measure_sizes([backend], 0, 3, sizes, iters=2, warmup=0, calibrate=True)
    # the check call of each size, then round 0 (calibration first) and round 1 (second)
    assert backend.calls == ["data", "data"] + ["zeros", "data"] * 2 + ["data", "zeros"] * 2
    sizes_seen = []
    backend.all_reduce = lambda buf: sizes_seen.append(buf.nbytes)
    many = [4 << k for k in range(6)]
    worker._measure_sizes([backend], 0, 3, many, iters=8, warmup=0)
    rounds = [sizes_seen[k : k + 6] for k in range(6, len(sizes_seen), 6)]  # after the checks
    assert len(rounds) == 8 and all(sorted(r) == many for r in rounds)  # each size once a round
    after_largest = {r[r.index(many[-1]) + 1] for r in rounds if r[-1] != many[-1]}
    assert len(after_largest) > 1  # no size always follows the largest one
    assert [p[0] for p in points] == sizes and all(p[1] > 0 for p in points)
    assert [r[0]["nbytes"] for r in rows] == sizes
    _, no_points = worker._measure_sizes([backend], 0, 3, sizes, iters=1, warmup=0)
    assert no_points == []


def test_report_table_from_known_numbers():
    fake = {"rows": [{"nbytes": 4 << 20, "count": 1 << 20, "seconds": 0.01, "wrong": 0}]}
    from sparkgrad.benchmark.collectives import _merge

    table = _merge(4, [4 << 20], {"sparkgrad": fake, "gloo": fake}, None, "ring")
    row = table["rows"][0]
    # algbw = 4194304 B / 0.01 s = 0.4194304 GB/s; busbw = algbw * 2*3/4 = 0.6291456 GB/s
    assert row["sparkgrad"]["algbw"] == pytest.approx(0.4194304)
    assert row["sparkgrad"]["busbw"] == pytest.approx(0.6291456)
    assert row["ratio"] == pytest.approx(1.0)
    text = format_report(
        {"tables": [table], "algo": "ring", "errors": [], "h100_ring_busbw_GBps": 370.0}
    )
    assert "4194304" in text and "0.629" in text and "min busbw ratio 1.00" in text


@pytest.mark.slow  # two processes importing torch: ~7 s on 2 shared cores
def test_gloo_side_runs_two_processes_with_zero_wrong():
    result = run_backend("gloo", 2, [8, 4096], iters=2, timeout=120)
    assert [r["nbytes"] for r in result["rows"]] == [8, 4096]
    assert all(r["wrong"] == 0 and r["seconds"] > 0 for r in result["rows"])


def test_sparkgrad_side_table_with_calibration(capsys, tmp_path):
    out_json = tmp_path / "bench.json"
    argv = ["--backends", "sparkgrad", "--world-sizes", "2", "--max-size", "512", "--iters", "2"]
    assert main([*argv, "--json", str(out_json)]) == 0
    report = json.loads(out_json.read_text())
    rows = report["tables"][0]["rows"]
    assert [r["nbytes"] for r in rows] == [8, 32, 128, 512]
    assert all(r["sparkgrad"]["wrong"] == 0 for r in rows)
    assert all(r["sparkgrad"]["pred_us"] > 0 for r in rows)
    assert report["calibration"]["alpha_s"] > 0
    text = capsys.readouterr().out
    assert "busbw" in text and "#wrong" in text and "calibrated: alpha" in text
    assert "512       128  float   sum" in text


def test_cli_rejects_bad_flags(capsys):
    assert main(["--world-sizes", "1"]) == 2
    assert main(["--backends", "mpi"]) == 2
    assert "expected" in capsys.readouterr().err
