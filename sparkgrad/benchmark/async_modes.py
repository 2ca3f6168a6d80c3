"""``python -m sparkgrad.benchmark.async_modes``: sync vs async vs hogwild vs ssp, side by side.

Every mode trains the same MLP from the same seed on the embedded digits for the same
number of samples (``--epochs`` passes over the training split, shared by the workers),
through the same parameter server on this machine (:func:`~sparkgrad.engine.async_launch.run_local`,
workers as threads or processes, real sockets on loopback). Per mode and worker count it
reports:

- ``accuracy``: test accuracy of the server's final weights;
- ``wall_s``: the server's active time (first worker connected to last push), and
  ``pushes/s``, the server's throughput;
- ``max_gap``: the largest clock gap a push arrived with (ssp bounds it by ``S``);
- ``version lag``: the staleness histogram, ``lag:count`` (updates applied between a
  worker's pull and its push; 0 for sync by construction).

``sync`` here is the server's bulk-synchronous mode (one averaged step per clock, the
same maths as DDP), so all four columns pay the same protocol costs. Honest reading: on
a 2-core machine with threads, workers share one interpreter, so async speed-ups are
small and staleness comes as much from scheduling as from speed differences.

    python -m sparkgrad.benchmark.async_modes --workers 2 4 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sparkgrad.engine.async_launch import run_local
from sparkgrad.engine.config import RunConfig

MODES = (("sync", None), ("async", None), ("hogwild", None), ("ssp", 2))
HEADER = (
    f"{'mode':<10}{'workers':>8}{'samples':>9}{'accuracy':>10}{'wall_s':>8}{'pushes':>8}"
    f"{'pushes/s':>10}{'max_gap':>8}  version lag (lag:count)"
)


def histogram_text(hist: dict, keep: int = 6) -> str:
    """``0:117 1:7 ...`` of the ``keep`` smallest lags, then ``+N more``."""
    items = sorted((int(k), v) for k, v in hist.items())
    text = " ".join(f"{k}:{v}" for k, v in items[:keep])
    return text + (f" +{len(items) - keep} more" if len(items) > keep else "")


def measure(
    mode: str,
    staleness: int | None,
    workers: int,
    *,
    epochs: int = 1,
    hidden: tuple[int, ...] = (64,),
    batch_size: int = 64,
    lr: float = 0.05,
    backend: str = "threads",
    snapshot_every: int = 0,
) -> dict[str, Any]:
    """One run of ``mode`` with ``workers`` workers; the row of the table (and curve)."""
    config = RunConfig(
        mode=mode,
        staleness=staleness,
        world_size=workers,
        epochs=epochs,
        hidden=hidden,
        batch_size=batch_size,
        lr=lr,
        momentum=0.9,
        progress=False,
    )
    run = run_local(config, backend, timeout=60, snapshot_every=snapshot_every)
    stats = run.stats
    label = f"ssp(S={staleness})" if mode == "ssp" else mode
    return {
        "mode": label,
        "workers": workers,
        "samples": stats["pushes"] * config.per_rank_batch,
        "accuracy": run.accuracy(),
        "wall_s": stats["seconds"],
        "pushes": stats["pushes"],
        "pushes_per_s": stats["pushes_per_s"],
        "max_clock_gap": stats["max_clock_gap"],
        "version_lag": stats["version_lag"],
        "clock_gap": stats["clock_gap"],
        "lost": stats["lost"],
        "curve": run.curve() if snapshot_every else [],
    }


def row_text(r: dict) -> str:
    return (
        f"{r['mode']:<10}{r['workers']:>8}{r['samples']:>9}{r['accuracy']:>10.4f}"
        f"{r['wall_s']:>8.2f}{r['pushes']:>8}{r['pushes_per_s']:>10.0f}{r['max_clock_gap']:>8}"
        f"  {histogram_text(r['version_lag'])}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparkgrad.benchmark.async_modes")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--hidden", default="64", help="MLP hidden widths, e.g. 256,256")
    parser.add_argument("--backend", choices=("threads", "processes"), default="threads")
    parser.add_argument("--json", metavar="PATH", help="also write every row as JSON here")
    args = parser.parse_args(argv)
    hidden = tuple(int(w) for w in args.hidden.split(","))
    try:  # thread workers share the cores: one BLAS thread each, or they oversubscribe
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with the extras
        pass
    print(HEADER)
    rows = []
    for workers in args.workers:
        for mode, staleness in MODES:
            row = measure(
                mode, staleness, workers, epochs=args.epochs, hidden=hidden, backend=args.backend
            )
            rows.append(row)
            print(row_text(row), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2, default=str)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
