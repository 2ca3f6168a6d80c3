"""One rank of the collectives benchmark: ``python -m sparkgrad.benchmark.collective_worker``.

The driver (:mod:`sparkgrad.benchmark.collectives`) starts ``world_size`` of these as
separate processes on 127.0.0.1, all with the same arguments but their own ``--rank``.
Each joins a process group (sparkgrad's ``"tcp"`` backend or PyTorch's ``"gloo"``), and
for every size, as nccl-tests does:

1. fills a float32 buffer with *exact-sum* inputs (small integers: any summation order
   gives the exact answer), runs one all_reduce and counts the elements that differ from
   the sum computed in int64 (``#wrong``, must be 0);
2. runs ``warmup`` untimed calls, then ``iters`` back-to-back calls, each timed; the
   time is rank 0's *median* (nccl-tests takes the mean; the median stays put when other
   jobs share the machine's cores).

With ``--backend both`` every process joins *both* groups (sparkgrad's on ``--port``,
gloo's on ``--port2``) and the timed calls alternate, one sparkgrad call then one gloo
call, so whatever else the machine does in that second slows both alike: the ratio of
the two medians is then a fair comparison even on a busy 2-core laptop.

With ``--calibrate``, a separate pass first times all_reduce the same way (median of 9
back-to-back calls per size, zeros as data) and rank 0 times local NumPy reductions:
the points ``calibrate()`` fits.
Rank 0 writes everything as JSON to ``--out``; no pickle crosses the processes.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

FLOAT32 = 4


def exact_inputs(rank: int, count: int) -> np.ndarray:
    """Rank ``rank``'s buffer: integers in [-5, 5], so sums over <= 8 ranks are exact in float32."""
    i = np.arange(count, dtype=np.int64)
    return (((i * 7 + rank * 3) % 11) - 5).astype(np.float32)


def expected_sum(world_size: int, count: int) -> np.ndarray:
    """The all_reduce SUM of every rank's :func:`exact_inputs`, computed in int64."""
    return sum(exact_inputs(r, count).astype(np.int64) for r in range(world_size))


class _Backend:
    """The three calls the benchmark needs, over sparkgrad or torch.distributed."""

    def __init__(self, name: str, rank: int, world_size: int, port: int, timeout: float) -> None:
        self.name = name
        init = f"tcp://127.0.0.1:{port}"
        if name == "gloo":
            import datetime

            import torch
            import torch.distributed as dist

            torch.set_num_threads(1)
            self._wrap: Callable[[np.ndarray], Any] = torch.from_numpy
            dist.init_process_group(
                "gloo",
                init_method=init,
                rank=rank,
                world_size=world_size,
                timeout=datetime.timedelta(seconds=timeout),
            )
        else:
            import sparkgrad.distributed as dist

            self._wrap = lambda array: array
            dist.init_process_group(
                "tcp", init_method=init, rank=rank, world_size=world_size, timeout=timeout
            )
        self.dist = dist

    def wrap(self, array: np.ndarray) -> Any:
        """The object the backend's calls take (a torch tensor sharing memory, or the array)."""
        return self._wrap(array)

    def all_reduce(self, buf: Any) -> None:
        self.dist.all_reduce(buf)

    def close(self) -> None:
        self.dist.barrier()
        if self.name != "gloo":
            # Work-around: sparkgrad's TCP transport counts a peer that closes its sockets as
            # lost, even when it has finished the last call; let slower ranks finish first.
            time.sleep(0.5)
        self.dist.destroy_process_group()


def _timed_calls(backend: _Backend, buf: np.ndarray, source: np.ndarray, iters: int) -> float:
    """Median seconds of ``iters`` back-to-back all_reduce calls, each timed on its own.

    The buffer grows by a factor n per call, so it is refilled from ``source`` (outside
    the timed region) well before float32 could overflow.
    """
    handle = backend.wrap(buf)
    n = backend.dist.get_world_size()
    safe = max(1, int(30 / math.log10(max(n, 2))))
    times = []
    for k in range(iters):
        if k and k % safe == 0:
            np.copyto(buf, source)
        start = time.perf_counter()
        backend.all_reduce(handle)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _measure_size(backend: _Backend, rank: int, n: int, nbytes: int, iters: int, warmup: int):
    return _measure_interleaved([backend], rank, n, nbytes, iters, warmup)[0]


def _measure_interleaved(
    backends: list[_Backend], rank: int, n: int, nbytes: int, iters: int, warmup: int
) -> list[dict]:
    """Check and time one size on every backend, the timed calls taking turns."""
    count = max(1, nbytes // FLOAT32)
    source = exact_inputs(rank, count)
    bufs, wrong = [], []
    for backend in backends:
        buf = source.copy()
        backend.all_reduce(backend.wrap(buf))
        wrong.append(int(np.count_nonzero(buf.astype(np.int64) != expected_sum(n, count))))
        for _ in range(warmup):
            backend.all_reduce(backend.wrap(buf))
        np.copyto(buf, source)
        backend.dist.barrier()
        bufs.append(buf)
    times: list[list[float]] = [[] for _ in backends]
    for _ in range(iters):  # one call each, in turn: both see the same background load
        for k, backend in enumerate(backends):
            times[k].append(_timed_calls(backend, bufs[k], source, 1))
    return [
        {"nbytes": count * FLOAT32, "count": count, "seconds": float(np.median(t)), "wrong": w}
        for t, w in zip(times, wrong)
    ]


def _calibration_points(
    backends: list[_Backend], sizes: list[int], repeats: int
) -> list[list[float]]:
    """A separate pass, measured like the main one (zeros as data, one warm-up call, the
    backends' calls in turn); returns the first backend's ``(bytes, seconds)`` points."""
    points = []
    for nbytes in sizes:
        bufs = [np.zeros(max(1, nbytes // FLOAT32), dtype=np.float32) for _ in backends]
        for backend, buf in zip(backends, bufs):
            backend.all_reduce(backend.wrap(buf))
        times: list[float] = []
        for _ in range(repeats):
            for k, (backend, buf) in enumerate(zip(backends, bufs)):
                seconds = _timed_calls(backend, buf, buf, 1)
                if k == 0:
                    times.append(seconds)
        points.append([bufs[0].nbytes, float(np.median(times))])
    return points


def _local_reductions(sizes: list[int], repeats: int) -> list[list[float]]:
    from sparkgrad.comms.calibrate import time_local_reduction

    return [[s, float(np.median([time_local_reduction(s) for _ in range(repeats)]))] for s in sizes]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sparkgrad", "gloo", "both"), required=True)
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--world-size", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--port2", type=int, default=0, help="gloo's port with --backend both")
    parser.add_argument("--sizes", required=True, help="comma-separated message sizes in bytes")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    names = ["sparkgrad", "gloo"] if args.backend == "both" else [args.backend]
    ports = [args.port, args.port2]
    backends = [
        _Backend(name, args.rank, args.world_size, port, args.timeout)
        for name, port in zip(names, ports)
    ]
    results: dict[str, Any] = {
        name: {"backend": name, "world_size": args.world_size, "rows": []} for name in names
    }
    if args.calibrate and args.world_size >= 2 and "sparkgrad" in names:
        sg = backends[names.index("sparkgrad")]  # first: its points are the ones kept
        order = [sg] + [b for b in backends if b is not sg]
        results["sparkgrad"]["calibration"] = _calibration_points(order, sizes, repeats=9)
        if args.rank == 0:
            results["sparkgrad"]["local_reduction"] = _local_reductions(sizes, repeats=5)
        sg.dist.barrier()
    for size in sizes:
        rows = _measure_interleaved(
            backends, args.rank, args.world_size, size, args.iters, args.warmup
        )
        for name, row in zip(names, rows):
            results[name]["rows"].append(row)
    for backend in backends:
        backend.close()
    if args.rank == 0:
        payload = results if args.backend == "both" else results[args.backend]
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(payload, f)


if __name__ == "__main__":
    main()
