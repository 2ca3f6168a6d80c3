"""This machine, measured for :mod:`.local`: the ``cpu`` device, sparkgrad's per-op
overhead and the ``threads`` transport's links (each a fraction of a second).

- :func:`measure_cpu`: the median of a timed 256 x 256 float32 matmul (the MLP's hidden
  width) and of a 1 MiB copy (its arrays stay in cache);
- :func:`engine_overheads`: sparkgrad's Python cost per op, the median time of the op's
  forward + backward on a 1-element input (``Linear(1, 1)``, ``ReLU``, the cross-entropy
  with its ``backward()``, an Adam ``step`` + ``zero_grad`` per parameter tensor) and, as
  ``step``, a whole ``single`` train step of a 1-2-2 MLP on one row less those ops: at that
  size the arrays cost nothing, so what is left is the engine's bookkeeping;
- :func:`calibrate_comm`: one :class:`~sparkgrad.comms.model.links.Link` per collective,
  fitted by :func:`~sparkgrad.comms.model.calibrate.calibrate` from calls timed on
  ``world`` thread-ranks, each after a barrier (in a step the ranks arrive, then talk).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparkgrad.comms.model.calibrate import Measurement, calibrate
from sparkgrad.simulate.devices import Device, cpu_device
from sparkgrad.simulate.mlp import Work

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "send")


@dataclass
class LocalCosts:
    """What :func:`calibrate_local` measured: device, per-op overheads (s), comm fits."""

    device: Device
    overhead: dict[str, float]
    comm: dict[str, tuple[str, object]] = field(default_factory=dict)  # -> (algo, fit)
    cores: int = 2
    world: int = 4

    def array_seconds(self, op: Work) -> float:
        """The roofline of the op's arrays (no launch overhead: ``overhead`` has it)."""
        return max(op.flops / self.device.peak("fp32"), op.nbytes / self.device.memory_bandwidth)

    def compute(self, ops: list[Work], part: str = "all") -> float:
        """Seconds of ``ops`` on one rank alone; ``part`` ``python`` or ``arrays`` for one half."""
        py = sum(self.overhead[op.kind] * op.calls for op in ops)
        arr = sum(self.array_seconds(op) for op in ops)
        return {"all": py + arr, "python": py, "arrays": arr}[part]

    def comm_seconds(self, collective: str, nbytes: float) -> float:
        """The calibrated link's seconds for one call (the loss broadcast is an all-reduce)."""
        algo, fit = self.comm[collective]
        n = 2 if collective == "send" else self.world
        m = (
            Measurement.send(int(nbytes), 1.0)
            if collective == "send"
            else Measurement.of(collective, algo, int(nbytes), n, 1.0)
        )
        return fit.predicted(m)


def _median_time(
    fn: Callable[[], object], repeats: int, before: Callable[[], object] | None = None
) -> float:
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def engine_overheads(repeats: int = 200) -> dict[str, float]:
    """sparkgrad's per-op seconds at 1 element (see the module docstring)."""
    import sparkgrad as sg

    x = sg.tensor(np.ones((1, 1), np.float32))
    leaf = sg.tensor(np.ones((1, 1), np.float32), requires_grad=True)
    lin, relu, ce = sg.nn.Linear(1, 1), sg.nn.ReLU(), sg.nn.CrossEntropyLoss()
    logits = sg.tensor(np.ones((1, 2), np.float32), requires_grad=True)
    target = sg.tensor(np.zeros(1, np.int64))
    p = sg.nn.Parameter(sg.tensor(np.ones(1, np.float32))) if hasattr(sg.nn, "Parameter") else leaf
    opt = sg.optim.Adam([p], lr=1e-3)

    def adam() -> None:
        p.grad = sg.tensor(np.ones_like(np.asarray(p.array)))
        opt.step()
        opt.zero_grad()

    base = _median_time(lambda: leaf.sum().backward(), repeats)
    out = {
        "linear": max(0.0, _median_time(lambda: lin(x).sum().backward(), repeats) - base),
        "relu": max(0.0, _median_time(lambda: relu(leaf).sum().backward(), repeats) - base),
        "loss": _median_time(lambda: ce(logits, target).backward(), repeats),
        "adam": _median_time(adam, repeats),
    }
    # the rest of a step: a whole `single` train_step of a 1-2-2 MLP on one row, less its
    # ops (2 Linear, 1 ReLU, the loss, Adam on 4 tensors) as just measured
    from sparkgrad.engine.model import build_optimizer
    from sparkgrad.models.mlp import build_mlp
    from sparkgrad.parallel.registry import make_strategy

    tiny = make_strategy(
        "single",
        build_mlp((2,), n_in=1, n_out=2),
        lambda ps: build_optimizer("adam", ps, 1e-3),
        sg.nn.CrossEntropyLoss(),
    )
    step = _median_time(lambda: tiny.train_step(x, target), repeats)
    ops = 2 * out["linear"] + out["relu"] + out["loss"] + 4 * out["adam"]
    out["step"] = max(0.0, step - ops)
    return out


def _one_call(pg: Any, coll: str, rank: int, full: np.ndarray, shard: np.ndarray) -> Callable:
    """One timed call of ``coll``: ``send`` goes rank 0 -> 1, the others use every rank."""
    if coll == "all_reduce":
        return lambda: pg.all_reduce(full.copy())
    if coll == "all_gather":
        return lambda: pg.all_gather(shard)
    if coll == "reduce_scatter":
        return lambda: pg.reduce_scatter(full.copy())
    if rank == 0:
        return lambda: pg.send(full, 1)
    if rank == 1:
        return lambda: pg.recv(np.empty_like(full), 0)
    return lambda: None


def calibrate_comm(world: int = 4, repeats: int = 5) -> dict[str, tuple[str, object]]:
    """One fitted link per collective on ``world`` thread-ranks (4 KiB, 256 KiB, 1 MiB).

    Every call follows a barrier and its time is the slowest rank's median, since a step
    waits for the last rank to finish a collective."""
    import sparkgrad.distributed as dist
    from sparkgrad.benchmark.strategies import one_blas_thread

    sizes = (4 << 10, 256 << 10, 1 << 20)

    def rank_fn(rank: int, n: int) -> dict:
        dist.init_process_group("threads", rank=rank, world_size=n)
        try:
            pg = dist.state.default_group().pg
            out: dict = {}
            for coll in COLLECTIVES:
                for size in sizes:
                    full = np.ones(size // 4, np.float32)
                    shard = np.ones(size // 4 // n, np.float32)
                    call = _one_call(pg, coll, rank, full, shard)
                    pg.barrier()
                    call()  # warm-up: buffers
                    pg.reset_history()
                    # a barrier before every call: in a step the ranks arrive, then talk;
                    # back-to-back calls would overlap one call's tail with the next one
                    seconds = _median_time(call, repeats, pg.barrier)
                    algo = next(
                        (c.get("algorithm") for c in pg.calls() if c["collective"] == coll),
                        "p2p",
                    )
                    out[(coll, size)] = (algo, seconds)
            return out
        finally:
            dist.destroy_process_group()

    with one_blas_thread():
        ranks = dist.spawn(rank_fn, world)
    fits = {}
    for coll in COLLECTIVES:
        points, algo = [], "p2p"
        for size in sizes:
            algo = ranks[0][(coll, size)][0]
            seconds = max(r[(coll, size)][1] for r in (ranks[:2] if coll == "send" else ranks))
            if coll == "send":
                points.append(Measurement.send(size, seconds))
            else:
                points.append(Measurement.of(coll, algo, size, world, seconds))
        fits[coll] = (algo, calibrate(points))
    return fits


def measure_cpu(n: int = 256, copy_bytes: int = 1 << 20, repeats: int = 21) -> Device:
    """The ``cpu`` device at the MLP's sizes, with *medians* (a shared machine's best time is
    luck): a float32 ``n x n`` matmul (the hidden width) and a copy of ``copy_bytes`` (the
    MLP's arrays, about 1 MiB, stay in cache; :func:`cpu_device` copies 32 MiB, DRAM)."""
    a = np.ones((n, n), np.float32)
    src = np.ones(copy_bytes // 4, np.float32)
    dst = np.empty_like(src)
    flops = 2.0 * n**3 / _median_time(lambda: a @ a, repeats)
    bandwidth = 2.0 * copy_bytes / _median_time(lambda: np.copyto(dst, src), repeats)
    base = cpu_device()
    return Device(
        "cpu",
        dict.fromkeys(base.peaks, flops),
        memory_bandwidth=bandwidth,
        memory_bytes=base.memory_bytes,
        matmul_efficiency=1.0,
        memory_efficiency=1.0,
        launch_overhead=base.launch_overhead,
    )


def calibrate_local(world: int = 4, cores: int | None = None) -> LocalCosts:
    """Device, engine overheads and the threads links of this machine, measured now."""
    from sparkgrad.benchmark.strategies import one_blas_thread

    with one_blas_thread():
        device = measure_cpu()
        overhead = engine_overheads()
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
    return LocalCosts(device, overhead, calibrate_comm(world), int(cores), world)
