"""Data parallelism on Spark: sparkgrad DataParallel against PyTorch DDP, same job, same Spark.

    python -m sparkgrad.benchmark.spark_dp                       # mnist-5k, 3 epochs, 2 ranks
    python -m sparkgrad.benchmark.spark_dp --world-sizes 1,2 --epochs 5 --json out.json

Both engines train the MLP 784-256-256-10 from the same initial weights on the same data
with the same global batch (split across the ranks), optimizer, learning rate and epochs,
one Spark barrier task (one core, one thread) per rank, on one local SparkSession
``local[N]``:

- **sparkgrad**: :func:`sparkgrad.engine.run.run` with ``strategy="data"`` — the job behind
  ``main.py``: SparkRunner, DataParallel (bucketed all_reduce over sparkgrad's TCP comms);
- **pytorch-ddp**: pyspark's ``TorchDistributor(num_processes=N, local_mode=False,
  use_gpu=False)`` runs :func:`sparkgrad.benchmark.torch_ddp_job.train_ddp`:
  ``DistributedDataParallel`` over gloo, launched through ``torchrun`` in each task.

What is timed (so both sides measure the same thing):

- ``epoch_s``: seconds of one epoch's training loop on rank 0, measured *inside* the rank
  (forward, backward, gradient all-reduce, optimizer step over the epoch's batches; not
  evaluation, not Spark or process start-up). With more than one epoch it is the median over
  epochs 2..E — epoch 1 is warm-up and excluded; with one epoch it is that epoch.
- ``train_s``: the sum of all epochs' training loops (inside the rank).
- ``wall_s``: end to end on the driver — the Spark job, start-up of the ranks (for PyTorch:
  ``torchrun`` and the ``import torch`` in each), rendezvous, training, evaluation, and
  bringing the result back.

The ratio ``sparkgrad / pytorch`` of ``epoch_s`` is the headline (< 1: sparkgrad faster).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sparkgrad.engine.config import OPTIMIZERS, RunConfig
from sparkgrad.errors import ConfigError, SparkgradError

ENGINES = ("sparkgrad", "pytorch-ddp")


@dataclass
class EngineResult:
    """One engine at one world size."""

    engine: str
    world_size: int
    epoch_s: float  # median in-rank seconds per epoch (epoch 1 excluded when epochs > 1)
    train_s: float  # in-rank seconds of all training loops
    wall_s: float  # driver's end-to-end seconds
    test_accuracy: float
    history: list[dict] = field(default_factory=list)


def epoch_time(history: list[dict]) -> float:
    """Median of ``seconds`` over epochs 2..E, or epoch 1's when there is only one."""
    seconds = [m["seconds"] for m in history]
    if not seconds:
        return math.nan
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def _result(engine: str, world: int, history: list[dict], wall: float) -> EngineResult:
    return EngineResult(
        engine,
        world,
        epoch_time(history),
        float(sum(m["seconds"] for m in history)),
        wall,
        history[-1]["test_accuracy"] if history else math.nan,
        history,
    )


def run_sparkgrad(config: RunConfig) -> EngineResult:
    """sparkgrad DataParallel on the active SparkSession (``run`` reuses it)."""
    from sparkgrad.engine.run import run

    start = time.perf_counter()
    result = run(config)
    return _result("sparkgrad", config.world_size, result.history, time.perf_counter() - start)


def run_torch_ddp(config: RunConfig) -> EngineResult:
    """PyTorch DDP (gloo) through TorchDistributor on the active SparkSession."""
    from pyspark.ml.torch.distributor import TorchDistributor

    from sparkgrad.benchmark.torch_ddp_job import train_ddp

    cfg = {
        k: getattr(config, k)
        for k in ("hidden", "seed", "data", "batch_size", "lr", "optimizer", "momentum", "epochs")
    }
    cfg["hidden"] = list(cfg["hidden"])
    start = time.perf_counter()
    distributor = TorchDistributor(num_processes=config.world_size, local_mode=False, use_gpu=False)
    out = distributor.run(train_ddp, cfg)
    wall = time.perf_counter() - start
    return _result("pytorch-ddp", config.world_size, out["history"], wall)


def spark_session(slots: int) -> tuple[Any, bool]:
    """``(session, made_here)`` on ``local[slots]``.

    An active session on that master is reused (and left running: it is not ours to stop);
    one on another master is stopped first, since a JVM hosts one SparkContext at a time.
    """
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # loopback only
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # one BLAS thread per rank, inherited by the workers
    from pyspark.sql import SparkSession

    from sparkgrad.engine.spark_session import local_session

    master = f"local[{slots}]"
    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master == master:
        return active, False
    if active is not None:
        active.stop()  # one SparkContext per JVM: ours needs its own master
    return local_session(master, app_name="sparkgrad-benchmark-spark-dp"), True


def format_table(results: list[EngineResult], epochs: int) -> str:
    """The report: one row per engine and world size, then the ratios."""
    which = f"median of epochs 2..{epochs}, epoch 1 = warm-up" if epochs > 1 else "epoch 1"
    lines = [
        f"time per epoch = in-rank training loop on rank 0 ({which}); "
        "train = all epochs in-rank; wall = driver end to end",
        f"{'engine':<12} {'world':>5} {'epoch_s':>9} {'train_s':>9} {'wall_s':>9} {'test_acc':>9}",
    ]
    for r in results:
        lines.append(
            f"{r.engine:<12} {r.world_size:>5d} {r.epoch_s:>9.3f} {r.train_s:>9.3f} "
            f"{r.wall_s:>9.2f} {r.test_accuracy:>9.4f}"
        )
    for world, ratio, wall_ratio in ratios(results):
        lines.append(
            f"ratio sparkgrad/pytorch world={world} epoch={ratio:.3f} wall={wall_ratio:.3f}"
        )
    return "\n".join(lines)


def ratios(results: list[EngineResult]) -> list[tuple[int, float, float]]:
    """``(world_size, epoch_s ratio, wall_s ratio)`` of sparkgrad over PyTorch."""
    by_key = {(r.engine, r.world_size): r for r in results}
    out = []
    for world in sorted({r.world_size for r in results}):
        ours, theirs = by_key.get(("sparkgrad", world)), by_key.get(("pytorch-ddp", world))
        if ours and theirs:
            out.append((world, ours.epoch_s / theirs.epoch_s, ours.wall_s / theirs.wall_s))
    return out


def _world_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected sizes like 1,2, found {text!r}")
    return sizes


def _hidden(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected widths like 256,256, found {text!r}") from e


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = RunConfig()
    p = argparse.ArgumentParser(
        prog="python -m sparkgrad.benchmark.spark_dp", description=__doc__.split("\n")[0]
    )
    p.add_argument("--world-sizes", type=_world_sizes, default=[2], help="e.g. 1,2 (default 2)")
    p.add_argument("--epochs", type=int, default=defaults.epochs, help="epochs per run")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="GLOBAL batch")
    p.add_argument("--lr", type=float, default=defaults.lr, help="learning rate")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer)
    p.add_argument("--momentum", type=float, default=defaults.momentum, help="SGD momentum")
    p.add_argument("--hidden", type=_hidden, default=defaults.hidden, help="e.g. 256,256")
    p.add_argument("--data", default=defaults.data, help="mnist-5k | DIR | URI | synthetic:N")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument(
        "--engines", default=",".join(ENGINES), help="which to run (default: both), in order"
    )
    p.add_argument("--json", metavar="PATH", help="also write all results as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[EngineResult]:
    """Run the benchmark, print the table, return the results."""
    args = parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        raise ConfigError(f"--engines must name {' and/or '.join(ENGINES)}, found {unknown}")
    configs = [
        RunConfig(
            strategy="data",
            world_size=world,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            optimizer=args.optimizer,
            momentum=args.momentum,
            hidden=tuple(args.hidden),
            data=args.data,
            seed=args.seed,
            progress=False,
        ).validate()  # a bad argument fails here, before Spark starts
        for world in args.world_sizes
    ]
    spark, made_here = spark_session(max(args.world_sizes))
    results: list[EngineResult] = []
    try:
        for config in configs:
            for engine in engines:
                runner = run_sparkgrad if engine == "sparkgrad" else run_torch_ddp
                results.append(runner(config))
                print(f"finished {engine} world_size={config.world_size}", file=sys.stderr)
    finally:
        if made_here:
            spark.stop()
    print(format_table(results, args.epochs), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "args": {
                        k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
                    },
                    "results": [asdict(r) for r in results],
                    "ratios": [
                        {"world_size": w, "epoch": r, "wall": wr} for w, r, wr in ratios(results)
                    ],
                },
                f,
                indent=2,
            )
    return results


def cli(argv: list[str] | None = None) -> None:
    """``python -m sparkgrad.benchmark.spark_dp``: a user's mistake is one line and exit 2."""
    try:
        main(argv)
    except SparkgradError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    cli()
