"""The NCCL-shaped API, algorithm choice by the cost model, the simulated clock and logs."""

import logging

import numpy as np
import pytest
from comms_helpers import exact_input, run_group

from sparkgrad.comms import nccl
from sparkgrad.comms.model import (
    Topology,
    explain,
    predict,
    predict_call,
    predicted_seconds,
    select_algorithm,
)
from sparkgrad.comms.spawn import run_threads
from sparkgrad.errors import CommError, ConfigError


def test_unique_id_travels_as_128_bytes():
    uid = nccl.get_unique_id()
    raw = uid.to_bytes()
    assert len(raw) == nccl.UNIQUE_ID_BYTES
    assert nccl.UniqueId.from_bytes(raw) == uid and uid.address.startswith("tcp://127.0.0.1:")
    with pytest.raises(ConfigError, match="unique id"):
        nccl.UniqueId.from_bytes(b"garbage")


def _nccl_program(rank, nranks, uid_bytes):
    comm = nccl.comm_init_rank(nranks, uid_bytes, rank, timeout=10)
    assert (comm.rank_id(), comm.size()) == (rank, nranks)
    send = exact_input(rank, 11, np.float32)
    recv = np.empty_like(send)
    comm.all_reduce(send, recv, op="sum")
    gathered = comm.all_gather(send, np.empty((nranks, 11), np.float32))
    root_out = np.zeros(11, np.float32)
    reduced = comm.reduce(send, root_out, op="max", root=1)
    # a ring exchange in one group: without group calls, recv-before-send would deadlock
    left, right = (rank - 1) % nranks, (rank + 1) % nranks
    got = np.empty(11, np.float32)
    nccl.group_start()
    comm.recv(got, left)
    comm.send(send, right)
    nccl.group_end()
    comm.destroy()
    return recv, gathered, reduced, got, send


def test_nccl_communicator_over_threads():
    n = 3
    uid = nccl.get_unique_id("threads").to_bytes()
    results = run_threads(_nccl_program, n, args=(uid,))
    ins = [exact_input(r, 11, np.float32) for r in range(n)]
    for rank, (recv, gathered, reduced, got, send) in enumerate(results):
        assert np.array_equal(recv, sum(ins))
        assert np.array_equal(send, ins[rank])  # out of place: input untouched
        assert np.array_equal(gathered, np.stack(ins))
        assert np.array_equal(reduced, np.max(ins, axis=0)) if rank == 1 else reduced is None
        assert np.array_equal(got, ins[(rank - 1) % n])


def test_group_end_without_start_is_an_error():
    with pytest.raises(CommError, match="group_start"):
        nccl.group_end()


def test_each_call_picks_the_local_links_algorithm_and_the_model_only_predicts():
    """What runs is chosen on this machine's link; a modelled cluster never changes it."""
    sizes = [8, 4096, 1 << 20]
    local, cluster = Topology.local(4), Topology.parse("2x8-h100")

    def body(pg):
        for nbytes in sizes:
            pg.all_reduce(np.zeros(nbytes // 4, np.float32))
        return pg.history

    history, *_ = run_group(4, body)
    assert [h["algorithm"] for h in history] == [
        select_algorithm("all_reduce", s, 4, local) for s in sizes
    ]
    there = [select_algorithm("all_reduce", s, 4, cluster) for s in sizes]
    expected = sum(predict("all_reduce", a, s, 4, cluster) for a, s in zip(there, sizes))
    assert predicted_seconds(history, cluster) == pytest.approx(expected, rel=1e-12)
    assert [predict_call(h, cluster)[0] for h in history] == there
    assert "picks" in explain(history[-1], "2x8-h100")


def test_nccl_algo_forces_the_algorithm_and_nccl_debug_logs_each_call(monkeypatch, caplog):
    monkeypatch.setenv("NCCL_ALGO", "tree")
    monkeypatch.setenv("NCCL_DEBUG", "INFO")

    def body(pg):
        pg.all_reduce(np.ones(1 << 16, np.float32))
        return pg.history[-1]["algorithm"]

    with caplog.at_level(logging.INFO, logger="sparkgrad.comms"):
        assert run_group(2, body) == ["tree", "tree"]
    lines = [r.getMessage() for r in caplog.records]
    assert any("Init COMPLETE" in line for line in lines)
    calls = [line for line in lines if line.startswith("NCCL INFO all_reduce")]
    assert len(calls) == 2 and all("algo tree" in c and "bytes 262144" in c for c in calls)
    assert all("sent 262144" in c and "measured" in c for c in calls)
