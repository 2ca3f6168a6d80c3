"""The links of this machine's ranks, measured for :mod:`.local`: one fitted
:class:`~sparkgrad.comms.model.links.Link` per collective (4 KiB, 256 KiB, 1 MiB), from
calls timed on the very ranks (threads or TCP processes) whose steps are then measured.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sparkgrad.comms.model.calibrate import Measurement, calibrate
from sparkgrad.simulate.local_calibrate import COLLECTIVES


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


SIZES = (4 << 10, 256 << 10, 1 << 20)  # bytes per calibration call


def time_collectives(pg: Any, rank: int, n: int, repeats: int = 3) -> dict[str, list]:
    """When this rank ended its compute and its call, for each timed call of every
    collective at every size in ``SIZES``: ``{"all_reduce:4096": [algorithm, [[computed,
    ended], ...]], ...}``, in ``time.perf_counter()`` seconds (one clock for every thread and
    process of a Linux machine; JSON-ready: the TCP ranks send it back as a file).

    Every call follows a barrier and then one engine step of the reference model
    (:func:`~.local_calibrate.reference_step`), as in a step the ranks compute, then talk:
    timed after a bare barrier, a collective of 4 processes sharing 2 cores took half of
    what it takes after compute, where the ranks arrive one by one and cache-cold."""
    from sparkgrad.simulate.local_calibrate import reference_step

    burst = reference_step()
    burst()  # warm-up
    out: dict[str, list] = {}
    for coll in COLLECTIVES:
        for size in SIZES:
            full = np.ones(size // 4, np.float32)
            shard = np.ones(size // 4 // n, np.float32)
            call = _one_call(pg, coll, rank, full, shard)
            pg.barrier()
            call()  # warm-up: buffers
            pg.reset_history()
            spans = []
            for _ in range(repeats):
                pg.barrier()
                burst()
                computed = time.perf_counter()
                call()
                spans.append([computed, time.perf_counter()])
            algo = next((c.get("algorithm") for c in pg.calls() if c["collective"] == coll), "p2p")
            out[f"{coll}:{size}"] = [algo, spans]
    return out


def call_seconds(ranks: list[list]) -> float:
    """One collective's cost, the median over its timed calls: from when the *last* rank
    finished computing (before that the others only wait for it: the straggler's delay is
    in ``sharing``, see :mod:`.local_case`) to when the last rank is done with the call."""
    per_call = zip(*ranks)  # ranks[r][i] = [computed, ended] of call i on rank r
    return statistics.median(max(e for _, e in c) - max(t for t, _ in c) for c in per_call)


def fit_links(ranks: list[dict[str, list]], world: int) -> dict[str, tuple[str, object]]:
    """One fitted link per collective from every rank's :func:`time_collectives`
    (:func:`call_seconds` per size; ``send``: ranks 0 and 1, the pair that took part)."""
    fits = {}
    for coll in COLLECTIVES:
        points, algo = [], "p2p"
        for size in SIZES:
            algo = ranks[0][f"{coll}:{size}"][0]
            timed = ranks[:2] if coll == "send" else ranks
            seconds = call_seconds([r[f"{coll}:{size}"][1] for r in timed])
            if coll == "send":
                points.append(Measurement.send(size, seconds))
            else:
                points.append(Measurement.of(coll, algo, size, world, seconds))
        fits[coll] = (algo, calibrate(points))
    return fits
