"""``PerformanceComparator``: every comparison of the report, one method each.

The report (:mod:`sparkgrad.benchmark.report.run`) calls these methods in turn; a notebook
can call any one of them alone::

    from sparkgrad.benchmark.report import PerformanceComparator
    cmp = PerformanceComparator(device="cpu", quick=True)
    rows = cmp.step_times()              # list of dicts, one per model/optimizer/batch
    curves = cmp.train_to_accuracy()     # TrainingComparison (per-epoch curves)

Each method returns plain dataclasses, dicts and lists (ready for ``json.dump``), with
every ratio written as **sparkgrad / PyTorch** of a cost, so below 1 favours sparkgrad.
The measuring itself lives in the benchmark modules next door, reused here: step times in
:mod:`~sparkgrad.benchmark.step`, collectives in :mod:`~sparkgrad.benchmark.collectives`,
Spark against DDP in :mod:`~sparkgrad.benchmark.spark_dp`, strategies in
``sparkgrad.benchmark.strategies``.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import statistics
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

from sparkgrad.autodiff.backend import cuda_is_available, normalize_device
from sparkgrad.benchmark.report.environment import collect_environment, usable_cores
from sparkgrad.benchmark.report.memory import measure
from sparkgrad.benchmark.report.scaling import (
    measured_scaling,
    model_scaling,
    simulated_compute_s,
)
from sparkgrad.benchmark.report.sizes import ReportSizes
from sparkgrad.benchmark.report.training_curves import TrainingComparison, train_both
from sparkgrad.errors import DeviceError


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def check_device(device: str) -> str:
    """``"cpu"`` or ``"cuda"``; cuda without CuPy or a GPU is a one-line :class:`DeviceError`."""
    device = normalize_device(device)
    if device == "cuda" and not cuda_is_available():
        raise DeviceError(
            "--device cuda needs CuPy and an NVIDIA GPU, but CuPy is missing or sees no GPU; "
            "install with pip install 'sparkgrad[gpu]' or run with --device cpu"
        )
    if device == "cuda":
        import torch

        from sparkgrad.benchmark.torch_device import cupy_is_stand_in

        if not torch.cuda.is_available() and not cupy_is_stand_in():
            raise DeviceError("--device cuda: CuPy sees a GPU but PyTorch has no CUDA build")
    return device


def mlp_parameters(hidden: tuple[int, ...]) -> int:
    """Number of weights and biases of the MLP 784 → hidden… → 10."""
    sizes = (784, *hidden, 10)
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


@contextlib.contextmanager
def _pause(seconds: float | None) -> Iterator[None]:
    """Temporarily change step.py's pause between engines (quick mode: none)."""
    from sparkgrad.benchmark import step

    old = step.PAUSE_S
    step.PAUSE_S = old if seconds is None else seconds
    try:
        yield
    finally:
        step.PAUSE_S = old


class PerformanceComparator:
    """Side-by-side measurements of sparkgrad and PyTorch on one device."""

    def __init__(
        self,
        device: str = "cpu",
        quick: bool = False,
        sizes: ReportSizes | None = None,
        threads: int | None = None,
        seed: int = 0,
        progress: Callable[[str], None] | None = _stderr,
    ) -> None:
        self.device = check_device(device)
        self.sizes = sizes or (
            ReportSizes.quick_sizes() if quick else ReportSizes.full(usable_cores())
        )
        self.threads = threads or usable_cores()
        self.seed = seed
        self.progress = progress or (lambda line: None)
        from sparkgrad.benchmark.step import set_threads

        set_threads(self.threads)  # both engines get the same BLAS / intra-op threads

    def environment(self) -> dict[str, Any]:
        """Section 1: machine and versions."""
        return collect_environment(self.device, self.threads)

    def step_times(self) -> list[dict]:
        """Section 2: one row per model × optimizer × batch (median ms, IQR, matmul floor)."""
        from sparkgrad.benchmark.step import run_case

        s, rows = self.sizes, []
        with _pause(s.pause_s):
            for hidden in s.models:
                for opt in s.optimizers:
                    for batch in s.batches:
                        r = run_case(self.device, opt, batch, hidden, s.repeats, s.steps)
                        row = asdict(r) | {"hidden": list(hidden), "ratio": r.ratio}
                        row["overhead_ms"] = r.sparkgrad_ms - r.floor_ms
                        row["overhead_share"] = row["overhead_ms"] / r.sparkgrad_ms
                        rows.append(row)
                        self.progress(
                            f"step {_arch(hidden)} {opt} batch {batch}: sparkgrad "
                            f"{r.sparkgrad_ms:.3f} ms, pytorch {r.torch_ms:.3f} ms"
                        )
        return rows

    def train_to_accuracy(self, data: str | None = None) -> TrainingComparison:
        """Section 3: both engines trained on ``data`` from the same weights and batches."""
        s = self.sizes
        data = data or s.train_data
        return train_both(
            data,
            hidden=s.models[0],
            epochs=s.train_epochs,
            batch=s.train_batch,
            seed=self.seed,
            device=self.device,
            train_limit=s.train_limit,
            test_limit=s.test_limit,
            progress=self.progress,
        )

    def memory(self) -> list[dict]:
        """Section 4: each engine in a fresh process, per model (Adam: the most state)."""
        s, rows = self.sizes, []
        for hidden in s.models:
            pair = {
                engine: measure(
                    engine,
                    hidden,
                    s.memory_batch,
                    "adam",
                    s.memory_steps,
                    self.device,
                    self.threads,
                )
                for engine in ("sparkgrad", "pytorch")
            }
            ours, theirs = pair["sparkgrad"], pair["pytorch"]
            rows.append(
                {
                    "hidden": list(hidden),
                    "batch": s.memory_batch,
                    "sparkgrad": asdict(ours),
                    "pytorch": asdict(theirs),
                    "step_ratio": _ratio(ours.step_mib, theirs.step_mib),
                    "peak_ratio": _ratio(ours.peak_mib, theirs.peak_mib),
                }
            )
            self.progress(
                f"memory {_arch(hidden)}: step {ours.step_mib:.1f} vs {theirs.step_mib:.1f} MiB"
            )
        return rows

    def collectives(self) -> dict[str, Any]:
        """Section 5: the nccl-tests-style all_reduce table, sparkgrad TCP against gloo."""
        from sparkgrad.benchmark.collectives import message_sizes, run_benchmark
        from sparkgrad.benchmark.collectives_table import format_report

        s = self.sizes
        sizes = message_sizes(s.collective_min, s.collective_max, s.collective_factor)
        report = run_benchmark(s.collective_world_sizes, sizes, s.collective_iters)
        report["text"] = format_report(report)
        self.progress(f"collectives: {len(report['tables'])} tables, errors {report['errors']}")
        return report

    def spark_vs_ddp(self) -> dict[str, Any]:
        """Section 6a: sparkgrad DataParallel on Spark against PyTorch DDP (TorchDistributor)."""
        from sparkgrad.benchmark import spark_dp

        s = self.sizes
        argv = ["--world-sizes", ",".join(map(str, s.spark_world_sizes))]
        argv += ["--epochs", str(s.spark_epochs), "--data", s.spark_data]
        argv += ["--hidden", ",".join(map(str, s.spark_hidden)), "--seed", str(self.seed)]
        with contextlib.redirect_stdout(sys.stderr):  # its table goes with the progress lines
            results = spark_dp.main(argv)
        rows = [asdict(r) for r in results]
        for row in rows:
            sps = [m["samples_per_second"] for m in row["history"]]
            per_rank = statistics.median(sps[1:] if len(sps) > 1 else sps)
            row["throughput"] = per_rank * row["world_size"]  # rank 0's samples/s × ranks
        ratios = [
            {"world_size": w, "epoch": r, "wall": wr} for w, r, wr in spark_dp.ratios(results)
        ]
        return {"epochs": s.spark_epochs, "data": s.spark_data, "results": rows, "ratios": ratios}

    def strategies(self) -> dict[str, Any]:
        """Section 6b: each strategy's compute / communication / bubble split, if available."""
        try:
            module = importlib.import_module("sparkgrad.benchmark.strategies")
        except ImportError as err:
            return {
                "available": False,
                "note": f"strategy split: not available (sparkgrad.benchmark.strategies "
                f"missing: {err})",
                "rows": [],
            }
        try:
            rows = module.run_strategies(quick=self.sizes.quick)
        except Exception as err:  # another engineer's module: report, do not crash the report
            note = f"strategy split: failed ({type(err).__name__}: {str(err).splitlines()[0]})"
            return {"available": False, "note": note, "rows": []}
        keep = (
            "strategy",
            "label",
            "world_size",
            "step_s",
            "compute_s",
            "comm_s",
            "idle_s",
            "bytes_sent",
            "predicted_s",
        )
        return {
            "available": True,
            "note": "",
            "rows": [{k: r[k] for k in keep if k in r} for r in rows],
        }

    def async_modes(self) -> list[dict[str, Any]]:
        """Section 7: sync, async, hogwild and ssp through one parameter server (threads)."""
        from sparkgrad.benchmark.async_modes import MODES, measure

        workers = (2,) if self.sizes.quick else (2, 4)
        rows = [measure(m, s, w, epochs=1) for w in workers for m, s in MODES]
        return [{k: v for k, v in r.items() if k != "curve"} for r in rows]

    def distributed(self, skip_spark: bool = False) -> dict[str, Any]:
        """Section 6: Spark against DDP (unless ``skip_spark``) and the strategy split."""
        out: dict[str, Any] = {"spark": None, "spark_note": "skipped (--skip-spark)"}
        if not skip_spark:
            try:
                out["spark"], out["spark_note"] = self.spark_vs_ddp(), ""
            except Exception as err:  # Spark or Java missing: the rest of the report stands
                out["spark_note"] = f"failed: {type(err).__name__}: {str(err).splitlines()[0]}"
        out["strategies"] = self.strategies()
        return out

    def scaling(self, step_rows: list[dict], distributed: dict | None = None) -> dict[str, Any]:
        """Section 6c: modelled throughput up to 64 GPUs, plus the measured Spark points."""
        s = self.sizes
        hidden = s.models[0]
        # issue 21: the compute is sparkgrad.simulate's MLP step on a modelled H100, not this
        # machine's CPU step (which made 64 GPUs look ~99% efficient)
        batch = s.scaling_batch
        compute_s = simulated_compute_s(hidden, batch, "h100")
        grad_bytes = mlp_parameters(hidden) * 4  # float32 gradients
        modelled = [
            p.as_dict()
            for topo in s.scaling_topologies
            for p in model_scaling(compute_s, grad_bytes, batch, topo, s.scaling_worlds)
        ]
        spark = (distributed or {}).get("spark") or {}
        runs = [
            {
                "engine": r["engine"],
                "world_size": r["world_size"],
                "throughput": r["throughput"],
                "step_s": r["epoch_s"],
            }
            for r in spark.get("results", [])
        ]
        measured = [p.as_dict() for p in measured_scaling(runs)]
        return {
            "hidden": list(hidden),
            "batch_per_rank": batch,
            "compute_s": compute_s,
            "compute_device": "h100 (modelled by sparkgrad.simulate)",
            "grad_bytes": grad_bytes,
            "model": modelled,
            "measured": measured,
        }


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def _arch(hidden: tuple[int, ...] | list[int]) -> str:
    return "784-" + "-".join(map(str, hidden)) + "-10"
