"""Collectives in the profile: two thread ranks, their merged trace, flows and predictions.

Truths: the calls the ranks made (counted here), the cost model's ``predict`` called
directly for each call's algorithm and bytes, and a hand-computed predicted timeline.
"""

from __future__ import annotations

import numpy as np
import pytest

import sparkgrad as sg
from sparkgrad.autodiff.profiler import hooks, validate_trace
from sparkgrad.autodiff.profiler.merge import PREDICTED_PID, merge_traces
from sparkgrad.autodiff.profiler.predicted import simulate
from sparkgrad.comms.model import Topology, predict, select_algorithm
from sparkgrad.comms.process_group import ProcessGroup
from sparkgrad.comms.spawn import current_launch, run_threads

TOPOLOGY = "1x2-h100"
SENDS = [10, 5, 1000]  # element counts rank 0 sends to rank 1, in order; rank 1 answers once


def _rank(rank: int, world: int) -> dict:
    pg = ProcessGroup(current_launch().world.transport(rank), timeout=10.0)
    pg.barrier()  # clock alignment, as the engine does
    with sg.profiler.profile(record_shapes=True, rank=rank) as prof:
        x = sg.randn(4, 4, requires_grad=True)
        (x * 2).sum().backward()
        buf = np.full(1000, float(rank + 1), dtype=np.float32)
        pg.all_reduce(buf)
        assert buf[0] == 3.0
        for n in SENDS:
            if rank == 0:
                pg.send(np.arange(n, dtype=np.float64), 1)
            else:
                out = np.zeros(n)
                pg.recv(out, 0)
                assert out[-1] == n - 1
        if rank == 1:
            pg.send(np.ones(3), 0)
        else:
            pg.recv(np.zeros(3), 1)
        pg.all_reduce(buf)
        prof.step()
    return prof.trace()


@pytest.fixture(scope="module")
def traces():
    """The calls are priced on TOPOLOGY (the engine sets it from --sim-topology)."""
    before, hooks.topology = hooks.topology, TOPOLOGY
    try:
        return run_threads(_rank, 2)
    finally:
        hooks.topology = before


@pytest.fixture(scope="module")
def merged(traces):
    return merge_traces(traces)


def _comms(trace: dict, pid: int) -> list[dict]:
    return [e for e in trace["traceEvents"] if e["ph"] == "X" and e["pid"] == pid and e["tid"] == 2]


def test_each_rank_records_every_call_with_its_prediction(traces):
    topology = Topology.parse(TOPOLOGY)
    for rank, trace in enumerate(traces):
        validate_trace(trace)
        calls = _comms(trace, rank)
        kinds = [e["name"] for e in calls]
        p2p = ["send"] * 3 + ["recv"] if rank == 0 else ["recv"] * 3 + ["send"]
        assert kinds == ["all_reduce", *p2p, "all_reduce"]
        for e in calls:
            a = e["args"]
            there = select_algorithm(a["collective"], a["bytes"], 2, topology)  # not what ran
            assert a["predicted_us"] == pytest.approx(
                predict(a["collective"], there, a["bytes"], 2, topology) * 1e6
            )
            assert a["topology"] == TOPOLOGY
            assert a["measured_us"] == pytest.approx(e["dur"], abs=0.01)
            assert a["peers"] == [1 - rank] and a["ranks"] == [0, 1]
        assert [e["args"]["bytes"] for e in calls[1:5]] == [8 * n for n in SENDS] + [24]
        assert calls[0]["args"]["bytes"] == 4000


def test_merged_trace_pairs_every_send_with_its_recv(merged):
    counts = validate_trace(merged)
    # 4 send/recv pairs, drawn on the measured and on the predicted tracks
    assert counts["s"] == counts["f"] == counts["flows"] == 8
    events = merged["traceEvents"]
    slices = {(e["pid"], e["ts"]): e for e in events if e["ph"] == "X"}
    measured = [e for e in events if e["ph"] == "s" and e["pid"] < PREDICTED_PID]
    for s in measured:
        f = next(e for e in events if e["ph"] == "f" and e["id"] == s["id"])
        send = next(e for (pid, _), e in slices.items() if pid == s["pid"] and e["name"] == "send"
                    and e["ts"] <= s["ts"] <= e["ts"] + e["dur"])  # fmt: skip
        recv = next(e for (pid, _), e in slices.items() if pid == f["pid"] and e["name"] == "recv"
                    and e["ts"] <= f["ts"] <= e["ts"] + e["dur"])  # fmt: skip
        assert send["args"]["pair"] == recv["args"]["pair"]
        assert send["args"]["bytes"] == recv["args"]["bytes"]
        assert s["pid"] != f["pid"]
    sends = [e for e in events if e["ph"] == "X" and e["pid"] == 0 and e["name"] == "send"]
    pairs = sorted(e["args"]["pair"] for e in sends)
    assert pairs == ["0:0->1#1", "0:0->1#2", "0:0->1#3"]


def test_processes_and_threads_are_named(merged):
    names = {
        e["pid"]: e["args"]["name"]
        for e in merged["traceEvents"]
        if e["ph"] == "M" and e["name"] == "process_name"
    }
    assert names[0] == "rank 0 (measured)" and names[1] == "rank 1 (measured)"
    assert names[PREDICTED_PID].startswith("rank 0 (predicted on 1x2")
    threads = {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in merged["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }
    assert threads[(0, 1)] == "compute" and threads[(1, 2)] == "communication"


def test_predicted_collectives_end_together_and_last_their_prediction(merged):
    for seq_name in ("all_reduce",):
        ends = {}
        for r in (0, 1):
            calls = [e for e in _comms(merged, PREDICTED_PID + r) if e["name"] == seq_name]
            assert len(calls) == 2
            for e in calls:
                assert e["dur"] == pytest.approx(e["args"]["predicted_us"], abs=2e-3)
            ends[r] = [round(e["ts"] + e["dur"], 2) for e in calls]
        assert ends[0] == pytest.approx(ends[1], abs=2e-3)  # it ends on every rank at once


def test_the_clock_alignment_is_reported(merged):
    clock = merged["otherData"]["clock"]
    assert clock["method"].startswith("one host")  # thread ranks share the monotonic clock
    assert min(clock["offsets_us"]) == 0.0


def _x(ts, dur, **args):
    return {"ph": "X", "name": args.get("collective", "x"), "ts": ts, "dur": dur, "args": args}


def test_simulation_by_hand():
    """rank 0: 10 us compute, all_reduce (measured 50, predicted 2), send (8 -> 1), 5 us compute
    rank 1: 30 us compute, all_reduce (measured 30, predicted 2), 1 us compute, recv (pred 1)."""
    coll = dict(collective="all_reduce", tag=0, seq=1, ranks=[0, 1], predicted_us=2.0)
    send = dict(collective="send", pair="0:0->1#1", predicted_us=1.0)
    recv = dict(collective="recv", pair="0:0->1#1", predicted_us=1.0)
    comms = {
        0: [_x(10, 50, **coll), _x(60, 8, **send)],
        1: [_x(30, 30, **coll), _x(61, 20, **recv)],
    }
    out = simulate(comms)
    # the all_reduce starts when rank 1 arrives (30) and ends 2 us later on both ranks
    assert out[0][0] == (10, 30, 32, False) and out[1][0] == (30, 30, 32, False)
    # rank 0's send: ready right after (32), takes 1; rank 1's recv: ready at 33 (1 us of
    # compute after the all_reduce), starts when both ends are ready (33), takes 1
    assert out[0][1] == (32, 32, 33, False)
    assert out[1][1] == (33, 33, 34, False)


def test_simulation_survives_a_missing_rank():
    coll = dict(collective="all_reduce", tag=0, seq=1, ranks=[0, 1], predicted_us=2.0)
    recv = dict(collective="recv", pair="0:1->0#1", predicted_us=1.0)
    out = simulate({0: [_x(5, 10, **coll), _x(20, 3, **recv)]})  # rank 1 not traced
    assert out[0] == [(5, 5, 7, False), (12, 12, 13, True)]
