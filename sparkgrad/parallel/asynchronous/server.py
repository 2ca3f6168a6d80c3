"""``ParameterServer``: one process holds the weights and the optimizer; workers pull and push.

Where it lives: **on the Spark driver** (in the process that calls
:class:`~sparkgrad.engine.spark_runner.SparkRunner`; in tests, the test process). Why
there and not on a dedicated rank:

- the driver outlives every task: a worker killed mid-push takes nothing with it (the
  weights and the optimizer's state stay), and the server is the one place that can
  notice and decide (go on with the rest, or stop the run with a named error);
- every task trains: none of the ``world_size`` task slots idles as a server, and no
  server thread competes with a worker for one Python interpreter (which would also make
  that worker the slowest and skew every staleness number);
- the driver is already reachable by every task (the ranks' log lines stream to it) and
  already holds the per-job secret; the final weights are where they are exported.

The price is the classic one: every pull and push crosses the driver's network link, so
with many workers and a big model the driver's bandwidth is the limit (sharding the
server over several hosts is the known fix; not done here).

Modes (:data:`MODES`), all over the same protocol (:mod:`.protocol`):

- ``sync``: bulk-synchronous through the server. The gradients of one clock are summed as
  they arrive; when every worker still training has pushed, their mean is applied in one
  optimizer step. With equal shards this is exactly one process training on the global
  batch (what the tests check), and what the other modes are measured against.
- ``async`` (Downpour-style): each push is applied as it arrives, under one lock, by the
  one optimizer; nobody waits for anybody.
- ``ssp``: ``async``, plus a pull waits while the worker is more than ``staleness``
  clocks ahead of the slowest (:class:`~.staleness.Clocks`).
- ``hogwild``: no lock at all (:mod:`.hogwild`): on shared memory the workers update the
  weights themselves and only NOTE each step; otherwise every push is applied on its own
  connection thread by that worker's own optimizer, concurrently with the others.

Safety: every read from a worker has a deadline (``timeout``: a worker silent that long is
lost), a pull that must wait (sync, ssp) waits at most ``1.5 * timeout`` and then gets a
STOP naming the workers it waited for; a connection that closes (a killed process) loses
the worker at once. ``on_worker_lost="continue"`` goes on with the others (their clocks
no longer wait for it); ``"fail"`` answers every later request with STOP, so every worker
raises :class:`~sparkgrad.errors.WorkerLost` naming the lost one, and so does
:meth:`wait`. A worker that never connects is lost ``timeout`` seconds after the server
started. :meth:`close` stops the listener, cuts every connection, joins every thread and
removes the shared memory; the final weights stay readable (:meth:`state_dict`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sparkgrad.comms.admission import HANDSHAKE_SECONDS, Admission
from sparkgrad.comms.auth import check_secret, server_handshake
from sparkgrad.comms.tcp_transport import listen
from sparkgrad.errors import CollectiveTimeout, CommError, ConfigError, WorkerLost
from sparkgrad.parallel.asynchronous import protocol as p
from sparkgrad.parallel.asynchronous.flat_params import bind, layout
from sparkgrad.parallel.asynchronous.hogwild import SharedWeights
from sparkgrad.parallel.asynchronous.staleness import (
    DONE,
    EXPECTED,
    LIVE,
    LOST,
    Clocks,
    StalenessLog,
)
from sparkgrad.parallel.asynchronous.updates import UpdateRules
from sparkgrad.parallel.strategy import numpy_state

MODES = ("sync", "async", "hogwild", "ssp")
POLICIES = ("continue", "fail")
log = logging.getLogger("sparkgrad.parallel.asynchronous")


class ParameterServer(UpdateRules):
    """Serve ``model``'s weights to ``workers`` workers (see the module docstring).

    ``optimizer_factory(params)`` makes the optimizer (one per worker under hogwild).
    ``address`` is where workers dial; ``snapshot_every=k`` keeps a copy of the weights
    every ``k`` pushes (``snapshots``: ``(pushes, seconds, weights)``) for accuracy curves.
    """

    def __init__(
        self,
        model: Any,
        optimizer_factory: Callable[[Any], Any],
        *,
        workers: int,
        secret: bytes,
        mode: str = "async",
        staleness: int | None = None,
        on_worker_lost: str = "continue",
        timeout: float = 60.0,
        host: str = "127.0.0.1",
        port: int = 0,
        shared_memory: bool = True,
        snapshot_every: int = 0,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, found {mode!r}")
        if on_worker_lost not in POLICIES:
            raise ConfigError(f"on_worker_lost must be continue or fail, found {on_worker_lost!r}")
        if mode == "ssp" and (staleness is None or staleness < 0):
            raise ConfigError(f"mode ssp needs a staleness >= 0, found {staleness}")
        if workers < 1 or timeout <= 0:
            raise ConfigError(f"expected workers >= 1 and timeout > 0, found {workers}, {timeout}")
        self.model, self.mode, self.workers = model, mode, workers
        self.timeout, self.policy = float(timeout), on_worker_lost
        self.secret = check_secret(secret, "the parameter server's secret")
        self.params = list(model.parameters())
        initial = layout(self.params).flatten([np.asarray(q.array) for q in self.params])
        self.shared = SharedWeights.create(initial) if mode == "hogwild" and shared_memory else None
        self.flat = self.shared.array if self.shared is not None else np.array(initial)
        self._shm_name = self.shared.name if self.shared is not None else None
        bind(self.params, self.flat, copy_values=False)
        self.numel = self.flat.size
        self.optimizer = optimizer_factory(self.params) if mode != "hogwild" else None
        self._factory = optimizer_factory
        self._grads = [np.zeros(self.numel, np.float32) for _ in range(workers)]
        self._acc = np.zeros(self.numel, np.float32) if mode == "sync" else None
        self._round: set[int] = set()
        self.clocks = Clocks(workers, staleness if mode == "ssp" else None)
        self.staleness = self.clocks.staleness
        self.log = StalenessLog()
        self.version = 0
        self.pushes = 0
        self.snapshot_every, self.snapshots = snapshot_every, []
        if snapshot_every:  # the starting point of every curve
            self.snapshots.append((0, 0.0, self.flat.copy()))
        self.lost: dict[int, str] = {}
        self.reports: dict[int, dict[str, float]] = {}
        self.failed: WorkerLost | None = None
        self._cond = threading.Condition()
        self._wires: dict[int, p.Wire] = {}
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._final: dict[str, np.ndarray] | None = None
        self._finished = threading.Event()
        self._start = time.monotonic()
        self._first: float | None = None
        self._last: float | None = None
        listener = listen(host, port)
        self.address: tuple[str, int] = listener.getsockname()[:2]
        self.admission = Admission(
            listener,
            self._admit,
            name="parameter server",
            handshake_s=min(self.timeout, HANDSHAKE_SECONDS),
        )

    # -- connections -------------------------------------------------------------------------
    def _admit(self, sock: Any, addr: tuple, deadline: float) -> None:
        worker = server_handshake(sock, self.secret, self.workers, deadline)
        wire = p.Wire(sock, 0, self.workers)
        with self._cond:
            refused = self._closing or self.clocks.state[worker] != EXPECTED
            if not refused:
                self.clocks.state[worker] = LIVE
                self._wires[worker] = wire
        if refused:  # a second connection, or a rerun of the stage: told why, then closed
            state = self.clocks.state[worker]
            why = f"worker {worker} already joined this parameter server (it is {state})"
            try:
                wire.recv(time.monotonic() + self.timeout)
                wire.send(p.STOP, p.STOP_REFUSED, text=f"{p.PREFIX_TEXT}{why}", deadline=deadline)
            finally:
                wire.close()
            return
        thread = threading.Thread(
            target=self._serve, args=(worker, wire), name=f"ps-worker-{worker}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _serve(self, w: int, wire: p.Wire) -> None:
        try:
            hello = wire.recv(time.monotonic() + self.timeout)
            if hello.kind != p.HELLO:
                raise CommError(f"expected hello, found {hello.name}")
            shm = self.shared.name if self.shared is not None else None
            text = p.welcome_text(self.mode, self.numel, shm)
            wire.send(p.WELCOME, self.version, text=text, deadline=self._by())
            with self._cond:
                self._first = self._first or time.monotonic()
            hog = self._hogwild_optimizer(w) if self.mode == "hogwild" and shm is None else None
            while True:
                msg = wire.recv(self._by(), into=self._grads[w])
                if self._refuse(wire):
                    return
                if msg.kind == p.PULL:
                    self._pull(w, wire)
                elif msg.kind in (p.PUSH, p.NOTE):
                    self._push(w, msg, wire, hog)
                elif msg.kind == p.DONE:
                    self._done(w, msg)
                    wire.send(p.ACK, self.version, deadline=self._by())
                    return
                else:
                    raise CommError(f"unexpected message {msg.name} from worker {w}")
        except (CommError, OSError) as exc:
            if not self._closing:
                self._lose(w, str(exc) or type(exc).__name__)
        finally:
            wire.close()

    def _by(self) -> float:
        return time.monotonic() + self.timeout

    def _refuse(self, wire: p.Wire) -> bool:
        """Answer STOP instead when the run failed or the server closes."""
        if self.failed is None and not self._closing:
            return False
        code = p.STOP_WORKER_LOST if self.failed is not None else p.STOP_CLOSING
        why = str(self.failed) if self.failed is not None else "the parameter server is closing"
        wire.send(p.STOP, code, text=p.PREFIX_TEXT + why, deadline=self._by())
        return True

    # -- workers that finish, or are lost ------------------------------------------------------
    def _done(self, w: int, msg: p.Message) -> None:
        values = [] if msg.array is None else [float(v) for v in msg.array.reshape(-1)]
        with self._cond:
            self.reports[w] = dict(zip(p.REPORT, values))
            self.clocks.state[w] = DONE
            self._changed()

    def _lose(self, w: int, reason: str) -> None:
        with self._cond:
            if self.clocks.state[w] in (DONE, LOST):
                return
            self.clocks.state[w] = LOST
            self.lost[w] = reason
            if self.policy == "fail" and self.failed is None:
                self.failed = WorkerLost(
                    f"worker {w} of {self.workers} was lost ({reason}); the run stops "
                    "(on_worker_lost='fail')"
                )
            self._changed()
        log.warning("parameter server: worker %d lost: %s", w, reason)

    def _changed(self) -> None:
        """A worker left the training set: rounds and gates may move on (lock held)."""
        if self.mode == "sync" and self.failed is None:
            self._apply_round()
        if self.clocks.finished():
            self._finished.set()
        self._cond.notify_all()

    def _expire_expected(self) -> None:
        """Workers that never connected within ``timeout`` of the start are lost (lock held)."""
        if time.monotonic() - self._start < self.timeout:
            return
        for w in range(self.workers):
            if self.clocks.state[w] == EXPECTED:
                self.clocks.state[w] = LOST
                self.lost[w] = f"it did not connect within {self.timeout:g} s"
                if self.policy == "fail" and self.failed is None:
                    self.failed = WorkerLost(f"worker {w} never connected ({self.lost[w]})")
                self._changed()

    # -- the end ------------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> None:
        """Until every worker is done or lost; raise the run's WorkerLost, or a timeout."""
        until = time.monotonic() + (self.timeout * 2 if timeout is None else timeout)
        while not self._finished.wait(0.2) and self.failed is None:
            with self._cond:
                self._expire_expected()
            if time.monotonic() >= until:
                busy = [w for w in range(self.workers) if self.clocks.state[w] in (EXPECTED, LIVE)]
                raise CollectiveTimeout(f"parameter server: workers {busy} did not finish in time")
        if self.failed is not None:
            raise self.failed

    def state_dict(self) -> dict[str, np.ndarray]:
        """The server's weights under the model's keys (copies; also after :meth:`close`)."""
        return dict(self._final) if self._final is not None else numpy_state(self.model)

    def close(self) -> None:
        """Stop listening, cut every connection, join the threads, free the shared memory."""
        if self._closing:
            return
        self._final = numpy_state(self.model)
        self._closing = True
        self.admission.close()
        self.admission.join(self.timeout)
        with self._cond:
            wires = list(self._wires.values())
            self._cond.notify_all()
        for wire in wires:
            wire.close()
        for thread in self._threads:
            thread.join(timeout=self.timeout)
        if self.shared is not None:
            self.flat = np.array(self.flat)  # keep a private copy, then free the block
            bind(self.params, self.flat, copy_values=False)
            self.shared.unlink()

    def __enter__(self) -> ParameterServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        """Pushes, throughput, staleness histograms, lost workers and the workers' reports."""
        span = (self._last - self._first) if self._first and self._last else 0.0
        return {
            "mode": self.mode,
            "workers": self.workers,
            "staleness": self.staleness,
            "pushes": self.pushes,
            "updates": self.version,
            "seconds": span,
            "pushes_per_s": self.pushes / span if span > 0 else 0.0,
            "version_lag": self.log.histogram("version_lag"),
            "clock_gap": self.log.histogram("clock_gap"),
            "max_clock_gap": self.log.max("clock_gap"),
            "max_version_lag": self.log.max("version_lag"),
            "pushes_per_worker": self.log.per_worker(),
            "lost": dict(self.lost),
            "shared_memory": self._shm_name,
            "reports": dict(self.reports),
        }
