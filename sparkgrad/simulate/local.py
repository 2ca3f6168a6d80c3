"""Predicted vs measured on *this* machine: every strategy's MLP step on thread-ranks.

``python -m sparkgrad.simulate --validate-local`` (or :func:`validate_local`) does three
things; the whole run takes about a minute:

1. **Calibrates** (:func:`~sparkgrad.simulate.local_calibrate.calibrate_local`): the ``cpu``
   device (a timed matmul, a timed copy), sparkgrad's per-op Python overhead (each op's
   forward + backward at 1 element) and the ``threads`` transport's links.
2. **Predicts** (:func:`predict_local`): :mod:`.mlp` lists the strategy's ops; each costs
   ``overhead[kind] x calls + max(FLOPs / peak, bytes / bandwidth)``, each collective its
   calibrated link's time, and :mod:`.schedule` lays them out on the lanes.
   **The shared-core model** (thread-ranks share ``cores`` cores and one GIL), stated
   simply: if ``k`` ranks compute at the same moment (:func:`concurrent_ranks`: all of
   them, but one for naive model parallelism) and ``k > cores``, every compute segment
   takes ``k / cores`` times as long (``shared``); and since only one thread runs Python
   at a time, the step is at least every rank's Python overhead one after another plus
   the communication the schedule leaves exposed (the *GIL floor*). The prediction is the
   larger of the two. Collectives were calibrated with all ranks taking part, so they
   price their own sharing.
3. **Measures** with :func:`sparkgrad.benchmark.strategies.run_case` (the wall time of the
   timed steps, the slowest rank's, idle included) ``repeats`` times and keeps the median.
"""

from __future__ import annotations

import statistics

from sparkgrad.simulate.local_calibrate import LocalCosts, calibrate_local
from sparkgrad.simulate.mlp import MLPShape, mlp_plan
from sparkgrad.simulate.schedule import run_step

__all__ = ["CASES", "LocalCosts", "calibrate_local", "predict_local", "validate_local"]

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
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "send")


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
    """Seconds of one step: alone, shared (stretched), the GIL floor, and the prediction."""
    sched = options.get("schedule", "gpipe")
    stretch = max(1.0, concurrent_ranks(strategy, world, m) / costs.cores)

    def plan(part: str, factor: float = 1.0):
        return mlp_plan(
            strategy,
            shape,
            world,
            lambda ops: factor * costs.compute(ops, part),
            costs.comm_seconds,
            m,
            sched,
        )

    alone, _ = run_step(plan("all")[0])
    shared_plan, busy = plan("all", stretch)
    shared, _ = run_step(shared_plan)
    _, py = plan("python")
    ranks_per_stage = world if len(busy) == 1 else 1
    exposed = max(0.0, shared - busy[0]) if len(busy) == 1 else 0.0
    gil = ranks_per_stage * sum(py) + exposed
    return {
        "alone_s": alone,
        "shared_s": shared,
        "gil_floor_s": gil,
        "stretch": stretch,
        "predicted_s": max(shared, gil),
    }


def measure(
    strategy: str, world: int, options: dict, shape: MLPShape, repeats: int, steps: int, m: int
) -> list[float]:
    """The strategies benchmark's step time (seconds), ``repeats`` times."""
    from sparkgrad.benchmark.strategies import run_case

    opts = dict(options)
    if strategy == "pipeline":
        opts["micro_batches"] = m
    return [
        run_case(strategy, world, opts, shape.hidden, shape.batch, steps)["step_s"]
        for _ in range(repeats)
    ]


def validate_local(
    hidden: tuple[int, ...] = (256, 256, 256),
    batch: int = 256,
    world: int = 4,
    repeats: int = 3,
    steps: int = 4,
    micro_batches: int = 8,
    labels: tuple | None = None,
) -> list[dict]:
    """One row per strategy: predicted, measured (median and runs), error; the last row is
    ``{"costs": LocalCosts}``, the calibration the predictions used."""
    costs = calibrate_local(world)
    shape = MLPShape(tuple(hidden), batch)
    rows = []
    for label, strategy, options in CASES:
        if labels and label not in labels:
            continue
        w = 1 if strategy == "single" else world
        pred = predict_local(costs, strategy, shape, w, options, micro_batches)
        runs = measure(strategy, w, options, shape, repeats, steps, micro_batches)
        measured = statistics.median(runs)
        rows.append(
            {
                "label": label,
                "ranks": w,
                **pred,
                "measured_s": measured,
                "runs_s": runs,
                "error": pred["predicted_s"] / measured - 1.0,
            }
        )
    rows.append({"costs": costs})
    return rows


def markdown(rows: list[dict]) -> str:
    """The table of docs/simulator.md's "On this machine" section."""
    costs = rows[-1]["costs"]
    o = costs.overhead
    out = [
        f"cpu: {costs.device.peak('fp32') / 1e9:.0f} GFLOP/s fp32 matmul, "
        f"{costs.device.memory_bandwidth / 1e9:.1f} GB/s copy; engine overhead per op "
        f"(forward + backward at 1 element): Linear {o['linear'] * 1e6:.0f} us, ReLU "
        f"{o['relu'] * 1e6:.0f} us, cross-entropy + backward() {o['loss'] * 1e6:.0f} us, "
        f"Adam per tensor {o['adam'] * 1e6:.0f} us, rest of a train step "
        f"{o['step'] * 1e6:.0f} us; {costs.cores} cores, one GIL",
        "",
        "| strategy | ranks | alone ms | shared (x stretch) ms | GIL floor ms | predicted ms | "
        "measured ms (median; range) | error |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows[:-1]:
        lo, hi = min(r["runs_s"]) * 1e3, max(r["runs_s"]) * 1e3
        verdict = "" if abs(r["error"]) <= 0.15 else " **MISS**"
        out.append(
            f"| {r['label']} | {r['ranks']} | {r['alone_s'] * 1e3:.2f} | "
            f"{r['shared_s'] * 1e3:.2f} (x{r['stretch']:.0f}) | {r['gil_floor_s'] * 1e3:.2f} | "
            f"{r['predicted_s'] * 1e3:.2f} | {r['measured_s'] * 1e3:.2f} ({lo:.1f}-{hi:.1f}) | "
            f"{r['error'] * 100:+.0f}%{verdict} |"
        )
    return "\n".join(out)
