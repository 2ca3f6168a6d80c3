"""A worker of the parameter server: the client (:class:`PSClient`) and its Strategy.

:class:`AsyncWorker` is a :class:`~sparkgrad.parallel.strategy.Strategy`, so the engine's
:class:`~sparkgrad.engine.trainer.Trainer` drives it like any other: each
``train_step(x, y)`` on this worker's shard of the batch is::

    version = pull()                 # the server's weights, straight into the model
    loss = loss_fn(model(x), y); loss.backward()
    push(gradient, version)          # the server applies it (or adds it up, in sync)

and under hogwild on shared memory the model's weights *are* the shared vector, so the
step is forward, backward, this worker's own optimizer step into the shared vector (no
lock), and a NOTE so the server counts the clock.

Every request has a deadline: a push or a note waits ``timeout`` seconds for its ACK, a
pull ``2 * timeout`` (the server may hold it back for ``1.5 * timeout`` while slower
workers catch up). A server that closes gives :class:`~sparkgrad.errors.ServerLost`, one
that stops answering :class:`~sparkgrad.errors.CollectiveTimeout`, and one that stopped
the run because another worker was lost :class:`~sparkgrad.errors.WorkerLost`, each
naming the request and the server's address.

``faults`` (teaching and tests) makes this worker misbehave at a chosen step:
``{"kill_mid_push": k}`` sends half of its ``k``-th push and dies (``os._exit`` in a
process; in a thread the socket is closed and :class:`InjectedFault` raised),
``{"stall_at": k}`` stops talking for ``stall_s`` seconds, ``{"delay_s": d}`` sleeps
``d`` seconds every step (a slow worker).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np

from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.comms.tcp_transport import dial_authenticated
from sparkgrad.errors import (
    CollectiveTimeout,
    CommError,
    ConfigError,
    ServerLost,
    SparkgradError,
    WorkerLost,
)
from sparkgrad.parallel.asynchronous import protocol as p
from sparkgrad.parallel.asynchronous.flat_params import bind, gather_grads, layout
from sparkgrad.parallel.asynchronous.hogwild import SharedWeights
from sparkgrad.parallel.strategy import (
    LossFn,
    OptimizerFactory,
    Strategy,
    local_predict,
    numpy_state,
)


class InjectedFault(SparkgradError, RuntimeError):
    """A fault asked for with ``faults=`` (teaching and tests)."""


class PSClient:
    """One worker's authenticated connection to the parameter server at ``address``."""

    def __init__(
        self,
        address: tuple[str, int],
        secret: bytes,
        worker: int,
        workers: int,
        timeout: float = 60.0,
    ) -> None:
        self.address, self.worker, self.timeout = tuple(address), worker, float(timeout)
        self.where = f"the parameter server at {address[0]}:{address[1]}"
        self._sent_at = time.monotonic()
        deadline = self._sent_at + self.timeout
        try:
            sock = dial_authenticated(self.address, secret, worker, workers, deadline)
        except CollectiveTimeout as exc:
            raise CollectiveTimeout(
                f"worker {worker}: could not reach {self.where}: {exc}"
            ) from None
        self.wire = p.Wire(sock, worker, workers)
        self._send(p.HELLO, deadline=deadline, what="hello")
        msg = self._reply(p.WELCOME, deadline, "hello")
        self.welcome = p.parse_welcome(msg.text)
        self.version = msg.seq

    def _send(self, kind: int, what: str, **kwargs: Any) -> None:
        try:
            self.wire.send(kind, **kwargs)
        except CollectiveTimeout as exc:
            raise CollectiveTimeout(
                f"worker {self.worker}: {what} to {self.where}: {exc}"
            ) from None
        except (CommError, OSError) as exc:
            raise ServerLost(
                f"worker {self.worker}: {what} to {self.where} failed: {exc}"
            ) from None

    def _reply(
        self, kind: int, deadline: float, what: str, into: np.ndarray | None = None
    ) -> p.Message:
        try:
            msg = self.wire.recv(deadline, into)
        except CollectiveTimeout:
            raise CollectiveTimeout(
                f"worker {self.worker}: {what}: no answer from {self.where} within "
                f"{deadline - self._sent_at:.3g} s"
            ) from None
        except (CommError, OSError) as exc:
            raise ServerLost(
                f"worker {self.worker}: {self.where} closed the connection during {what} ({exc})"
            ) from None
        if msg.kind == p.STOP:
            reason = msg.text[len(p.PREFIX_TEXT) :]
            cls = {p.STOP_WORKER_LOST: WorkerLost, p.STOP_TIMEOUT: CollectiveTimeout}
            raise cls.get(msg.seq, ServerLost)(f"worker {self.worker}: {what}: {reason}")
        if msg.kind != kind:
            raise CommError(
                f"worker {self.worker}: {what}: expected {p.NAMES[kind]}, got {msg.name}"
            )
        return msg

    def _request(self, kind: int, reply: int, what: str, wait: float, **kwargs: Any) -> p.Message:
        into = kwargs.pop("into", None)
        self._sent_at = time.monotonic()
        deadline = self._sent_at + wait
        self._send(kind, what=what, deadline=deadline, **kwargs)
        return self._reply(reply, deadline, what, into)

    def pull(self, into: np.ndarray) -> int:
        """The server's weights into ``into`` (flat float32); returns their version."""
        msg = self._request(p.PULL, p.WEIGHTS, "pull", 2 * self.timeout, into=into)
        if msg.array is not into:
            if msg.array is None or msg.array.size != into.size:
                raise CommError(f"worker {self.worker}: pull: weights of the wrong size")
            np.copyto(into, msg.array.reshape(-1))
        self.version = msg.seq
        return msg.seq

    def push(self, grad: np.ndarray, base: int, partial: float | None = None) -> int:
        """Send the gradient of weights version ``base``; returns the server's version."""
        if partial is not None:  # a fault: half a frame, then nothing
            self.wire.send(
                p.PUSH, base, grad, deadline=time.monotonic() + self.timeout, partial=partial
            )
            return base
        self.version = self._request(p.PUSH, p.ACK, "push", self.timeout, seq=base, array=grad).seq
        return self.version

    def note(self, base: int) -> int:
        """hogwild on shared memory: "I updated the weights read at version ``base``"."""
        self.version = self._request(p.NOTE, p.ACK, "note", self.timeout, seq=base).seq
        return self.version

    def done(self, report: np.ndarray) -> None:
        """Tell the server this worker finished, with its time split (:data:`~.protocol.REPORT`)."""
        self._request(p.DONE, p.ACK, "done", self.timeout, array=report)

    def close(self) -> None:
        self.wire.close()


class AsyncWorker(Strategy):
    """This worker's Trainer-facing side (see the module docstring)."""

    name = "async"
    splits_batch = True
    predict_is_collective = False

    def __init__(
        self,
        model: Any,
        optimizer_factory: OptimizerFactory,
        loss_fn: LossFn,
        client: PSClient,
        worker: int,
        workers: int,
        faults: dict | None = None,
    ) -> None:
        super().__init__(worker, workers)
        self.model, self.loss_fn, self.client = model, loss_fn, client
        self.params = list(model.parameters())
        self.mode = client.welcome["mode"]
        numel = layout(self.params).numel
        if int(client.welcome["numel"]) != numel:
            raise ConfigError(
                f"worker {worker}: the server's model has {client.welcome['numel']} weights, "
                f"this worker's {numel}: both must build the same model"
            )
        self.shared = None
        if client.welcome["shm"] != "-":  # hogwild on shared memory: train the shared vector
            self.shared = SharedWeights.attach(client.welcome["shm"], numel)
            self.flat = self.shared.array
            bind(self.params, self.flat, copy_values=False)
        else:
            self.flat = np.zeros(numel, np.float32)
            bind(self.params, self.flat)
        self.optimizer = optimizer_factory(self.params) if self.shared is not None else None
        self.grad = np.zeros(numel, np.float32)
        self.version, self.steps, self.faults = client.version, 0, dict(faults or {})

    @classmethod
    def connect(
        cls,
        address: tuple[str, int],
        secret: bytes,
        worker: int,
        workers: int,
        model: Any,
        optimizer_factory: OptimizerFactory,
        loss_fn: LossFn,
        timeout: float = 60.0,
        faults: dict | None = None,
    ) -> AsyncWorker:
        """Dial the server and build this worker's strategy."""
        client = PSClient(address, secret, worker, workers, timeout)
        try:
            return cls(model, optimizer_factory, loss_fn, client, worker, workers, faults)
        except BaseException:
            client.close()
            raise

    def train_step(self, x: Tensor, y: Tensor) -> float:
        self.model.train()
        self._maybe_misbehave()
        if self.shared is None:
            with self.timeline.span("comm"):
                self.version = self.client.pull(self.flat)
        for param in self.params:
            param.grad = None
        with self.timeline.span("forward"):
            loss = self.loss_fn(self.model(x), y)
        with self.timeline.span("backward"):
            loss.backward()
        if self.shared is not None:  # no lock: this worker's optimizer, the shared weights
            with self.timeline.span("optimizer"):
                self.optimizer.step()
            with self.timeline.span("comm"):
                self.version = self.client.note(self.version)
        else:
            gather_grads(self.params, self.grad)
            if self.faults.get("kill_mid_push") == self.steps + 1:
                self._die_mid_push()
            with self.timeline.span("comm"):
                self.version = self.client.push(self.grad, self.version)
        self.steps += 1
        self.timeline.bytes_sent = self.client.wire.bytes_sent
        return float(loss.item())

    def _maybe_misbehave(self) -> None:
        if self.faults.get("delay_s"):
            time.sleep(float(self.faults["delay_s"]))
        if self.faults.get("stall_at") == self.steps + 1:
            time.sleep(float(self.faults.get("stall_s", 3600)))

    def _die_mid_push(self) -> None:
        self.client.push(self.grad, self.version, partial=0.5)
        if threading.current_thread() is threading.main_thread():
            os._exit(137)  # a process killed mid-push: no cleanup, the kernel closes the socket
        self.client.close()
        raise InjectedFault(f"worker {self.rank} died in the middle of push {self.steps + 1}")

    def predict(self, x: Tensor) -> Tensor:
        return local_predict(self.model, x)

    def full_state_dict(self) -> dict[str, np.ndarray]:
        """This worker's last weights (the server holds the final ones)."""
        return numpy_state(self.model)

    def full_optimizer_state_dict(self) -> dict[str, Any]:
        return {"state": {}, "param_groups": []}  # the optimizer lives on the server

    def load_full_state(self, model_state: dict, optimizer_state: dict | None = None) -> None:
        raise ConfigError("asynchronous workers load no state: the parameter server holds it")

    def finish(self) -> list[dict[str, Any]]:
        """Send DONE with this worker's time split; close. Returns ``[this worker's report]``."""
        mine = {**self.report(), "predicted_comm_s": 0.0}
        values = [mine["compute_s"], mine["comm_s"], mine["idle_s"], mine["bytes_sent"], self.steps]
        try:
            self.client.done(np.array(values, np.float64))
        finally:
            self.close()
        return [mine]

    def close(self) -> None:
        self.client.close()
        if self.shared is not None:
            self.flat = np.array(self.flat)  # the model keeps its last weights
            bind(self.params, self.flat, copy_values=False)
            self.shared.close()
            self.shared = None
