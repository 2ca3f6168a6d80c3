"""``python -m sparkgrad.benchmark report``: every comparison in one go, into one folder.

    python -m sparkgrad.benchmark report --device cpu --out docs/benchmarks/cpu
    python -m sparkgrad.benchmark report --device cuda --out docs/benchmarks/cuda
    python -m sparkgrad.benchmark report --quick --skip-spark --out /tmp/r   # seconds, CI

The folder receives ``report.md`` (summary with verdicts, then sections 1–6),
``results.json`` (every number of the report) and the PNG figures. Each file is written
under a temporary name and renamed into place, so an interrupted run never leaves a
half-written report. Progress lines go to stderr.

``--data DIR`` (repeatable) adds a training-to-accuracy comparison on that dataset (a
directory with the four IDX files of full MNIST or Fashion-MNIST, or any ``--data``
source) next to the embedded MNIST. ``--skip-spark`` leaves out Spark against DDP (it
needs Java and takes a minute even in ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import asdict
from typing import Any

from sparkgrad.benchmark.report.files import write_text
from sparkgrad.errors import SparkgradError


def _json_safe(value: Any) -> Any:
    """NaN and infinity become ``null`` (strict JSON has no NaN); tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _slug(data: str) -> str:
    name = os.path.basename(os.path.normpath(data)) or data
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def training_dict(t: Any) -> dict:
    """A :class:`TrainingComparison` as plain data, with its per-epoch times and ratio."""
    engines = ("sparkgrad", "pytorch")
    out = asdict(t) | {"epoch_s": {e: t.epoch_seconds(e) for e in engines}, "ratio": t.ratio}
    out["final_accuracy"] = {e: t.final(e, "test_accuracy") for e in engines}
    return out


def build_report(args: argparse.Namespace) -> dict[str, str]:
    """Run every section, write the files; return ``role -> path`` of what was written."""
    from sparkgrad.benchmark.report import markdown, plots
    from sparkgrad.benchmark.report.comparator import PerformanceComparator

    cmp = PerformanceComparator(args.device, quick=args.quick, threads=args.threads)
    os.makedirs(args.out, exist_ok=True)
    results: dict[str, Any] = {"quick": args.quick, "environment": cmp.environment()}
    results["step_times"] = cmp.step_times()
    results["training"] = [
        training_dict(cmp.train_to_accuracy(d)) for d in [cmp.sizes.train_data, *args.data]
    ]
    results["memory"] = cmp.memory()
    results["collectives"] = cmp.collectives()
    results["distributed"] = cmp.distributed(skip_spark=args.skip_spark)
    results["scaling"] = cmp.scaling(results["step_times"], results["distributed"])
    results["async_modes"] = cmp.async_modes()

    def out(name: str) -> str:
        return os.path.join(args.out, name)

    figures = {
        "step_times": "step_times.png",
        "memory": "memory.png",
        "busbw": "collectives_busbw.png",
        "scaling": "scaling.png",
        "training": {t["data"]: f"training_{_slug(t['data'])}.png" for t in results["training"]},
    }
    written = {
        "step_times": plots.plot_step_times(results["step_times"], out(figures["step_times"])),
        "memory": plots.plot_memory(results["memory"], out(figures["memory"])),
        "busbw": plots.plot_busbw(results["collectives"], out(figures["busbw"])),
        "scaling": plots.plot_scaling(results["scaling"], out(figures["scaling"])),
    }
    for t in results["training"]:
        name = figures["training"][t["data"]]
        written[f"training:{t['data']}"] = plots.plot_training(t, out(name))
    strat = results["distributed"]["strategies"]
    if strat.get("available") and strat["rows"]:
        figures["strategies"] = "strategies.png"
        written["strategies"] = plots.plot_strategies(strat["rows"], out("strategies.png"))
    written["results"] = write_text(
        out("results.json"), json.dumps(_json_safe(results), indent=2) + "\n"
    )
    written["report"] = write_text(out("report.md"), markdown.render(results, figures))
    return written


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m sparkgrad.benchmark report", description=__doc__.splitlines()[0]
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--out", required=True, help="folder for report.md, results.json, PNGs")
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="DIR",
        help="also train to accuracy on this dataset (repeatable)",
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes (tests, CI): seconds")
    p.add_argument("--skip-spark", action="store_true", help="leave out Spark vs DDP")
    p.add_argument("--threads", type=int, default=None, help="threads for both engines")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build the report; a user's mistake (no GPU, bad data path) is one line and exit 2."""
    args = parse_args(argv)
    try:
        written = build_report(args)
    except SparkgradError as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    for path in written.values():
        print(f"wrote {path}")
    return 0
