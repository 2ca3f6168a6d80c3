"""Every strategy on the same model and data: a table and a timeline picture per strategy.

    python -m sparkgrad.benchmark.strategies                    # 4 ranks, docs-sized run
    python -m sparkgrad.benchmark.strategies --quick --out /tmp/strategies
    python -m sparkgrad.benchmark.strategies --model gpt     # the GPT: every strategy and
                                                             # mesh, memory predicted/measured

The ranks are threads of this process (the ``threads`` transport), so every rank's spans
share one clock and line up in the picture. Each strategy trains the MLP
784-256-256-256-10 (four Linear layers: enough for four pipeline stages) from the same
seed on the same global batches of the embedded MNIST for a few steps after one warm-up
step, and reports per rank what :class:`~sparkgrad.parallel.timeline.Timeline` recorded:

- ``compute``: forward + backward + optimizer seconds; ``comm``: collectives nobody
  overlapped; ``idle``: the rest of the step's wall time (the slowest rank's), so the three add
  up to the step: waiting for another rank (the pipeline bubble) and before the first and
  after the last span (``idle_spans_s``: the recorded idle spans alone);
- ``bubble``: the idle fraction measured (mean over ranks), simulated (the schedule replayed
  with each stage's measured forward/backward costs and free communication) and theoretical
  ((p-1)/(m+p-1), equal stages);
- ``sent``: bytes this rank sent; ``pred comm``: what the simulated clock predicts the
  same collectives take on the modelled cluster (``--topology``, default 2x8-h100).

The pictures (``timeline_<strategy>.png``) show the naive model parallel's bubble, GPipe's
ramp-up and ramp-down, and 1F1B's same bubble with fewer live activations.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from typing import Any

import numpy as np

import sparkgrad as sg
import sparkgrad.distributed as dist
from sparkgrad.comms.model.prediction import predicted_seconds
from sparkgrad.dataset import load_mnist
from sparkgrad.engine.model import build_mlp, build_optimizer
from sparkgrad.parallel.memory_plan import measured_step, plan_memory
from sparkgrad.parallel.pipeline.schedules import simulate
from sparkgrad.parallel.registry import make_strategy

HIDDEN = (256, 256, 256)
QUICK_HIDDEN = (32, 32, 32)


def cases(world_size: int, micro_batches: int) -> list[tuple[str, str, int, dict]]:
    """``(label, strategy, world_size, options)`` for every strategy the table shows."""
    w = world_size
    out = [("single", "single", 1, {}), ("data", "data", w, {}), ("model", "model", w, {})]
    for schedule in ("gpipe", "1f1b"):
        opts = {"micro_batches": micro_batches, "schedule": schedule}
        out.append((f"pipeline-{schedule}", "pipeline", w, opts))
    out += [("tensor", "tensor", w, {})]
    out += [(f"zero{k}", f"zero{k}", w, {}) for k in (1, 2, 3)]
    if w % 2 == 0:
        out.append((f"hybrid-dp{w // 2}-tp2", "hybrid", w, {"mesh": f"dp={w // 2},tp=2"}))
    return out


def _batches(steps: int, batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    images, labels = load_mnist("mnist-5k", "train", seed=0)
    return [
        (images[i * batch : (i + 1) * batch], labels[i * batch : (i + 1) * batch])
        for i in range(steps)
    ]


def run_case(
    strategy: str,
    world_size: int,
    options: dict,
    hidden: tuple[int, ...] = HIDDEN,
    batch: int = 256,
    steps: int = 4,
    optimizer: str = "adam",
    topology: str = "2x8-h100",
) -> dict[str, Any]:
    """Train ``steps`` timed steps (after one warm-up) on ``world_size`` thread ranks."""
    batches = _batches(steps + 1, batch)
    return run_on_ranks(
        strategy, world_size, options, lambda: build_mlp(hidden, seed=0),
        sg.nn.CrossEntropyLoss(), batches, steps, optimizer, topology,
    )  # fmt: skip


def run_on_ranks(
    strategy: str,
    world_size: int,
    options: dict,
    build_model: Any,
    loss_fn: Any,
    batches: list,
    steps: int,
    optimizer: str = "adam",
    topology: str = "2x8-h100",
    memory_job: Any = None,
) -> dict[str, Any]:
    """One warm-up step, ``steps`` timed steps and one step for the picture, on thread ranks.

    ``memory_job`` (a :class:`~sparkgrad.parallel.memory_plan.MemoryJob`): the warm-up step
    also measures each rank's memory, next to its plan (the row's ``memory_plans``).
    """

    def rank_fn(rank: int, world: int) -> dict:
        if strategy != "single":
            dist.init_process_group("threads", rank=rank, world_size=world)
        try:
            s = make_strategy(
                strategy,
                build_model(),
                lambda p: build_optimizer(optimizer, p, 1e-3),
                loss_fn,
                **options,
            )
            d, r = s.data_parallel_size, s.data_parallel_rank
            per = len(batches[0][0]) // d

            def mine(x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
                return sg.tensor(x[r * per : (r + 1) * per]), sg.tensor(y[r * per : (r + 1) * per])

            def step(x: np.ndarray, y: np.ndarray) -> float:
                return s.train_step(*mine(x, y))

            plan = None
            if memory_job is None:
                step(*batches[0])  # warm-up: allocations, first-touch, buffers
            else:  # the warm-up step, measured: each rank's plan next to its live bytes
                _, measured = measured_step(s, *mine(*batches[0]))
                plan = plan_memory(strategy, memory_job, rank).with_measured(measured).as_dict()
            pg = dist.state.default_group().pg if strategy != "single" else None
            if pg is not None:
                dist.barrier()
                pg.reset_history()
            s.timeline.reset()
            start = time.perf_counter()
            losses = [step(x, y) for x, y in batches[1:]]
            seconds = time.perf_counter() - start
            report, timeline = s.report(), s.timeline.as_dict()
            calls = pg.calls() if pg is not None else []  # the timed steps' collectives
            if pg is not None:
                dist.barrier()
            s.timeline.reset()  # one more step, alone, for the picture
            step(*batches[-1])
            return {
                "report": report,
                "timeline": timeline,
                "picture": s.timeline.as_dict(),
                "step_s": seconds / steps,
                "predicted_comm_s": predicted_seconds(calls, topology) / steps,
                "loss": losses[-1],
                "memory_plan": plan,
            }
        finally:
            if strategy != "single":
                dist.destroy_process_group()

    with one_blas_thread():
        ranks = dist.spawn(rank_fn, world_size)
    row = _summarise(strategy, world_size, options, ranks, steps)
    if memory_job is not None:
        row["memory_plans"] = [r["memory_plan"] for r in ranks]
    return row


def _summarise(strategy: str, world: int, options: dict, ranks: list, steps: int) -> dict:
    per_rank = [r["report"] for r in ranks]
    step_s = max(r["step_s"] for r in ranks)

    def mean(key: str) -> float:
        return statistics.fmean(float(p.get(key, 0.0)) for p in per_rank) / steps

    row = {
        "strategy": strategy,
        "world_size": world,
        "options": options,
        "step_s": step_s,
        "compute_s": mean("compute_s"),
        "comm_s": mean("comm_s"),
        # -- issue 21: the split adds up to the step. A rank's step lasts from the first rank's
        # start to the slowest rank's end (the next step waits for it), so what its spans do
        # not cover -- the bubble, and the wait before its first and after its last span -- is
        # idle; "idle_spans_s" keeps the idle spans alone, as recorded.
        "idle_s": statistics.fmean(
            max(0.0, step_s - (float(p.get("compute_s", 0)) + float(p.get("comm_s", 0))) / steps)
            for p in per_rank
        ),
        "idle_spans_s": mean("idle_s"),
        "bytes_sent": int(statistics.fmean(p.get("bytes_sent", 0) for p in per_rank) / steps),
        "predicted_s": max(r["predicted_comm_s"] for r in ranks),
        "loss": ranks[0]["loss"],
        "timelines": [r["picture"] for r in ranks],
        "ranks": per_rank,
    }
    if "bubble_theoretical" in per_rank[0]:
        row["bubble_theoretical"] = per_rank[0]["bubble_theoretical"]
        row["bubble_measured"] = statistics.fmean(float(p["bubble_measured"]) for p in per_rank)
        row["peak_live_activations"] = [p.get("peak_live_activations") for p in per_rank]
        row["bubble_simulated"] = simulated_bubble(per_rank, [r["timeline"] for r in ranks])
    if "memory" in per_rank[0]:
        row["memory"] = per_rank[0]["memory"]
    return row


def simulated_bubble(reports: list[dict], timelines: list[dict]) -> float:
    """The bubble these stages' *measured* forward/backward costs leave with free comms.

    Theory assumes equal stages; ours are not (the 784x256 layer is a stage of its own).
    :func:`~sparkgrad.parallel.pipeline.schedules.simulate` replays the schedule with each
    stage's mean forward and backward time per micro-batch (over the ranks of the stage,
    when a mesh has several): what is left between this and the measured bubble is
    communication and the ranks sharing the machine's cores.
    """
    m = int(reports[0].get("micro_batches", 1))
    schedule = reports[0].get("schedule", "gpipe")
    stage_of = {int(r.get("rank", i)): int(r.get("stage", i)) for i, r in enumerate(reports)}
    per_stage: dict[int, dict[str, list[float]]] = {}
    for tl in sorted(timelines, key=lambda t: t["rank"]):
        costs = per_stage.setdefault(stage_of[tl["rank"]], {"forward": [], "backward": []})
        for kind in costs:
            spans = [d for k, _, d, _ in tl["spans"] if k == kind]
            costs[kind].append(sum(spans) / max(len(spans), 1))
    stages = [per_stage[s] for s in sorted(per_stage)]
    forward = [statistics.fmean(c["forward"]) for c in stages]
    backward = [statistics.fmean(c["backward"]) for c in stages]
    return simulate(schedule, len(stages), m, forward, backward)


def one_blas_thread() -> Any:
    """Ranks are threads here: one BLAS thread each, or they fight over the cores.

    Use as ``with one_blas_thread(): ...`` (the old limits come back at the end).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without it, set OPENBLAS_NUM_THREADS=1 before starting Python
        return contextlib.nullcontext()
    return threadpool_limits(1)


def run_strategies(
    quick: bool = False, world_size: int = 4, steps: int | None = None, micro_batches: int = 8
) -> list[dict]:
    """One row per case of :func:`cases` (``quick``: small model, 2 ranks, 2 steps)."""
    if quick:
        world_size, micro_batches = 2, 4
    hidden = QUICK_HIDDEN if quick else HIDDEN
    steps = steps or (2 if quick else 4)
    batch = 64 if quick else 256
    rows = []
    for label, name, world, options in cases(world_size, micro_batches):
        row = run_case(name, world, options, hidden, batch, steps)
        row["label"] = label
        rows.append(row)
    return rows


def bubble_cell(r: dict) -> str:
    """``measured/simulated/theoretical`` bubble of a pipelined row ('' for the others)."""
    if "bubble_theoretical" not in r:
        return ""
    simulated = r.get("bubble_simulated", float("nan"))
    return f"{r['bubble_measured']:.2f}/{simulated:.2f}/{r['bubble_theoretical']:.2f}"


def format_table(rows: list[dict]) -> str:
    """The per-strategy table: milliseconds per step, averaged over ranks."""
    head = (
        f"{'strategy':<20} {'ranks':>5} {'step ms':>8} {'compute':>8} {'comm':>8} {'idle':>8} "
        f"{'bubble m/s/t':>16} {'sent KiB':>9} {'pred comm ms':>12}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        bubble = bubble_cell(r)
        lines.append(
            f"{r.get('label', r['strategy']):<20} {r['world_size']:>5} {r['step_s'] * 1e3:>8.2f} "
            f"{r['compute_s'] * 1e3:>8.2f} {r['comm_s'] * 1e3:>8.2f} {r['idle_s'] * 1e3:>8.2f} "
            f"{bubble:>16} {r['bytes_sent'] / 1024:>9.1f} {r['predicted_s'] * 1e3:>12.4f}"
        )
    lines.append(
        "bubble m/s/t = measured idle fraction (mean over ranks) / simulated with the measured "
        "stage costs and free communication / theoretical (p-1)/(m+p-1), equal stages"
    )
    return "\n".join(lines)


def write_outputs(rows: list[dict], out: str, table: str | None = None) -> list[str]:
    """``strategies.json``, ``strategies.txt`` (``table``, default the MLP table) and one
    ``timeline_<label>.png`` per row."""
    from sparkgrad.benchmark.report.files import write_text
    from sparkgrad.benchmark.report.plots import save
    from sparkgrad.parallel.timeline_plot import plot_timelines

    os.makedirs(out, exist_ok=True)
    written = []
    for r in rows:
        fig = plot_timelines(r["timelines"], f"{r['label']}: {r['world_size']} ranks, one step")
        written.append(save(fig, os.path.join(out, f"timeline_{r['label']}.png")))
    slim = [{k: v for k, v in r.items() if k != "timelines"} for r in rows]
    table = format_table(rows) if table is None else table
    written.append(write_text(os.path.join(out, "strategies.txt"), table + "\n"))
    text = json.dumps(slim, indent=2, default=float)
    written.append(write_text(os.path.join(out, "strategies.json"), text))
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world-size", type=int, default=4, help="ranks per strategy (default 4)")
    p.add_argument("--micro-batches", type=int, default=8, help="pipeline micro-batches")
    p.add_argument("--steps", type=int, default=None, help="timed steps per strategy")
    p.add_argument(
        "--model",
        choices=("mlp", "gpt"),
        default="mlp",
        help="mlp: the MLP table (default); gpt: every strategy and mesh on a small GPT, with "
        "memory per rank predicted and measured and modelled H100 steps (strategies_gpt.py)",
    )
    p.add_argument(
        "--quick", action="store_true", help="tiny model (mlp: 2 ranks, gpt: 4) (tests, CI)"
    )
    p.add_argument("--out", default=None, help="write table, JSON and timeline PNGs here")
    args = p.parse_args(argv)
    if args.model == "gpt":
        from sparkgrad.benchmark.strategies_gpt import format_gpt_table, run_gpt

        rows = run_gpt(args.quick, args.world_size, args.steps, args.micro_batches)
        table = format_gpt_table(rows)
    else:
        rows = run_strategies(args.quick, args.world_size, args.steps, args.micro_batches)
        table = format_table(rows)
    print(table)
    if args.out:
        for path in write_outputs(rows, args.out, table):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
