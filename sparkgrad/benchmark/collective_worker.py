"""One rank of the collectives benchmark: ``python -m sparkgrad.benchmark.collective_worker``.

The driver (:mod:`sparkgrad.benchmark.collectives`) starts ``world_size`` of these as
separate processes on 127.0.0.1, all with the same arguments but their own ``--rank``.
Each joins a process group (sparkgrad's ``"tcp"`` backend or PyTorch's ``"gloo"``), and,
as nccl-tests does:

1. for every size, fills a float32 buffer with *exact-sum* inputs (small integers: any
   summation order gives the exact answer), runs one all_reduce and counts the elements
   that differ from the sum computed in int64 (``#wrong``, must be 0), then runs
   ``warmup`` untimed calls;
2. times every call of ``iters`` rounds over all sizes (below); a size's time is rank
   0's *median* (nccl-tests takes the mean; the median stays put when other jobs share
   the machine's cores).

With ``--backend both`` every process joins *both* groups (sparkgrad's on ``--port``,
gloo's on ``--port2``) and the timed calls alternate, one sparkgrad call then one gloo
call, so whatever else the machine does in that second slows both alike: the ratio of
the two medians is then a fair comparison even on a busy 2-core laptop.

Calls of one size are not timed back to back: each round makes a few calls per size and
backend (two for 64 MiB, up to 8 for 8 MiB and less: :func:`calls_per_round`), so
every size's calls are spread over the whole run (see :func:`_measure_sizes`). With
``--calibrate``, each measured sparkgrad call has one more beside it, timed on its own
with zeros as data: the calibration points ``calibrate()`` fits (median per size), and,
at the end, rank 0 times local NumPy reductions. Calibration calls are separate
measurements from the ones in the table, but taken in the same seconds: whatever the
machine was doing then (a virtual machine's cores come and go) weighs on both, so
"predicted vs measured" compares the model, not two moments of the machine.
Rank 0 writes everything as JSON to ``--out``; no pickle crosses the processes.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FLOAT32 = 4
ROUND_BYTES = 128 << 20  # a round times each size until about this many bytes (at most 8 calls)
MAX_CALLS_PER_ROUND = 8


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


def calls_per_round(nbytes: int) -> int:
    """How many calls of ``nbytes`` one round times: ``ROUND_BYTES / nbytes``, 1 to 8.

    On a shared machine any one call may take twice its usual time, so a median needs
    many samples; cheap calls get more of them (8 calls of 8 MiB or less, 2 of 64 MiB)
    and the largest ones do not stretch the run too far. The count depends only on the
    size, so every rank makes the same calls.
    """
    return max(1, min(MAX_CALLS_PER_ROUND, ROUND_BYTES // max(1, nbytes)))


def _timed_call(backend: _Backend, handle: Any) -> float:
    """Seconds of one all_reduce call."""
    start = time.perf_counter()
    backend.all_reduce(handle)
    return time.perf_counter() - start


@dataclass
class _SizeRun:
    """One message size under test: its buffers, its check and the times taken so far.

    Each measured call multiplies the buffer by ``n`` (every rank holds the same sum), so
    :meth:`measure` refills it from ``source``, outside the timed call, long before
    float32 could overflow. The calibration buffer holds zeros: it never grows.
    """

    count: int
    source: np.ndarray
    bufs: list[np.ndarray]
    wrong: list[int]
    zeros: np.ndarray | None  # the calibration calls' buffer (only with --calibrate)
    times: list[list[float]] = field(default_factory=list)
    calibration: list[float] = field(default_factory=list)
    grown: list[int] = field(default_factory=list)  # calls since each buffer was refilled

    def measure(self, k: int, backend: _Backend) -> None:
        """Time one call of backend ``k`` on its buffer, refilled when it grew too far."""
        n = backend.dist.get_world_size()
        if self.grown[k] >= int(30 / math.log10(max(n, 2))):  # n**calls stays below 1e30
            np.copyto(self.bufs[k], self.source)
            self.grown[k] = 0
        self.times[k].append(_timed_call(backend, backend.wrap(self.bufs[k])))
        self.grown[k] += 1

    def calibrate(self, backend: _Backend) -> None:
        """Time one call on the zeros buffer: a calibration point, apart from the table."""
        self.calibration.append(_timed_call(backend, backend.wrap(self.zeros)))


def _measure_size(backend: _Backend, rank: int, n: int, nbytes: int, iters: int, warmup: int):
    return _measure_sizes([backend], rank, n, [nbytes], iters, warmup)[0][0][0]


def _prepare(
    backends: list[_Backend], rank: int, n: int, nbytes: int, warmup: int, calibrate: bool
) -> _SizeRun:
    """Check one size on every backend (``#wrong``), then warm it up."""
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
    zeros = np.zeros(count, dtype=np.float32) if calibrate else None
    nb = len(backends)
    return _SizeRun(count, source, bufs, wrong, zeros, [[] for _ in range(nb)], [], [0] * nb)


def _measure_sizes(
    backends: list[_Backend],
    rank: int,
    n: int,
    sizes: list[int],
    iters: int,
    warmup: int,
    calibrate: bool = False,
) -> tuple[list[list[dict]], list[list[float]]]:
    """Check every size on every backend, then time them all in ``iters`` rounds.

    A round makes :func:`calls_per_round` calls per size and backend, the backends taking
    turns: calls of one size are spread over the whole run instead of a few seconds of
    it, so the slow drift of a shared machine (a virtual machine's cores come and go)
    weighs alike on every size and on both backends. Returns per size the rows of every
    backend (median seconds) and, with ``calibrate``, the calibration points ``[bytes,
    median seconds]`` of one more sparkgrad (``backends[0]``) call beside each measured
    one, on a zeros buffer, timed apart.
    """
    runs = [_prepare(backends, rank, n, nbytes, warmup, calibrate) for nbytes in sizes]
    for i in range(iters):
        # each round visits the sizes in its own order (seeded by the round: the same on
        # every rank), so no size always comes right after the largest one, whose calls
        # leave cold caches and sleeping threads behind
        for j in np.random.default_rng(i).permutation(len(runs)):
            run = runs[j]
            for c in range(calls_per_round(run.count * FLOAT32)):
                # the calibration call goes before the measured one, then after it, in
                # turn: a call right after another backend's finds colder caches
                first = (i + c) % 2 == 0
                if calibrate and first:
                    run.calibrate(backends[0])
                for k, backend in enumerate(backends):
                    run.measure(k, backend)
                    if calibrate and not first and k == 0:
                        run.calibrate(backends[0])
    rows = [
        [
            {
                "nbytes": r.count * FLOAT32,
                "count": r.count,
                "seconds": float(np.median(t)),
                "wrong": w,
            }
            for t, w in zip(r.times, r.wrong)
        ]
        for r in runs
    ]
    points = [[r.count * FLOAT32, float(np.median(r.calibration))] for r in runs if calibrate]
    return rows, points


def _local_reductions(sizes: list[int], repeats: int) -> list[list[float]]:
    from sparkgrad.comms.model.calibrate import time_local_reduction

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
    calibrate = args.calibrate and args.world_size >= 2 and "sparkgrad" in names
    if calibrate:  # sparkgrad first: its extra call per round gives the calibration points
        backends.sort(key=lambda b: b.name != "sparkgrad")
        names = [b.name for b in backends]
    rows, points = _measure_sizes(
        backends, args.rank, args.world_size, sizes, args.iters, args.warmup, calibrate
    )
    for size_rows in rows:
        for name, row in zip(names, size_rows):
            results[name]["rows"].append(row)
    if calibrate:
        results["sparkgrad"]["calibration"] = points
        if args.rank == 0:
            results["sparkgrad"]["local_reduction"] = _local_reductions(sizes, repeats=5)
        backends[0].dist.barrier()
    for backend in backends:
        backend.close()
    if args.rank == 0:
        payload = results if args.backend == "both" else results[args.backend]
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(payload, f)


if __name__ == "__main__":
    main()
