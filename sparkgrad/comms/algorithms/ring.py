"""Ring algorithms: every rank talks only to its two neighbours.

Ranks sit on a ring ``0 -> 1 -> ... -> n-1 -> 0``; at every step a rank sends one block to
its right neighbour and receives one from its left. Every link carries the same bytes at
the same time, which is why the ring reaches the full link bandwidth on large messages.

- reduce-scatter: ``n-1`` steps; a block picks up one more rank's contribution per hop,
  so after ``n-1`` hops one rank holds it fully reduced;
- all-gather: ``n-1`` steps passing the finished blocks around;
- all-reduce = reduce-scatter + all-gather: ``2(n-1)`` steps, each rank sends
  ``2(n-1)/n`` of the buffer — optimal in bandwidth.

The block a rank sends at step ``s+1`` is exactly the block it received (and reduced) at
step ``s``. So blocks are cut into segments and each segment is forwarded as soon as it is
ready: the steps overlap like a pipeline, and a large message never waits at a step
boundary. Block ``b`` is always reduced in ring order starting from its first sender, a
fixed order: the sums are bit-identical from run to run and on every rank.

Once the reducing steps are over, every block still to come is only copied into place,
so the receiving side is told all of their destinations at once (``ch.post_ahead``): a
segment that arrives early lands where it belongs instead of in a spare buffer.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.comms.algorithms.layout import blocks
from sparkgrad.comms.reduce_ops import ReduceOp


def ring_pipeline(
    ch: Any, buf: Any, first_send: int, steps: int, reduce_steps: int, op: ReduceOp | None
) -> None:
    """``steps`` chained ring steps over the ``n`` blocks of ``buf``.

    Step 0 sends block ``first_send``; step ``s`` receives block ``first_send - s - 1``
    (mod ``n``) from the left, reduces it into ``buf`` for the first ``reduce_steps`` steps
    (copies it after that) and forwards each segment to the right as the next step's send.
    """
    n = ch.size
    if n == 1 or steps == 0:
        return
    right, left = (ch.rank + 1) % n, (ch.rank - 1) % n
    bounds = blocks(buf.size, n)
    lo, hi = bounds[first_send % n]
    for seg in ch.segments(buf[lo:hi]):
        ch.send(right, seg)
    for s in range(steps):
        if s == reduce_steps:  # all reduced blocks are sent: the rest only lands in place
            later = [bounds[(first_send - t - 1) % n] for t in range(s, steps)]
            ch.post_ahead(left, [g for lo, hi in later for g in ch.segments(buf[lo:hi])])
        lo, hi = bounds[(first_send - s - 1) % n]
        for seg in ch.segments(buf[lo:hi]):
            if s < reduce_steps:
                ch.recv_reduce(left, seg, op)
            else:
                ch.recv_into(left, seg)
            if s < steps - 1:
                ch.send(right, seg)


def ring_all_reduce(ch: Any, buf: Any, op: ReduceOp) -> None:
    """All-reduce ``buf`` in place: reduce-scatter then all-gather, as one pipeline.

    Rank ``r`` first sends its own block ``r``; after ``n-1`` reducing steps it holds
    block ``r+1`` fully reduced, which the ``n-1`` copying steps pass around.
    """
    ring_pipeline(ch, buf, ch.rank, 2 * (ch.size - 1), ch.size - 1, op)


def ring_reduce_scatter(ch: Any, buf: Any, op: ReduceOp) -> None:
    """Reduce ``buf`` (``n`` equal blocks) so that block ``r`` of rank ``r`` holds the result.

    ``buf`` is scratch: the other blocks hold partial results afterwards.
    """
    ring_pipeline(ch, buf, ch.rank - 1, ch.size - 1, ch.size - 1, op)


def ring_all_gather(ch: Any, buf: Any) -> None:
    """``buf`` holds ``n`` equal blocks, block ``r`` filled by rank ``r``; fill all the others."""
    ring_pipeline(ch, buf, ch.rank, ch.size - 1, 0, None)
