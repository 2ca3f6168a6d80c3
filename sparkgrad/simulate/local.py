"""Predicted vs measured on *this* machine: every strategy's MLP step, on thread-ranks or
on TCP processes.

``python -m sparkgrad.simulate --validate-local [--transport threads|tcp]`` (or
:func:`validate_local`), about a minute. For every row (strategy), ``repeats`` times, on
the very ranks that are measured and in the same seconds (:mod:`.local_case`):

1. **Calibrates**: the ``cpu`` device (a timed matmul, a timed copy), the engine's per-op
   overhead (each op on 32 x 32 arrays) and efficiency (each op kind at a reference shape
   against its roofline, :func:`~.local_calibrate.engine_efficiency`), ``sharing`` (how
   much slower the device's kernels and the engine's reference step run while every rank
   runs them: cores, caches, memory and, for threads, the GIL shared) and the links
   (collectives timed on these ranks, :mod:`.local_links`).
2. **Predicts** (:func:`predict_local`): :mod:`.mlp` lists the strategy's ops; each costs
   ``overhead[kind] x calls + roofline / efficiency[kind]``, stretched by
   ``sharing["step"]`` while more than one rank computes (:func:`concurrent_ranks`); each
   collective costs its fitted link's time; :mod:`.schedule` lays them out on the lanes.
3. **Measures** the strategy's timed steps: each step's wall time for the whole group,
   idle included, and their median (:func:`~.local_case.measured_steps`).

A row's error is the median over its repeats of predicted / measured - 1, each prediction
against the measurement taken right after its own calibration.
"""

from __future__ import annotations

import statistics

from sparkgrad.autodiff.threads import usable_cores
from sparkgrad.errors import ConfigError
from sparkgrad.simulate.local_calibrate import LocalCosts
from sparkgrad.simulate.local_case import costs_of_repeat, measured_steps, run_tcp, run_threads
from sparkgrad.simulate.mlp import MLPShape, mlp_plan
from sparkgrad.simulate.schedule import run_step

__all__ = ["CASES", "LocalCosts", "predict_local", "validate_local"]

CASES = (  # (label, strategy, options): the strategies benchmark's cases, hybrid left out
    ("single", "single", {}),
    ("data", "data", {}),
    ("zero1", "zero1", {}),
    ("zero2", "zero2", {}),
    ("zero3", "zero3", {}),
    ("model", "model", {}),
    ("pipeline-gpipe", "pipeline", {"schedule": "gpipe"}),
    ("pipeline-1f1b", "pipeline", {"schedule": "1f1b"}),
    ("tensor", "tensor", {}),
)


def concurrent_ranks(strategy: str, world: int, micro_batches: int) -> int:
    """Ranks that compute at the same moment: all of them, but for naive model parallelism
    (one rank at a time, by construction) and a pipeline with fewer micro-batches than
    stages (at most ``micro_batches`` stages busy at once)."""
    if strategy in ("single", "model"):
        return 1
    if strategy == "pipeline":
        return min(world, micro_batches)
    return world


def predict_local(
    costs: LocalCosts, strategy: str, shape: MLPShape, world: int, options: dict, m: int = 8
) -> dict[str, float]:
    """Seconds of one step: alone, and shared -- the prediction: the strategy's schedule
    with every compute segment stretched by ``costs.sharing["step"]`` whenever more than
    one rank computes at once (:func:`concurrent_ranks`)."""
    sched = options.get("schedule", "gpipe")
    shared = concurrent_ranks(strategy, world, m) > 1

    def seconds(share: bool) -> float:
        plan, _ = mlp_plan(
            strategy,
            shape,
            world,
            lambda ops: costs.compute(ops, "all", share),
            costs.comm_seconds,
            m,
            sched,
        )
        return run_step(plan)[0]

    alone = seconds(False)
    predicted = seconds(shared)
    return {
        "alone_s": alone,
        "predicted_s": predicted,
        "stretch": predicted / alone,
    }


def validate_local(
    hidden: tuple[int, ...] = (256, 256, 256),
    batch: int = 256,
    world: int | None = None,
    repeats: int = 3,
    steps: int = 12,
    micro_batches: int = 8,
    labels: tuple | None = None,
    transport: str = "threads",
) -> list[dict]:
    """One row per strategy: predicted and measured (medians, and every repeat's), error;
    the last row is ``{"costs": LocalCosts}``, the last calibration. ``transport``:
    ``threads`` (thread-ranks, one process) or ``tcp`` (a process per rank, sockets).
    ``world``: ranks per multi-rank strategy, by default one per usable core (at least
    2), as a cluster runs one rank per GPU."""
    if transport not in ("threads", "tcp"):
        raise ConfigError(f"transport must be 'threads' or 'tcp', found {transport!r}")
    world = max(2, usable_cores()) if world is None else world
    if world < 2:
        raise ConfigError(f"the multi-rank strategies need world >= 2 ranks, found {world}")
    shape = MLPShape(tuple(hidden), batch)
    rows, costs = [], None
    for label, strategy, options in CASES:
        if labels and label not in labels:
            continue
        w = 1 if strategy == "single" else world
        opts = dict(options)
        if strategy == "pipeline":
            opts["micro_batches"] = micro_batches
        job = {"strategy": strategy, "options": opts, "hidden": list(hidden), "batch": batch}
        job.update(steps=steps, repeats=repeats)
        ranks = (run_tcp if transport == "tcp" else run_threads)(job, w)
        measured = measured_steps(ranks)
        predicted, alone = [], []
        for i in range(repeats):
            costs = costs_of_repeat(ranks, i, transport)
            p = predict_local(costs, strategy, shape, w, options, micro_batches)
            predicted.append(p["predicted_s"])
            alone.append(p["alone_s"])
        errors = [p / m - 1.0 for p, m in zip(predicted, measured)]
        rows.append(
            {
                "label": label,
                "ranks": w,
                "alone_s": statistics.median(alone),
                "predicted_s": statistics.median(predicted),
                "stretch": statistics.median(p / a for p, a in zip(predicted, alone)),
                "measured_s": statistics.median(measured),
                "runs_s": measured,
                "predicted_runs_s": predicted,
                "error": statistics.median(errors),
                "errors": errors,
            }
        )
    rows.append({"costs": costs})
    return rows


def _ranks_are(costs: LocalCosts) -> str:
    kind = "thread-ranks of one process" if costs.transport == "threads" else "TCP processes"
    if "step" not in costs.sharing:
        return f"{costs.world} {kind}"
    return (
        f"the slowest of {costs.world} {kind} ran the reference step "
        f"x{costs.sharing['step']:.2f} as long as one alone"
    )


def markdown(rows: list[dict]) -> str:
    """The table of docs/simulator.md's "On this machine" sections."""
    costs = rows[-1]["costs"]
    o = costs.overhead
    e = costs.efficiency
    out = [
        f"cpu: {costs.device.peak('fp32') / 1e9:.0f} GFLOP/s fp32 matmul, "
        f"{costs.device.memory_bandwidth / 1e9:.1f} GB/s copy; engine overhead per op on 32 x "
        f"32 arrays (forward + backward): Linear {(o['linear'] + o['linear_grad']) * 1e6:.0f} us, "
        f"ReLU {(o['relu'] + o['relu_grad']) * 1e6:.0f} us, cross-entropy + backward() "
        f"{o['loss'] * 1e6:.0f} us, Adam per tensor {o['adam'] * 1e6:.0f} us, rest of a "
        f"train step {o['step'] * 1e6:.0f} us; efficiency against the roofline: "
        + ", ".join(f"{k} {v:.2f}" for k, v in e.items())
        + f"; {costs.cores} cores; {_ranks_are(costs)}",
        "",
        "| strategy | ranks | alone ms | predicted ms (x stretch) | "
        "measured ms (median; range) | error (median; range) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows[:-1]:
        lo, hi = min(r["runs_s"]) * 1e3, max(r["runs_s"]) * 1e3
        verdict = "" if abs(r["error"]) <= 0.15 else " **MISS**"
        out.append(
            f"| {r['label']} | {r['ranks']} | {r['alone_s'] * 1e3:.2f} | "
            f"{r['predicted_s'] * 1e3:.2f} (x{r['stretch']:.2f}) | "
            f"{r['measured_s'] * 1e3:.2f} ({lo:.1f}-{hi:.1f}) | "
            f"{r['error'] * 100:+.0f}%{verdict} ({min(r['errors']) * 100:+.0f}.."
            f"{max(r['errors']) * 100:+.0f}%) |"
        )
    return "\n".join(out)
