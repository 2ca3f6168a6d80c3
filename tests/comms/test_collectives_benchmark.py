"""How the nccl-tests-style benchmark checks results and turns times into bandwidths.

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
    """Remembers, call by call, its buffer's size and whether it held zeros (calibration)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def all_reduce(self, buf) -> None:
        self.calls.append(("data" if buf.any() else "zeros", buf.nbytes))


def test_cheap_sizes_get_more_calls_per_round():
    # ROUND_BYTES / nbytes calls, at least 1 and at most MAX_CALLS_PER_ROUND
    assert worker.ROUND_BYTES == 128 << 20 and worker.MAX_CALLS_PER_ROUND == 8
    counts = [worker.calls_per_round(s) for s in (8, 8 << 20, 32 << 20, 64 << 20, 256 << 20)]
    assert counts == [8, 8, 4, 2, 1]


def test_calibration_calls_take_turns_with_the_measured_ones(monkeypatch):
    """Rounds go over every size, in varying orders, a few calls per size (more for small
    ones); beside each measured call one calibration call, first and second in turn."""
    monkeypatch.setattr(worker, "ROUND_BYTES", 16384)  # 16 KiB: 1 call, 4 KiB: 4 calls
    backend = _RecordingBackend()
    sizes, iters = [16384, 4096], 4
    per_round = {16384: 1, 4096: 4}
    rows, points = worker._measure_sizes([backend], 0, 3, sizes, iters, warmup=0, calibrate=True)
    assert backend.calls[:2] == [("data", 16384), ("data", 4096)]  # the checks
    pairs = [backend.calls[k : k + 2] for k in range(2, len(backend.calls), 2)]
    assert all({kind for kind, _ in p} == {"data", "zeros"} and p[0][1] == p[1][1] for p in pairs)
    length = sum(per_round.values())
    rounds = [pairs[k : k + length] for k in range(0, len(pairs), length)]
    assert len(rounds) == iters
    for r in rounds:  # each size's calls together, as many as calls_per_round says
        seen = [p[0][1] for p in r]
        assert sorted(seen) == sorted(s for s in sizes for _ in range(per_round[s]))
        first_small = seen.index(4096)
        assert seen[first_small : first_small + 4] == [4096] * 4
    for size in sizes:  # calibration first in half of the pairs of each size, second in the rest
        first = [p[0][0] == "zeros" for p in pairs if p[0][1] == size]
        assert sum(first) * 2 == len(first) == iters * per_round[size]
    assert [p[0] for p in points] == sizes and all(p[1] > 0 for p in points)
    assert [r[0]["nbytes"] for r in rows] == sizes
    _, no_points = worker._measure_sizes([backend], 0, 3, sizes, iters=1, warmup=0)
    assert no_points == []


def test_no_size_always_follows_the_largest():
    """Each round visits the sizes in its own order: the largest size leaves cold caches."""
    backend = _RecordingBackend()
    many = [4 << k for k in range(6)]
    worker._measure_sizes([backend], 0, 3, many, iters=8, warmup=0)
    order = [size for _, size in backend.calls[len(many) :]]  # after the checks
    length = sum(worker.calls_per_round(s) for s in many)
    rounds = [order[k : k + length] for k in range(0, len(order), length)]
    assert len(rounds) == 8 and all(sorted(set(r)) == many for r in rounds)
    after_largest = {r[len(r) - r[::-1].index(many[-1])] for r in rounds if r[-1] != many[-1]}
    assert len(after_largest) > 1


def test_buffers_are_refilled_before_float32_overflows():
    """Each call multiplies the buffer (by n for a real all_reduce); 200 doublings of inputs
    up to 5 would be 8e60, past float32's 3.4e38, without the refill."""
    backend = _DoublingBackend()
    run = worker._prepare([backend], 0, 3, 4096, warmup=0, calibrate=False)
    for _ in range(200):
        run.measure(0, backend)
    assert np.isfinite(run.bufs[0]).all() and np.abs(run.bufs[0]).max() < 1e32


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


@pytest.mark.slow  # processes or a timeout: ~2-3 s, kept out of the quick loop
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
