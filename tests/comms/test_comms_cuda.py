"""The collectives on GPU arrays: CuPy in, CuPy out, staged through host memory.

sparkgrad's transports move host bytes, so a collective on a CuPy array copies it to the
host once (``host_buffer``), runs, and copies the result back once. These tests run every
collective on CuPy arrays (thread ranks), count those copies with the CuPy stand-in's
ledger where it is active, and run ``sparkgrad.distributed`` on cuda tensors in spawned
processes (which find the stand-in through ``PYTHONPATH``). They need CuPy and a GPU, or
``SPARKGRAD_FAKE_CUDA=1``.
"""

import numpy as np
import pytest
from comms_helpers import exact_input, run_group

import sparkgrad as sg
from sparkgrad.autodiff import cuda_is_available
from sparkgrad.comms.algorithms import REGISTRY
from sparkgrad.comms.spawn import free_port

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not cuda_is_available(), reason="no CUDA GPU/CuPy on this machine"),
]


def _every_collective(pg):
    """Each collective on CuPy arrays: the result is a CuPy array and exact."""
    import cupy

    n, r, count = pg.size, pg.rank, 37
    ins = [exact_input(i, count, np.float32) for i in range(n)]
    dev = cupy.asarray(ins[r])
    checks = {}
    for algo in REGISTRY["all_reduce"]:
        x = dev.copy()
        pg.all_reduce(x, algorithm=algo)
        checks[f"all_reduce/{algo}"] = (x, sum(ins))
    for algo in REGISTRY["broadcast"]:
        x = dev.copy()
        pg.broadcast(x, 1 % n, algorithm=algo)
        checks[f"broadcast/{algo}"] = (x, ins[1 % n])
    x = dev.copy()
    pg.reduce(x, 0)
    checks["reduce"] = (x, sum(ins) if r == 0 else ins[r])
    checks["all_gather"] = (pg.all_gather(dev), np.stack(ins))
    rows = [exact_input(i, count * n, np.float32) for i in range(n)]
    checks["reduce_scatter"] = (
        pg.reduce_scatter(cupy.asarray(rows[r])),
        sum(rows)[r * count : (r + 1) * count],
    )
    blocks = [exact_input(i, count * n, np.float32).reshape(n, count) for i in range(n)]
    checks["all_to_all"] = (
        pg.all_to_all(cupy.asarray(blocks[r])),
        np.stack([b[r] for b in blocks]),
    )
    out = cupy.zeros(count, np.float32)
    pg.scatter(out, cupy.asarray(blocks[0]) if r == 0 else None, root=0)
    checks["scatter"] = (out, blocks[0][r])
    got = cupy.zeros(count, np.float32)
    pg.send(dev, (r + 1) % n)
    pg.recv(got, (r - 1) % n)
    checks["send/recv"] = (got, ins[(r - 1) % n])
    return {
        name: (isinstance(value, cupy.ndarray), bool(np.array_equal(cupy.asnumpy(value), want)))
        for name, (value, want) in checks.items()
    }


@pytest.mark.parametrize("nranks", [2, 3])
def test_every_collective_takes_and_gives_cupy_arrays_exactly(nranks):
    for rank, checks in enumerate(run_group(nranks, _every_collective)):
        bad = {name: c for name, c in checks.items() if c != (True, True)}
        assert not bad, f"rank {rank}: (stays a CuPy array, exact) failed for {bad}"


def _ledger():
    import cupy

    if not getattr(cupy, "IS_SPARKGRAD_FAKE", False):
        pytest.skip("counting transfers needs the CuPy stand-in (SPARKGRAD_FAKE_CUDA=1)")
    return cupy.fake


def _mine(seen):
    """The events of the calling thread (thread ranks share one ledger)."""
    import threading

    return sorted(e.kind for e in seen if e.thread == threading.get_ident())


def test_all_reduce_copies_to_the_host_once_and_back_once_per_rank():
    fake = _ledger()

    def body(pg):
        import cupy

        x = cupy.asarray(exact_input(pg.rank, 1000, np.float32))
        with fake.watch() as seen:
            pg.all_reduce(x)
        return _mine(seen), sorted(e.nbytes for e in seen)

    for kinds, sizes in run_group(2, body):
        assert kinds == ["to_device", "to_host"]
        assert set(sizes) == {4000}


def test_send_copies_to_the_host_only_and_recv_to_the_device_only():
    fake = _ledger()

    def body(pg):
        import cupy

        x = cupy.full(250, float(pg.rank), np.float32)
        with fake.watch() as seen:
            if pg.rank == 0:
                pg.send(x, 1)
            else:
                pg.recv(x, 0)
        return _mine(seen), float(x[0])

    (sent, _), (received, value) = run_group(2, body)
    assert sent == ["to_host"]  # no copy back onto the unchanged array
    assert received == ["to_device"]  # no copy of the old values to the host
    assert value == 0.0


def test_distributed_api_on_cuda_tensors_in_spawned_processes(tmp_path, monkeypatch):
    import cupy

    import sparkgrad.multiprocessing as mp

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    import mp_workers

    assert mp.spawn(mp_workers.cuda_run, args=(2, str(tmp_path)), nprocs=2) is None
    for rank in range(2):
        res = sg.load(tmp_path / f"cuda{rank}.pt")
        assert res["sum"].tolist() == [3.0, 30.0]
        assert [r.tolist() for r in res["rows"]] == [[0.0, 0.0], [1.0, 1.0]]
        assert res["p2p"].tolist() == [7.0, 7.0, 7.0]
        assert res["on_gpu"] is True
        assert res["fake"] is bool(getattr(cupy, "IS_SPARKGRAD_FAKE", False))
