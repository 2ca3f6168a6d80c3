"""nccl-tests for sparkgrad: ``python -m sparkgrad.benchmark.collectives``.

Measures all_reduce (float32, SUM) over sparkgrad's TCP transport and over PyTorch's gloo
backend, side by side, for every world size and message size, as real processes on
127.0.0.1, and prints a table shaped like nccl-tests' ``all_reduce_perf``::

    size  count  type  redop  time(us)  algbw(GB/s)  busbw(GB/s)  #wrong  pred(us)  ...

- ``time`` is rank 0's median over ``--iters`` rounds, each timing every size a few times
  (``collective_worker.calls_per_round``: 2 calls of 64 MiB, 8 of 8 MiB or less);
  ``algbw = size / time``;
  ``busbw = algbw * 2(n-1)/n``, the bytes each link really carries per second,
  comparable across world sizes (nccl-tests' PERFORMANCE.md).
- ``#wrong`` counts elements that differ from the exact sum (inputs are small integers).
- ``pred(us)`` is the cost model's prediction on the loopback link *fitted* by
  :func:`sparkgrad.comms.model.calibrate.calibrate` (alpha, beta, gamma, and the turn_*
  terms of ranks sharing cores) on calibration calls at every world size: one extra
  all_reduce per round, timed apart from the table's calls but in the same seconds
  (median per size), and local NumPy reductions; one fit for all world sizes.
  ``err`` = (pred - time) / time, target within 15%.
- ``ratio`` = sparkgrad busbw / gloo busbw (target >= 1.0 for messages >= 1 MiB). Both
  backends run in the same processes and their timed calls alternate, one each in turn
  (``collective_worker --backend both``), so background load hits both alike.

Quick run: ``python -m sparkgrad.benchmark.collectives --max-size 1M --world-sizes 2 --iters 5``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from sparkgrad.autodiff.threads import usable_cores
from sparkgrad.benchmark.collectives_table import MiB, format_report
from sparkgrad.benchmark.rank_processes import free_port, rank_env, run_ranks
from sparkgrad.comms.model import (
    Topology,
    bus_bandwidth_factor,
    predict,
    select_algorithm,
)
from sparkgrad.comms.model.calibrate import CalibrationResult, Measurement, calibrate
from sparkgrad.errors import CommError, ConfigError


def parse_size(text: str) -> int:
    """``"64M"`` -> 67108864; accepts a plain byte count or a K/M/G suffix (powers of 1024)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    try:
        return int(t[:-1]) * units[t[-1]] if t and t[-1] in units else int(t)
    except ValueError:
        raise ConfigError(f"size {text!r}: expected bytes like 8, 64K or 64M") from None


def message_sizes(min_size: int, max_size: int, factor: int = 4) -> list[int]:
    """``min_size, min_size*factor, ...`` up to ``max_size``, which is always included."""
    if not 4 <= min_size <= max_size:
        raise ConfigError(f"expected 4 <= min size <= max size, found {min_size}, {max_size}")
    sizes = [min_size]
    while sizes[-1] * factor <= max_size:
        sizes.append(sizes[-1] * factor)
    return sizes if sizes[-1] == max_size else [*sizes, max_size]


def run_backend(
    backend: str,
    world_size: int,
    sizes: Sequence[int],
    iters: int,
    warmup: int = 2,
    timeout: float = 300.0,
    calibrate_link: bool = False,
    algo: str | None = None,
) -> dict[str, Any]:
    """Start ``world_size`` worker processes on 127.0.0.1 and return rank 0's JSON result."""
    env = rank_env({"NCCL_ALGO": algo} if algo is not None else None)
    with tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp:
        out = os.path.join(tmp, "rank0.json")
        common = ["--backend", backend, "--world-size", str(world_size), "--port"]
        common += [str(free_port()), "--port2", str(free_port())]
        common += ["--sizes", ",".join(map(str, sizes)), "--iters", str(iters)]
        common += ["--warmup", str(warmup), "--timeout", str(min(timeout, 120.0)), "--out", out]
        common += ["--calibrate"] if calibrate_link else []
        ranks = [["--rank", str(rank), *common] for rank in range(world_size)]
        what = f"{backend} benchmark"
        run_ranks("sparkgrad.benchmark.collective_worker", ranks, what, timeout, env)
        if not os.path.exists(out):
            raise CommError(f"{what} with {world_size} ranks wrote no result to {out}")
        with open(out, encoding="utf-8") as f:
            return json.load(f)


def fit_loopback(results: Sequence[dict[str, Any]], algo: str | None) -> CalibrationResult:
    """calibrate() on sparkgrad runs' calibration passes: all_reduce times + local additions.

    One fit over the passes of every world size. Local reductions below 64 KiB are left
    out: there NumPy's fixed call overhead, not the per-byte cost gamma, decides their
    time. The fitted link is shared by the machine's cores (``concurrency``): 4 ranks on
    2 cores each copy bytes at half the speed and wait for their turn on a core (the
    ``turn_*`` terms, fitted only when some world size has more ranks than cores).
    """
    points = []
    for result in results:
        n = result["world_size"]
        points += [
            Measurement.of("all_reduce", algo or _default_algo(n, int(s)), int(s), n, t)
            for s, t in result["calibration"]
        ]
        points += [
            Measurement.local_reduction(int(s), t)
            for s, t in result.get("local_reduction", [])
            if s >= 64 * 1024
        ]
    return calibrate(points, concurrency=usable_cores())  # loopback: cores copy the bytes


def run_benchmark(
    world_sizes: Sequence[int] = (2, 4),
    sizes: Sequence[int] = tuple(message_sizes(8, 64 * MiB)),
    iters: int = 20,
    backends: Sequence[str] = ("sparkgrad", "gloo"),
    algo: str | None = "ring",
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Measure every backend at every world size; return rows ready for :func:`format_report`."""
    report: dict[str, Any] = {"sizes": list(sizes), "algo": algo, "tables": [], "errors": []}
    runs: list[tuple[int, dict[str, dict[str, Any]]]] = []
    together = set(backends) == {"sparkgrad", "gloo"}  # one set of processes, calls in turn
    for n in world_sizes:
        results: dict[str, dict[str, Any]] = {}
        for backend in ["both"] if together else backends:
            wants_fit = backend in ("sparkgrad", "both") and n >= 2
            try:
                out = run_backend(
                    backend, n, sizes, iters, timeout=timeout, calibrate_link=wants_fit, algo=algo
                )
            except (CommError, OSError) as err:
                report["errors"].append(str(err))
                continue
            results.update(out if backend == "both" else {backend: out})
        runs.append((n, results))
    passes = [r["sparkgrad"] for _, r in runs if "calibration" in r.get("sparkgrad", {})]
    calibration = fit_loopback(passes, algo) if passes else None
    for n, results in runs:
        report["tables"].append(_merge(n, sizes, results, calibration, algo))
    if calibration is not None:
        report["calibration"] = {
            "alpha_s": calibration.alpha,
            "beta_Bps": calibration.beta,
            "gamma_s_per_B": calibration.gamma,
            "turn_alpha_s": calibration.turn_alpha,
            "turn_beta_inv_s_per_B": calibration.turn_beta_inv,
            "points": calibration.rows(),
            "text": calibration.report(),
        }
    h100 = Topology.parse("1x8-h100")
    seconds = predict("all_reduce", "ring", 1 << 30, 8, h100)
    report["h100_ring_busbw_GBps"] = (
        (1 << 30) / seconds * bus_bandwidth_factor("all_reduce", 8) / 1e9
    )
    return report


def _default_algo(n: int, nbytes: int) -> str:
    """What the communicator picks on its own (its default loopback topology)."""
    return select_algorithm("all_reduce", nbytes, n, Topology.local(n))


def _merge(
    n: int, sizes: Sequence[int], results: dict, fit: CalibrationResult | None, algo: str | None
) -> dict[str, Any]:
    """One table: per size, each backend's time/algbw/busbw/#wrong, the prediction, the ratio."""
    factor = bus_bandwidth_factor("all_reduce", n)
    rows = []
    for i, _ in enumerate(sizes):
        row: dict[str, Any] = {}
        for backend, result in results.items():
            r = result["rows"][i]
            row.update(nbytes=r["nbytes"], count=r["count"])
            algbw = r["nbytes"] / r["seconds"] / 1e9
            row[backend] = {"time_us": r["seconds"] * 1e6, "algbw": algbw, "busbw": algbw * factor}
            row[backend]["wrong"] = r["wrong"]
        mine = row.get("sparkgrad")
        if mine is not None and fit is not None:
            topo = Topology.local(n, link=fit.link())
            name = algo or _default_algo(n, row["nbytes"])
            mine["pred_us"] = predict("all_reduce", name, row["nbytes"], n, topo) * 1e6
            mine["pred_err"] = (mine["pred_us"] - mine["time_us"]) / mine["time_us"]
        if "sparkgrad" in row and "gloo" in row:
            row["ratio"] = row["sparkgrad"]["busbw"] / row["gloo"]["busbw"]
        if row:
            rows.append(row)
    return {"world_size": n, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    """Command line: see ``python -m sparkgrad.benchmark.collectives --help``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-size", default="8", help="smallest message (default 8)")
    parser.add_argument("--max-size", default="64M", help="largest message (default 64M)")
    parser.add_argument("--world-sizes", default="2,4", help="comma-separated (default 2,4)")
    parser.add_argument("--iters", type=int, default=20, help="rounds over all sizes")
    parser.add_argument("--backends", default="sparkgrad,gloo", help="sparkgrad,gloo")
    parser.add_argument("--algo", default="ring", help="sparkgrad's algorithm, or 'auto'")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--json", dest="json_path", help="also write the results here")
    args = parser.parse_args(argv)
    try:
        sizes = message_sizes(parse_size(args.min_size), parse_size(args.max_size))
        world_sizes = [int(w) for w in args.world_sizes.split(",")]
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
        if not set(backends) <= {"sparkgrad", "gloo"} or not backends:
            raise ConfigError(f"--backends: expected sparkgrad and/or gloo, found {args.backends}")
        if any(not 2 <= w <= 8 for w in world_sizes):
            raise ConfigError(f"--world-sizes: expected values in 2..8, found {args.world_sizes}")
        report = run_benchmark(
            world_sizes,
            sizes,
            max(1, args.iters),
            backends,
            None if args.algo == "auto" else args.algo,
            args.timeout,
        )
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_report(report))
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
