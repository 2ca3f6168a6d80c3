"""``run(config)``: the whole job behind ``main.py`` — launch, train, export, report.

``single`` trains in this process. Every other strategy starts (or reuses) a SparkSession
and lets :class:`~sparkgrad.engine.spark_runner.SparkRunner` run
:func:`~sparkgrad.engine.job.train_rank` on ``world_size`` barrier tasks; the ranks' log
lines stream to the driver, where a progress bar follows rank 0's steps. At the end every
rank's time split (compute, communication, idle) is printed, one line per rank, and its
memory, predicted and measured (:mod:`~sparkgrad.engine.memory`).

Before anything starts, :func:`~sparkgrad.engine.preflight.preflight` checks on the driver
what every task would otherwise find on its own: both data splits (headers, first rows,
sizes), the paths the run will write, and a ``--resume``'s checkpoint settings.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field

from sparkgrad.dataset.sources import is_uri
from sparkgrad.engine.config import RunConfig
from sparkgrad.engine.job import PROGRESS_TAG, train_rank
from sparkgrad.engine.memory import memory_lines
from sparkgrad.engine.model import MODELS
from sparkgrad.engine.preflight import check_device, preflight
from sparkgrad.engine.tasks import DIGITS, TEXT
from sparkgrad.errors import CheckpointError

_PROGRESS = re.compile(rf"{PROGRESS_TAG} step=(\d+) total=(\d+) loss=([-+0-9.eEnaif]+)")


@dataclass
class RunResult:
    """What a run measured; ``to_dict()`` is what ``--metrics-out`` writes."""

    config: RunConfig
    history: list[dict]
    wall_seconds: float
    comms: dict
    export_path: str | None = None
    attempt: int = 0  # how often Spark reran the stage before it succeeded
    resumed_from: int | None = None  # the checkpoint step the last attempt started from
    state_dict: dict = field(default_factory=dict, repr=False)
    ranks: list[dict] = field(default_factory=list)  # per-rank time split, see job.py

    vocab: str = ""  # a language model's characters, in id order
    precision: dict = field(default_factory=dict)  # --precision, final loss scale, skipped
    # issue 20: the parameter server's statistics (pushes, staleness histograms, lost workers)
    parameter_server: dict | None = None

    @property
    def test_accuracy(self) -> float:
        return self.history[-1]["test_accuracy"] if self.history else float("nan")

    @property
    def score(self) -> float:
        """The last epoch's value of the task's metric (accuracy, perplexity, exact match)."""
        metric = MODELS[self.config.model].task.metric
        return self.history[-1].get(metric, float("nan")) if self.history else float("nan")

    def summary_line(self) -> str:
        c = self.config
        task = MODELS[c.model].task
        return (
            f"done: strategy={c.strategy} world_size={c.world_size} epochs={c.epochs} "
            f"model={c.model} {task.metric}={task.format(self.score)} "
            f"wall={self.wall_seconds:.1f}s "
            f"comm_measured={self.comms['measured_s']:.3f}s "
            f"comm_predicted[{c.sim_topology}]={self.comms['predicted_s'] * 1e3:.3f}ms"
        ) + self._async_text()

    def _async_text(self) -> str:
        """issue 20: `` mode=async pushes=N pushes_per_s=R max_staleness=K`` (or nothing)."""
        ps = self.parameter_server
        if not ps:
            return ""
        return (
            f" mode={ps['mode']} pushes={ps['pushes']} pushes_per_s={ps['pushes_per_s']:.0f} "
            f"max_clock_gap={ps['max_clock_gap']} lost_workers={len(ps['lost'])}"
        )

    def precision_line(self) -> str:
        """``precision=fp16 loss_scale=32768 skipped_steps=3`` (mixed precision, issue 19)."""
        p = self.precision
        return (
            f"precision={p.get('precision', 'fp32')} loss_scale={p.get('loss_scale', 1.0):g} "
            f"skipped_steps={p.get('skipped_steps', 0)}"
        )

    def rank_lines(self) -> list[str]:
        """One line per rank: compute, communication and idle seconds, bytes sent and the
        communication time predicted on the modelled cluster."""
        topo = self.config.sim_topology
        return [
            f"rank {int(r['rank'])}: compute={r['compute_s']:.3f}s comm={r['comm_s']:.3f}s "
            f"idle={r['idle_s']:.3f}s sent={int(r['bytes_sent']) / 2**20:.2f}MiB "
            f"comm_predicted[{topo}]={r['predicted_comm_s'] * 1e3:.3f}ms"
            for r in self.ranks
        ]

    def memory_lines(self) -> list[str]:
        """One line per rank: bytes predicted before the run and measured on its first step
        (parameters, gradients, optimizer state, peak activations; engine/memory.py)."""
        return memory_lines(self.ranks, self.config.strategy)

    def to_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "epochs": self.history,
            "test_accuracy": self.test_accuracy,
            MODELS[self.config.model].task.metric: self.score,
            "wall_seconds": self.wall_seconds,
            "comms": self.comms,
            "export": self.export_path,
            "attempt": self.attempt,
            "resumed_from": self.resumed_from,
            "ranks": self.ranks,
            "precision": self.precision,
            "parameter_server": self.parameter_server,
        }


class DriverProgress:
    """Log sink on the driver: a tqdm bar for rank 0's steps, other lines printed above it."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled, self.bar = enabled, None

    def __call__(self, rank: int, line: str) -> None:
        match = _PROGRESS.search(line)
        if match is None:
            self._write(f"[rank {rank}] {line}")
            return
        if not self.enabled:
            return
        step, total, loss = int(match[1]), int(match[2]), match[3]
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="step", desc="training", file=sys.stderr)
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix(loss=loss)

    def _write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _spark_run(config: RunConfig) -> dict:
    from sparkgrad.engine.spark_runner import SparkRunner
    from sparkgrad.engine.spark_session import local_session

    # local[N,F]: a task may fail F times before the job aborts. Spark reruns a failed
    # barrier stage either way; the runner cancels the job on an error no rerun can fix
    retries = 2 if config.checkpoint_dir else 1
    spark = local_session(f"local[{config.world_size},{retries}]", app_name="sparkgrad-train")
    check_device(config, spark.sparkContext.master)  # before any task starts
    progress = DriverProgress(config.progress)
    service = None
    if config.uses_parameter_server:  # issue 20: the parameter server lives on the driver
        from sparkgrad.engine.async_launch import DriverService

        service = DriverService(config, spark.sparkContext.master)
    try:
        runner = SparkRunner(
            spark,
            config.world_size,
            log_sink=progress,
            quiet=True,  # each rank failure is one record; the run raises one line
        )
        if MODELS[config.model].task is TEXT and is_uri(config.data):
            from sparkgrad.dataset.text import read_corpus

            corpus = read_corpus(config.data, spark)  # read once here, handed to every task
            return runner.run(train_rank, config.to_dict(), corpus)
        if service is not None:  # issue 20: the final weights come from the server
            return service.merge(runner.run(train_rank, config.to_dict(), service=service))
        if MODELS[config.model].task is not DIGITS or not is_uri(config.data):
            return runner.run(train_rank, config.to_dict())
        # Spark reads the files where they live; task r receives only rank r's shard
        from sparkgrad.dataset import load_mnist, shard_uri

        shards = shard_uri(spark, config.data, config.world_size, "train", drop_last=True)
        test_set = load_mnist(
            config.data, "test", spark=spark, standardize=MODELS[config.model].standardize
        )
        return runner.run(train_rank, config.to_dict(), test_set, inputs=shards)
    finally:
        progress.close()


def export_metadata(config: RunConfig, result: RunResult, version: str) -> dict[str, str]:
    """The safetensors header's ``__metadata__``: enough to rebuild the model and read it."""
    spec = MODELS[config.model]
    meta = {
        "architecture": spec.name(config),
        "model": config.model,
        "strategy": config.strategy,
        "world_size": str(config.world_size),
        "epochs": str(config.epochs),
        "test_accuracy": f"{result.test_accuracy:.6f}",
        spec.task.metric: f"{result.score:.6f}",
        "sparkgrad_version": version,
    }
    meta.update({name: json.dumps(getattr(config, name)) for name in spec.options})
    if result.vocab:
        meta["vocab"] = json.dumps(result.vocab)  # ids are positions in this string
    return meta


def run(config: RunConfig) -> RunResult:
    """Train as ``config`` says, export if asked, and return the measurements."""
    config.validate()
    preflight(config)  # data, output paths, resume: before any task starts
    start = time.perf_counter()
    if config.strategy == "single":
        if is_uri(config.data):  # load_mnist reads URIs through the active SparkSession
            from sparkgrad.engine.spark_session import local_session

            local_session("local[1]", app_name="sparkgrad-train")
        out = train_rank(None, config)
    else:
        out = _spark_run(config)
    result = RunResult(
        config,
        out["history"],
        time.perf_counter() - start,
        out["comms"],
        attempt=out["attempt"],
        resumed_from=out["resumed_from"],
        state_dict=out["state_dict"],
        ranks=out.get("ranks", []),
        vocab=out.get("vocab", ""),
        precision=out.get("precision", {}),
        parameter_server=out.get("parameter_server"),
    )
    if config.export:
        from sparkgrad import __version__
        from sparkgrad.export import save_safetensors

        try:
            result.export_path = save_safetensors(
                out["state_dict"],
                config.export,
                export_metadata(config, result, __version__),
            )
        except OSError as exc:  # e.g. the disk filled up during training
            raise CheckpointError(
                f"--export {config.export}: cannot write the trained model "
                f"({exc.strerror or exc}); the old file, if any, is untouched"
            ) from None
    return result
