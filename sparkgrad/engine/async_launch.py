"""Asynchronous runs (issue 20): the parameter server on the driver, the workers anywhere.

``--mode async|hogwild|ssp`` on Spark: :func:`~sparkgrad.engine.run.run` hands
:class:`DriverService` to :meth:`SparkRunner.run(..., service=...)
<sparkgrad.engine.spark_runner.SparkRunner.run>`, which starts the
:class:`~sparkgrad.parallel.asynchronous.server.ParameterServer` on the driver with the
job's secret before the barrier stage and closes it after; every task runs the usual
:func:`~sparkgrad.engine.job.train_rank`, whose strategy is then an
:class:`~sparkgrad.parallel.asynchronous.worker.AsyncWorker`. The final weights and the
workers' time split come from the server (:meth:`DriverService.merge`).

:func:`run_local` does the same without Spark: the server in this process, the same
``train_rank`` on ``world_size`` threads or processes of this machine (fast tests, the
benchmark, the notebook), with a deadline on everything. ``config.extra`` carries the
knobs tests turn: ``ps_timeout`` (seconds), ``ps_faults`` (``{"rank": {...}}``, see
:mod:`~sparkgrad.parallel.asynchronous.worker`), ``on_worker_lost``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import sparkgrad as sg
from sparkgrad.comms.auth import new_secret
from sparkgrad.dataset import load_mnist
from sparkgrad.engine.config import RunConfig
from sparkgrad.engine.model import MODELS, build_optimizer
from sparkgrad.errors import CollectiveTimeout
from sparkgrad.parallel.asynchronous.flat_params import bind
from sparkgrad.parallel.asynchronous.server import ParameterServer

log = logging.getLogger("sparkgrad.engine.async")


def make_server(
    config: RunConfig,
    secret: bytes,
    host: str = "127.0.0.1",
    shared_memory: bool = True,
    snapshot_every: int = 0,
    build: Any = None,
) -> ParameterServer:
    """The server of ``config``: its model from the seed (or ``build()``), its optimizer,
    its mode."""
    model = MODELS[config.model].build(config, "") if build is None else build()
    return ParameterServer(
        model,
        lambda params: build_optimizer(config.optimizer, params, config.lr, config.momentum),
        workers=config.world_size,
        secret=secret,
        mode=config.mode,
        staleness=config.staleness,
        on_worker_lost=config.extra.get("on_worker_lost", "continue"),
        timeout=float(config.extra.get("ps_timeout", 60.0)),
        host=host,
        shared_memory=shared_memory,
        snapshot_every=snapshot_every,
    )


class DriverService:
    """``SparkRunner.run(service=...)``: makes the server, and merges its results in."""

    def __init__(self, config: RunConfig, master: str, build: Any = None) -> None:
        # shared memory only when every task runs on the driver's machine
        self.config, self.shared = config, master.startswith("local")
        self.build = build  # the model, when it is not one of sparkgrad.models (Spark ML)
        self.server: ParameterServer | None = None

    def __call__(self, secret: bytes, host: str) -> ParameterServer:
        self.server = make_server(self.config, secret, host, self.shared, build=self.build)
        return self.server

    def merge(self, out: dict) -> dict:
        """Rank 0's result with the server's final weights, time splits and statistics."""
        server = self.server
        out["state_dict"] = server.state_dict()
        out["ranks"] = report_rows(server)
        out["parameter_server"] = json_stats(server.stats())
        return out


def report_rows(server: ParameterServer) -> list[dict]:
    """One ``rank_lines`` row per worker that reported (see ``engine.job.REPORT_FIELDS``)."""
    rows = []
    for w, rep in sorted(server.reports.items()):
        row = {k: rep.get(k, 0.0) for k in ("compute_s", "comm_s", "idle_s", "bytes_sent")}
        rows.append({"rank": w, **row, "predicted_comm_s": 0.0})
    return rows


def json_stats(stats: dict) -> dict:
    """``stats`` with string keys everywhere (what JSON keeps)."""
    return json.loads(json.dumps(stats, default=float))


# -- without Spark: threads or processes of this machine -------------------------------------
@dataclass
class LocalContext:
    """The part of :class:`~sparkgrad.engine.spark_runner.RankContext` a worker uses."""

    rank: int
    world_size: int
    service_address: tuple[str, int]
    secret: bytes = field(repr=False)
    attempt: int = 0
    records: list | None = None
    log: logging.Logger = log


@dataclass
class LocalRun:
    """What :func:`run_local` measured."""

    config: RunConfig
    stats: dict
    state_dict: dict
    history: list  # worker 0's epochs (empty when it did not finish)
    outcomes: dict[int, str]  # "ok" or "ErrorClass: message", per worker
    seconds: float
    snapshots: list = field(default_factory=list, repr=False)  # (pushes, s, flat weights)

    def accuracy(self) -> float:
        """Test accuracy of the server's final weights."""
        return accuracy_of(self.config, self.state_dict)

    def curve(self) -> list[tuple[int, float]]:
        """``(samples trained, test accuracy)`` of every snapshot of the server's weights."""
        per_push = self.config.per_rank_batch
        return [(n * per_push, accuracy_of(self.config, flat)) for n, _, flat in self.snapshots]


def _test_set(config: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    return load_mnist(config.data, "test", standardize=MODELS[config.model].standardize)


def accuracy_of(config: RunConfig, weights: Any) -> float:
    """Test accuracy of ``weights`` (a state dict, or a flat vector) for ``config``'s model."""
    model = MODELS[config.model].build(config, "")
    if isinstance(weights, dict):
        model.load_state_dict(weights)
    else:
        bind(list(model.parameters()), np.array(weights, np.float32), copy_values=False)
    images, labels = _test_set(config)
    model.eval()
    with sg.no_grad():
        logits = model(sg.tensor(images)).numpy()
    return float((logits.argmax(1) == labels).mean())


def _worker(rank: int, config: dict, address: tuple[str, int], secret: bytes) -> dict | None:
    from sparkgrad.engine.job import train_rank

    ctx = LocalContext(rank, config["world_size"], tuple(address), secret)
    return train_rank(ctx, config)


def _process_main(rank: int, config: dict, address: tuple, secret_hex: str, out: Any) -> None:
    try:
        result = _worker(rank, config, address, bytes.fromhex(secret_hex))
        history = result["history"] if result else []
        out.put((rank, "ok", json.dumps(history)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as text
        out.put((rank, f"{type(exc).__name__}: {exc}", traceback.format_exc()))


def run_local(
    config: RunConfig,
    backend: str = "threads",
    *,
    timeout: float = 30.0,
    on_worker_lost: str = "continue",
    faults: dict[int, dict] | None = None,
    shared_memory: bool = True,
    snapshot_every: int = 0,
    deadline_s: float = 300.0,
) -> LocalRun:
    """Train ``config`` (``mode`` async, hogwild, ssp, or the server's own ``sync``) with
    the server here and the workers as ``backend`` threads or processes.

    ``timeout``: the server's and the workers' per-request timeout; ``deadline_s``: the
    whole run. With ``on_worker_lost="fail"`` a lost worker raises
    :class:`~sparkgrad.errors.WorkerLost`; with ``"continue"`` it is in ``stats["lost"]``.
    """
    if backend not in ("threads", "processes"):
        raise ValueError(f"backend must be threads or processes, found {backend!r}")
    config.extra = {
        **config.extra,
        "ps_timeout": timeout,
        "on_worker_lost": on_worker_lost,
        "ps_faults": {str(k): v for k, v in (faults or {}).items()},
        "parameter_server": True,  # mode sync: the server's bulk-synchronous mode
    }
    config.progress = False
    config.validate()
    secret = new_secret()
    server = make_server(config, secret, "127.0.0.1", shared_memory, snapshot_every)
    spec = config.to_dict()
    outcomes: dict[int, str] = {}
    history: list = []
    start = time.perf_counter()
    until = time.monotonic() + deadline_s
    try:
        if backend == "threads":
            history = _run_threads(spec, server.address, secret, outcomes, until)
        else:
            history = _run_processes(spec, server.address, secret, outcomes, until)
        server.wait(max(0.1, until - time.monotonic()))
    finally:
        server.close()
    return LocalRun(
        config,
        server.stats(),
        server.state_dict(),
        history,
        outcomes,
        time.perf_counter() - start,
        server.snapshots,
    )


def _run_threads(spec: dict, address: tuple, secret: bytes, outcomes: dict, until: float) -> list:
    results: dict[int, Any] = {}

    def target(rank: int) -> None:
        try:
            results[rank] = _worker(rank, spec, address, secret)
            outcomes[rank] = "ok"
        except BaseException as exc:  # noqa: BLE001 - the outcome is reported
            outcomes[rank] = f"{type(exc).__name__}: {exc}"

    threads = [
        threading.Thread(target=target, args=(r,), name=f"async-worker-{r}", daemon=True)
        for r in range(spec["world_size"])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, until - time.monotonic()))
    alive = [r for r, t in enumerate(threads) if t.is_alive()]
    if alive:
        raise CollectiveTimeout(f"async workers {alive} still ran at the run's deadline")
    return (results.get(0) or {}).get("history", [])


def _run_processes(spec: dict, address: tuple, secret: bytes, outcomes: dict, until: float) -> list:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_process_main, args=(r, spec, address, secret.hex(), out), daemon=True)
        for r in range(spec["world_size"])
    ]
    for proc in procs:
        proc.start()
    history: list = []
    try:
        while len(outcomes) < len(procs):
            try:
                rank, outcome, text = out.get(timeout=0.2)
            except queue.Empty:
                for r, proc in enumerate(procs):  # a process that died without a word
                    if r not in outcomes and not proc.is_alive() and proc.exitcode:
                        outcomes[r] = f"exited with code {proc.exitcode}"
                if time.monotonic() >= until:
                    raise CollectiveTimeout(
                        f"async workers {sorted(set(range(len(procs))) - set(outcomes))} still "
                        "ran at the run's deadline"
                    ) from None
                continue
            outcomes[rank] = outcome
            if rank == 0 and outcome == "ok":
                history = json.loads(text)
    finally:
        for proc in procs:
            proc.join(max(0.1, min(5.0, until - time.monotonic())))
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        out.close()
        out.join_thread()
    return history
