"""Activation memory, measured: the bytes of the arrays a live graph keeps for backward.

Every recorded op keeps what its backward needs (``ctx.saved_tensors``); between forward and
backward those *activations* are what a training step holds beyond the weights, gradients
and optimizer state (which :class:`sparkgrad.parallel.memory_ledger.MemoryLedger` counts).
:func:`saved_bytes` walks the graph behind some tensors and adds up the saved arrays, each
block of memory once (a view is charged to the array that owns the memory, as the ledger
does), leaving out the parameters (``nn.Parameter`` leaves: they are weights, not activations).
The input batch, when an op saved it, counts; so does a checkpoint's saved input.

With activation checkpointing (:mod:`sparkgrad.autodiff.checkpoint`) the peak is no longer
at the end of forward: backward recomputes one segment at a time, and while it runs the
graph holds that segment's activations *and* whatever of the rest is not freed yet.
:class:`ActivationTracker` follows that::

    with ActivationTracker() as mem:
        loss = loss_fn(model(x), y)
        mem.mark_forward(loss)        # bytes at the end of forward
        loss.backward()               # each recomputation is measured too
    mem.forward_bytes, mem.peak_bytes

It keeps weak references to the nodes it has seen, so it never keeps memory alive itself,
and a node the engine released (``ctx is None``) counts nothing.

Inside a strategy's training step nobody calls ``mark_forward``: while a tracker is on,
every ``backward()`` measures the graph behind its roots as it starts (the end of that
forward), and :func:`observe_graph` lets code whose graphs outlive one backward say "measure
now" -- a pipeline stage after each micro-batch's forward, where GPipe holds all ``m`` of
them before the first backward. Every such moment only raises ``forward_bytes`` (the largest
end of a forward) and ``peak_bytes``; what is measured is what is alive at that moment.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import Any

from sparkgrad.autodiff.function import Node, edge_to
from sparkgrad.autodiff.graph import topological_order
from sparkgrad.autodiff.tensor import Tensor

__all__ = ["ActivationTracker", "observe_graph", "saved_bytes"]

_local = threading.local()


def _owner(a: Any) -> Any:
    while getattr(a, "base", None) is not None:
        a = a.base
    return a


def _vertices(tensors: Iterable[Any]) -> list[Any]:
    roots = [edge_to(t) for t in tensors if isinstance(t, Tensor)]
    return topological_order([r for r in roots if r is not None])


def _bytes_of(nodes: Iterable[Node], leaves: Iterable[Tensor]) -> int:
    """Saved arrays of ``nodes`` (each owning block once), parameters' arrays left out."""
    from sparkgrad.autodiff.nn.parameter import Parameter  # nn imports this module's users

    weights = {id(_owner(t.array)) for t in leaves if isinstance(t, Parameter)}
    owners: dict[int, int] = {}
    for node in nodes:
        ctx = node.ctx
        if ctx is None:  # released by backward
            continue
        for a in getattr(ctx, "saved_tensors", ()) or ():
            a = a.array if isinstance(a, Tensor) else a
            if not hasattr(a, "nbytes"):
                continue
            owner = _owner(a)
            if id(owner) not in weights:
                owners[id(owner)] = int(owner.nbytes)
    return sum(owners.values())


def saved_bytes(*tensors: Any) -> int:
    """Bytes the graph behind ``tensors`` keeps for backward (activations, not weights)."""
    vertices = _vertices(tensors)
    nodes = [v for v in vertices if isinstance(v, Node)]
    return _bytes_of(nodes, [v for v in vertices if isinstance(v, Tensor)])


class ActivationTracker:
    """Peak bytes saved for backward over a step, recomputations included (module doc)."""

    def __init__(self) -> None:
        self.forward_bytes = 0
        self.peak_bytes = 0
        self.recomputations = 0
        self._nodes: list[weakref.ref] = []
        self._leaves: list[weakref.ref] = []

    def __enter__(self) -> ActivationTracker:
        self._previous = getattr(_local, "tracker", None)
        _local.tracker = self
        return self

    def __exit__(self, *exc: object) -> None:
        _local.tracker = self._previous

    def mark_forward(self, *tensors: Any) -> int:
        """Measure the graph behind ``tensors`` now (the end of forward); returns the bytes."""
        self._see(tensors)
        self.forward_bytes = self._measure()
        self.peak_bytes = max(self.peak_bytes, self.forward_bytes)
        return self.forward_bytes

    def observe(self, *tensors: Any) -> int:
        """Like :meth:`mark_forward`, but keeps the largest end of forward seen so far."""
        self._see(tensors)
        now = self._measure()
        self.forward_bytes = max(self.forward_bytes, now)
        self.peak_bytes = max(self.peak_bytes, now)
        return now

    def _see(self, tensors: Iterable[Any]) -> None:
        for v in _vertices(tensors):
            (self._leaves if isinstance(v, Tensor) else self._nodes).append(weakref.ref(v))

    def _measure(self) -> int:
        nodes = [n for n in (r() for r in self._nodes) if n is not None]
        leaves = [t for t in (r() for r in self._leaves) if t is not None]
        return _bytes_of(nodes, leaves)

    def recomputed(self, outputs: list[Any]) -> None:
        """A checkpointed segment was just recomputed: its graph is alive, measure again."""
        self.recomputations += 1
        self._see(outputs)
        self.peak_bytes = max(self.peak_bytes, self._measure())


def observe_recomputation(outputs: list[Any]) -> None:
    """Called by :mod:`.checkpoint` after each recomputation (a no-op without a tracker)."""
    tracker = getattr(_local, "tracker", None)
    if tracker is not None:
        tracker.recomputed(outputs)


def observe_graph(*tensors: Any) -> None:
    """Measure the live graph behind ``tensors`` now (a no-op without a tracker on this thread).

    ``backward()`` calls it with its roots; a pipeline stage after each micro-batch's forward.
    """
    tracker = getattr(_local, "tracker", None)
    if tracker is not None:
        tracker.observe(*tensors)
