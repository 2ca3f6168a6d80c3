"""Chapter 3 exercise — the ring all-reduce: a reduce-scatter, then an all-gather.

``n`` ranks sit on a ring ``0 -> 1 -> ... -> n-1 -> 0``; each sends only to its right
neighbour ``(rank + 1) % n`` and receives only from its left ``(rank - 1) % n``. The
buffer is cut into ``n`` blocks, ``blocks(buf.size, n)[b]`` being the ``(lo, hi)`` bounds
of block ``b`` (nearly equal; some may be empty when the buffer has fewer elements than
there are ranks). Every function below runs on every rank at once, with

- ``ch.rank``, ``ch.size``: this rank and ``n``;
- ``ch.send(peer, view)``: send a 1-D view (returns at once: it never waits for ``peer``);
- ``ch.recv_into(peer, out)``: receive exactly ``out.size`` elements from ``peer``;
- ``ch.recv_reduce(peer, acc, op)``: receive ``acc.size`` elements and combine them into
  ``acc`` in place (``acc = acc op incoming``; ``op`` is a ReduceOp, SUM or MAX...).

``buf`` is the flat 1-D array of this rank (a view: work in place, slice it, never
rebind it). Every rank must send and receive the same number of elements that its
neighbours expect, in the same order, or the call fails on its deadline.

Bandwidth: a rank sends ``n - 1`` blocks in a reduce-scatter and ``n - 1`` in an
all-gather, so an all-reduce sends ``2(n-1)/n`` of the buffer per rank, whatever ``n`` is.

The project's version is ``sparkgrad/comms/algorithms/ring.py`` (one ``ring_pipeline``
that also cuts blocks into segments so the steps overlap). Check yours:
``python -m pytest -m exercise_ring --learner``.
"""

from __future__ import annotations

from typing import Any

from exercises.reference import ReduceOp, blocks  # noqa: F401


def ring_reduce_scatter(ch: Any, buf: Any, op: Any) -> None:
    """Reduce ``buf`` over the ranks so that block ``r`` of rank ``r`` holds the result.

    ``n - 1`` steps. At step ``s`` (0, 1, ...) rank ``r`` sends block ``(r - 1 - s) % n``
    to the right and receives block ``(r - 2 - s) % n`` from the left, reducing it into
    its own copy of that block. A block picks up one more rank's contribution per hop, so
    after ``n - 1`` hops the block ``(r - n) % n = r`` of rank ``r`` is complete. (What the
    other blocks hold afterwards does not matter: partial results.)
    """
    raise NotImplementedError("exercise: ring_reduce_scatter in exercises/ch03_ring_all_reduce.py")


def ring_all_gather(ch: Any, buf: Any) -> None:
    """``buf`` holds ``n`` blocks, block ``r`` filled by rank ``r``: fill all the others.

    ``n - 1`` steps. At step ``s`` rank ``r`` sends block ``(r - s) % n`` to the right and
    receives block ``(r - s - 1) % n`` from the left, into place: the block it just
    received is the one it forwards next.
    """
    raise NotImplementedError("exercise: ring_all_gather in exercises/ch03_ring_all_reduce.py")


def ring_all_reduce(ch: Any, buf: Any, op: Any) -> None:
    """Reduce ``buf`` over the ranks, in place on every rank: ``2(n - 1)`` steps in all.

    A reduce-scatter leaves block ``r`` complete on rank ``r`` — exactly what an
    all-gather starts from. (With one rank there is nothing to do.)
    """
    raise NotImplementedError("exercise: ring_all_reduce in exercises/ch03_ring_all_reduce.py")
