"""One row of the validation on this machine: calibrate, then measure, in the same seconds.

A virtual machine's speed drifts: the same ``single`` step measured 5.4 ms and then 8.0 ms
a few minutes later, and four process-ranks of ``pipeline`` went from 15 to 27 ms within
twenty seconds. A prediction calibrated at the start of a run and compared with a step
measured a minute later compares two machines. So every repeat of a row does, on the very
ranks that are then measured (as the collectives benchmark does):

1. **rank 0 alone** (the others wait at a barrier, using no CPU): the ``cpu`` device, the
   engine's per-op overhead and efficiency (:func:`~.local_calibrate.measure_engine`) and
   the time of one engine step of the reference model
   (:func:`~.local_calibrate.reference_step`);
2. **every rank at once**, from a barrier: that reference step again, ``STRAGGLER_TRIALS``
   times; ``sharing["step"]`` is the median over the trials of the *slowest* rank's time
   over the lone one. The slowest, not the average: the cores are handed out in slices,
   not evenly, so when the ranks then meet in a collective they wait for the rank the
   scheduler served least;
3. **every rank**: the collectives the links are fitted to
   (:func:`~.local_links.time_collectives`);
4. the strategy's timed steps, each step's end recorded (:func:`group_walls`).

:func:`run_case_on_rank` is the rank's side, for thread-ranks (:func:`run_threads`) and for
TCP processes (:mod:`.local_worker`); :func:`costs_of_repeat` turns one repeat's record
into the :class:`~.local_calibrate.LocalCosts` its prediction uses. Everything in a record
is JSON: the TCP ranks send it back as a file.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from sparkgrad.autodiff.threads import usable_cores
from sparkgrad.simulate.local_calibrate import (
    LocalCosts,
    engine_kwargs,
    measure_engine,
    median_time,
    reference_step,
)
from sparkgrad.simulate.local_links import fit_links, time_collectives

STRAGGLER_TRIALS = 7  # reference steps from a barrier, every rank at once


def strategy_step(job: dict[str, Any]) -> tuple[Any, list]:
    """The strategies benchmark's MLP step for ``job`` on this rank, and its batches."""
    import sparkgrad as sg
    from sparkgrad.benchmark.strategies import _batches
    from sparkgrad.engine.model import build_mlp, build_optimizer
    from sparkgrad.parallel.registry import make_strategy

    s = make_strategy(
        job["strategy"],
        build_mlp(tuple(job["hidden"]), seed=0),
        lambda p: build_optimizer("adam", p, 1e-3),
        sg.nn.CrossEntropyLoss(),
        **job.get("options", {}),
    )
    d, r = s.data_parallel_size, s.data_parallel_rank
    batches = _batches(int(job["steps"]) + 1, int(job["batch"]))
    per = len(batches[0][0]) // d

    def step(x: Any, y: Any) -> float:
        lo, hi = r * per, (r + 1) * per
        return float(s.train_step(sg.tensor(x[lo:hi]), sg.tensor(y[lo:hi])))

    return step, batches


def run_case_on_rank(job: dict[str, Any], rank: int, world: int, pg: Any) -> dict[str, Any]:
    """``job["repeats"]`` repeats of calibrate-then-measure on this rank (module docstring).

    ``pg`` is the rank's process group (``None`` for one rank)."""
    from sparkgrad.benchmark.strategies import one_blas_thread

    def sync() -> None:
        if pg is not None:
            pg.barrier()

    with one_blas_thread():
        step, batches = strategy_step(job)
        loss = step(*batches[0])  # warm-up: allocations, first-touch, buffers
        reference = reference_step()
        reference()  # warm-up
        repeats = []
        for _ in range(int(job["repeats"])):
            record: dict[str, Any] = {}
            sync()
            if rank == 0:
                record["engine"] = measure_engine()
                record["alone"] = median_time(reference, STRAGGLER_TRIALS)
            sync()
            if world > 1:
                record["together"] = []
                for _ in range(STRAGGLER_TRIALS):
                    sync()
                    start = time.perf_counter()
                    reference()
                    record["together"].append(time.perf_counter() - start)
                sync()
                record["comm"] = time_collectives(pg, rank, world, repeats=3)
            sync()
            record["ends"] = [time.perf_counter()]
            for x, y in batches[1:]:
                loss = step(x, y)
                record["ends"].append(time.perf_counter())
            repeats.append(record)
    return {"repeats": repeats, "loss": loss}


def run_threads(job: dict[str, Any], world: int) -> list[dict[str, Any]]:
    """:func:`run_case_on_rank` on ``world`` thread-ranks of this process: every rank's."""
    import sparkgrad.distributed as dist

    def rank_fn(rank: int, n: int) -> dict:
        if n == 1:
            return run_case_on_rank(job, rank, n, None)
        dist.init_process_group("threads", rank=rank, world_size=n)
        try:
            return run_case_on_rank(job, rank, n, dist.state.default_group().pg)
        finally:
            dist.destroy_process_group()

    return dist.spawn(rank_fn, world)


def costs_of_repeat(ranks: list[dict], i: int, transport: str) -> LocalCosts:
    """The costs repeat ``i``'s prediction uses, from every rank's record of it."""
    world = len(ranks)
    mine = [r["repeats"][i] for r in ranks]
    first = mine[0]
    sharing = {}
    if world > 1:
        slowest = [max(trial) for trial in zip(*(m["together"] for m in mine))]
        sharing = {"step": statistics.median(slowest) / first["alone"]}
    return LocalCosts(
        comm=fit_links([m["comm"] for m in mine], world) if world > 1 else {},
        cores=usable_cores(),
        world=world,
        transport=transport,
        sharing=sharing,
        **engine_kwargs(first["engine"]),
    )


def group_walls(ranks: list[dict], i: int) -> list[float]:
    """Repeat ``i``'s steps as the group lives them: step ``k`` runs from the moment the
    last rank ended step ``k - 1`` to the moment the last rank ends step ``k`` (every rank
    waits for the slowest one at the next collective; idle time is in it)."""
    last = [max(ends) for ends in zip(*(r["repeats"][i]["ends"] for r in ranks))]
    return [b - a for a, b in zip(last, last[1:])]


def measured_steps(ranks: list[dict]) -> list[float]:
    """Each repeat's step: the median of its :func:`group_walls`. The median, not the
    mean: now and then a step of this virtual machine takes half as long again as its
    neighbours (the host serves another guest), and the calibration's medians leave
    such moments out too."""
    return [statistics.median(group_walls(ranks, i)) for i in range(len(ranks[0]["repeats"]))]


def run_tcp(job: dict[str, Any], world: int, timeout: float = 300.0) -> list[dict[str, Any]]:
    """:func:`run_case_on_rank` on ``world`` :mod:`.local_worker` processes over loopback
    TCP: every rank's record."""
    import json
    import os
    import tempfile

    from sparkgrad.benchmark.rank_processes import free_port, run_ranks

    with tempfile.TemporaryDirectory(prefix="sg-simulate-") as tmp:
        job_file = os.path.join(tmp, "job.json")
        with open(job_file, "w", encoding="utf-8") as f:
            json.dump(job, f)
        port = str(free_port())
        outs = [os.path.join(tmp, f"rank{r}.json") for r in range(world)]
        args = [
            ["--rank", str(r), "--world-size", str(world), "--port", port]
            + ["--job", job_file, "--out", outs[r]]
            for r in range(world)
        ]
        what = f"the {job['strategy']} validation row"
        run_ranks("sparkgrad.simulate.local_worker", args, what, timeout)
        records = []
        for out in outs:
            with open(out, encoding="utf-8") as f:
                records.append(json.load(f))
        return records
