"""How a parameter server answers pulls and applies pushes, in each of its four modes.

:class:`UpdateRules` is the half of :class:`~.server.ParameterServer` that decides *when*
a worker may read the weights and *how* its gradient changes them; the other half
(:mod:`.server`) keeps the connections, notices lost workers and shuts down. Every method
runs on the worker's own connection thread; ``self._cond`` guards the shared numbers.

- **pull** (:meth:`UpdateRules._pull`): ``sync`` waits until the last clock's averaged
  step was applied, ``ssp`` until this worker is at most ``S`` clocks ahead of the slowest
  (:class:`~.staleness.Clocks`), ``async`` and ``hogwild`` never wait. The wait is bounded
  (``GATE_FACTOR * timeout``); then the worker gets STOP naming the workers it waited for.
  ``async``/``ssp``/``sync`` copy the weights under the lock (a consistent version);
  ``hogwild`` sends the live vector, half-applied updates and all.
- **push** (:meth:`UpdateRules._push`): first the staleness record (clock gap, version
  lag); then ``sync`` adds the gradient to the clock's sum and, once every worker still
  training has pushed, applies the mean in one optimizer step (:meth:`_apply_round`);
  ``async``/``ssp`` apply it at once with the one optimizer under the lock; ``hogwild``
  through the server applies it *before* taking the lock, with this worker's own optimizer
  over views of the one vector, concurrently with the other workers' threads.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from sparkgrad.autodiff.nn.parameter import Parameter
from sparkgrad.errors import CommError
from sparkgrad.parallel.asynchronous import protocol as p
from sparkgrad.parallel.asynchronous.flat_params import bind, grad_views
from sparkgrad.parallel.asynchronous.staleness import Push

GATE_FACTOR = 1.5  # a waiting pull waits this many timeouts at most


class UpdateRules:
    """Pull gates and push updates of :class:`~.server.ParameterServer` (see the module doc)."""

    # -- pull: the weights, once the clocks allow -------------------------------------------
    def _may_start(self, w: int) -> bool:
        if self.mode == "sync":
            return self.version >= self.clocks.clock[w]  # the last round was applied
        return self.clocks.may_start(w)

    def _pull(self, w: int, wire: p.Wire) -> None:
        until = time.monotonic() + GATE_FACTOR * self.timeout
        with self._cond:
            while not (self._may_start(w) or self.failed or self._closing):
                self._expire_expected()
                if time.monotonic() >= until:
                    waited = self.clocks.laggards(w)
                    why = (
                        f"worker {w} (clock {self.clocks.clock[w]}) waited "
                        f"{GATE_FACTOR * self.timeout:g} s for workers {waited} (clock "
                        f"{self.clocks.slowest()}) to catch up ({self.mode})"
                    )
                    wire.send(p.STOP, p.STOP_TIMEOUT, text=p.PREFIX_TEXT + why, deadline=self._by())
                    return
                self._cond.wait(0.25)
            if self.mode != "hogwild":  # a consistent copy; hogwild reads the live vector
                weights, version = self.flat.copy(), self.version
        if self._refuse(wire):
            return
        if self.mode == "hogwild":
            weights, version = self.flat, self.version
        wire.send(p.WEIGHTS, version, weights, deadline=self._by())

    # -- push: apply (or add up), record the staleness ---------------------------------------
    def _push(self, w: int, msg: p.Message, wire: p.Wire, hog: Any) -> None:
        if msg.kind == p.PUSH and (msg.array is None or msg.array.size != self.numel):
            found = 0 if msg.array is None else msg.array.size
            raise CommError(
                f"worker {w} pushed {found} gradient values, the model has {self.numel}"
            )
        if hog is not None:  # hogwild through the server: no lock around the update
            params, grads, optimizer = hog
            for param, grad in zip(params, grads):
                param.grad = grad
            optimizer.step()
        with self._cond:
            self.log.record(
                Push(
                    w,
                    self.clocks.clock[w],
                    self.clocks.gap(w),
                    self.version - int(msg.seq),
                    time.monotonic() - self._start,
                )
            )
            self.clocks.clock[w] += 1
            self.pushes += 1
            if self.mode == "sync":
                self._acc += msg.array
                self._round.add(w)
                self._apply_round()
            else:
                if self.optimizer is not None:  # async, ssp: one optimizer, one at a time
                    for param, grad in zip(self.params, grad_views(self.params, msg.array)):
                        param.grad = grad
                    self.optimizer.step()
                self.version += 1
                self._snapshot()
            self._last = time.monotonic()
            version = self.version
            self._cond.notify_all()
        wire.send(p.ACK, version, deadline=self._by())

    def _apply_round(self) -> None:
        """sync: once every worker still training has pushed this clock, one mean step."""
        if not self._round or any(w not in self._round for w in self.clocks.training()):
            return
        self._acc /= len(self._round)
        for param, grad in zip(self.params, grad_views(self.params, self._acc)):
            param.grad = grad
        self.optimizer.step()
        self._acc.fill(0)
        self._round.clear()
        self.version += 1
        self._snapshot()
        self._cond.notify_all()

    def _hogwild_optimizer(self, w: int) -> tuple[list, list, Any]:
        """This worker's own parameters (views of the one vector), gradients and optimizer."""
        params = [Parameter(np.zeros(q.shape, np.float32)) for q in self.params]
        bind(params, self.flat, copy_values=False)
        return params, grad_views(params, self._grads[w]), self._factory(params)

    def _snapshot(self) -> None:
        every = self.snapshot_every
        if every and self.pushes - self.snapshots[-1][0] >= every:
            self.snapshots.append((self.pushes, time.monotonic() - self._start, self.flat.copy()))
