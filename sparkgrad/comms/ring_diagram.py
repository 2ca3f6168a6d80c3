"""Pictures of collective algorithms: the ring all-reduce schedule, and a trace of any algorithm.

Ring all-reduce on ``n`` ranks cuts the buffer into ``n`` chunks and runs ``2(n-1)`` steps.
At step ``s`` (from 0) rank ``r`` sends chunk ``(r - s) mod n`` to its right neighbour
``r + 1``:

- steps ``0 .. n-2`` (reduce-scatter): the receiver *adds* the chunk to its own copy, so a
  chunk picks up one more rank's contribution per hop; after ``n-1`` hops rank ``r`` holds
  chunk ``r + 1`` fully reduced;
- steps ``n-1 .. 2n-3`` (all-gather): the receiver *copies* the finished chunk, passing
  every finished chunk once around the ring.

:func:`ring_schedule` lists those transfers; :func:`draw_ring` draws, after every step, how
many ranks' contributions each rank holds for each chunk. :func:`trace_algorithm` runs one
of sparkgrad's real algorithms (``sparkgrad.comms.algorithms``) on ``n`` threads over an
in-memory channel that records every message, so the picture can be checked against the
code and tree or halving-doubling can be drawn the same way (:func:`draw_trace`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparkgrad.comms.reduce_ops import ReduceOp, combine
from sparkgrad.errors import CommError, ConfigError


@dataclass(frozen=True)
class Transfer:
    """One chunk moving one hop at one step: ``action`` is ``"reduce"`` or ``"copy"``."""

    step: int
    sender: int
    receiver: int
    chunk: int
    action: str


def ring_schedule(n: int) -> list[list[Transfer]]:
    """The ``2(n-1)`` steps of ring all-reduce on ``n`` ranks, ``n`` transfers per step."""
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"ring_schedule: expected a number of ranks >= 1, found {n!r}")
    return [
        [
            Transfer(s, r, (r + 1) % n, (r - s) % n, "reduce" if s < n - 1 else "copy")
            for r in range(n)
        ]
        for s in range(2 * (n - 1))
    ]


def contributions(n: int) -> list[np.ndarray]:
    """After each step (and before the first), an ``(n, n)`` array: entry ``[rank, chunk]``
    counts the ranks whose data that rank's copy of that chunk contains."""
    have = [[{r} for _ in range(n)] for r in range(n)]  # have[rank][chunk]: set of ranks
    states = [np.ones((n, n), dtype=int)]
    for step in ring_schedule(n):
        sent = {(t.sender, t.chunk): set(have[t.sender][t.chunk]) for t in step}
        for t in step:
            incoming = sent[(t.sender, t.chunk)]
            if t.action == "reduce":
                have[t.receiver][t.chunk] |= incoming
            else:
                have[t.receiver][t.chunk] = set(incoming)
        states.append(np.array([[len(have[r][c]) for c in range(n)] for r in range(n)]))
    return states


def draw_ring(n: int = 4, axes: Any = None) -> Any:
    """Draw ring all-reduce on ``n`` ranks: one panel per step, rows = ranks, columns =
    chunks, colour = how many ranks' contributions that copy holds (``n`` = done). A cell
    that just received data is marked ``+`` (reduced into) or ``=`` (copied over)."""
    import matplotlib.pyplot as plt

    states, steps = contributions(n), ring_schedule(n)
    if axes is None:
        _, axes = plt.subplots(1, len(states), figsize=(1.55 * len(states), 1.9))
    axes = np.atleast_1d(axes)
    for k, (ax, state) in enumerate(zip(axes, states)):
        ax.imshow(state, cmap="Blues", vmin=0, vmax=n + 1)
        if k > 0:
            for t in steps[k - 1]:
                mark = "+" if t.action == "reduce" else "="
                ax.text(t.chunk, t.receiver, mark, ha="center", va="center", color="darkred")
        phase = "start" if k == 0 else ("reduce-scatter" if k < n else "all-gather")
        ax.set_title(f"{'after step ' + str(k) if k else ''}\n{phase}", fontsize=8)
        ax.set_xticks(range(n), [f"c{c}" for c in range(n)], fontsize=7)
        ax.set_yticks(range(n), [f"r{r}" for r in range(n)] if k == 0 else [], fontsize=7)
    return axes[0].figure


@dataclass(frozen=True)
class Message:
    """One message a traced algorithm sent: elements ``[lo, hi)`` of the buffer.

    ``index`` counts the sender's messages from 0 (its ``index``-th send);
    ``action`` is what the receiver did with it: ``"reduce"`` or ``"copy"``.
    """

    sender: int
    receiver: int
    lo: int
    hi: int
    action: str
    index: int


class _RecordingChannel:
    """The channel interface of ``sparkgrad.comms.algorithms``, over in-memory queues."""

    def __init__(self, rank: int, size: int, base: np.ndarray, world: dict, log: list) -> None:
        self.rank, self.size, self._base = rank, size, base
        self._world, self._log, self._sent = world, log, 0

    def _offset(self, view: np.ndarray) -> int:
        start = view.__array_interface__["data"][0] - self._base.__array_interface__["data"][0]
        return start // self._base.itemsize

    def segments(self, view: np.ndarray) -> list[np.ndarray]:
        return [view]  # one segment per block: every message is a whole block

    def post_ahead(self, peer: int, views: list) -> None:
        pass  # an optimisation of the real transport; nothing to do here

    def send(self, peer: int, view: np.ndarray) -> None:
        lo = self._offset(view)
        self._world[(self.rank, peer)].put((self._sent, lo, lo + view.size, view.copy()))
        self._sent += 1

    def _take(self, peer: int, out: np.ndarray, action: str) -> np.ndarray:
        try:
            index, lo, hi, data = self._world[(peer, self.rank)].get(timeout=10.0)
        except queue.Empty:
            raise CommError(f"trace: rank {self.rank} waited 10 s for rank {peer}") from None
        if data.size != out.size:
            raise CommError(
                f"trace: rank {self.rank} expected {out.size} elements from rank "
                f"{peer}, found {data.size}"
            )
        self._log.append(Message(peer, self.rank, lo, hi, action, index))
        return data

    def recv_into(self, peer: int, out: np.ndarray) -> None:
        out[...] = self._take(peer, out, "copy")

    def recv_reduce(self, peer: int, acc: np.ndarray, op: ReduceOp) -> None:
        combine(op, acc, self._take(peer, acc, "reduce"))


def trace_algorithm(
    fn: Callable[..., None], inputs: list[np.ndarray], *args: Any
) -> tuple[list[Message], list[np.ndarray]]:
    """Run ``fn(ch, buf, *args)`` (e.g. ``ring_all_reduce``, ``ReduceOp.SUM``) on one thread
    per input; return every message (by sender index, then sender) and the final buffers."""
    n = len(inputs)
    bufs = [np.array(x, copy=True).ravel() for x in inputs]
    world = {(a, b): queue.Queue() for a in range(n) for b in range(n)}
    log: list[Message] = []
    errors: list[BaseException] = []

    def rank_main(r: int) -> None:
        try:
            fn(_RecordingChannel(r, n, bufs[r], world, log), bufs[r], *args)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sorted(log, key=lambda m: (m.index, m.sender)), bufs


def draw_trace(messages: list[Message], n: int, title: str = "", ax: Any = None) -> Any:
    """Draw traced messages: x = the sender's message number, y = rank; an arrow per message
    (blue: reduced into the receiver, green: copied), labelled with its element range."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(
            figsize=(1.0 + 1.1 * (max(m.index for m in messages) + 1), 0.5 * n + 1)
        )
    for m in messages:
        colour = "tab:blue" if m.action == "reduce" else "tab:green"
        ax.annotate(
            "",
            xy=(m.index + 0.8, m.receiver),
            xytext=(m.index, m.sender),
            arrowprops=dict(arrowstyle="->", color=colour, lw=1.2),
        )
        ax.text(m.index + 0.05, m.sender - 0.15, f"[{m.lo}:{m.hi})", fontsize=6, color=colour)
    rounds = 1 + max(m.index for m in messages)
    ax.set_xlim(-0.2, rounds)
    ax.set_ylim(n - 0.5, -0.5)  # rank 0 on top
    ax.set_xticks(range(rounds))
    ax.set_yticks(range(n), [f"rank {r}" for r in range(n)])
    ax.set_xlabel("sender's message number (blue: reduce, green: copy)", fontsize=8)
    ax.set_title(title, fontsize=9)
    return ax.figure
