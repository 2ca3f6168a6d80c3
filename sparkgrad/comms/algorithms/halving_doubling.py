"""Recursive halving-doubling all-reduce (Rabenseifner's algorithm, as in MPICH and gloo).

With ``p`` a power of two, rank ``r`` exchanges with partner ``r XOR d`` for
``d = p/2, p/4, ..., 1``: each time both keep *half* of their current range, send the
other half to the partner and add what the partner sent (recursive halving =
reduce-scatter in ``log2 p`` steps). Then the same exchanges in reverse order
(``d = 1, 2, ..., p/2``) double the finished range each step (all-gather). Only
``2 log2 p`` messages, and ``2(p-1)/p`` of the buffer sent, as with the ring.

When ``n`` is not a power of two, the ``n - p`` extra ranks first fold their data into
ranks ``0..n-p-1`` and get the result back at the end.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.comms.reduce_ops import ReduceOp


def halving_doubling_all_reduce(ch: Any, buf: Any, op: ReduceOp) -> None:
    """All-reduce ``buf`` in place by recursive halving, then recursive doubling."""
    n, r = ch.size, ch.rank
    if n == 1:
        return
    p = 1 << (n.bit_length() - 1)  # largest power of two <= n
    if r >= p:  # an extra rank: fold in, wait for the result
        ch.send(r - p, buf)
        ch.recv_into(r - p, buf)
        return
    if r < n - p:
        ch.recv_reduce(r + p, buf, op)
    lo, hi = 0, buf.size
    history = []
    d = p // 2
    while d >= 1:  # recursive halving: keep half of the range, reduce it
        partner, mid = r ^ d, (lo + hi) // 2
        keep, give = ((lo, mid), (mid, hi)) if r & d == 0 else ((mid, hi), (lo, mid))
        ch.send(partner, buf[give[0] : give[1]])
        ch.recv_reduce(partner, buf[keep[0] : keep[1]], op)
        history.append((partner, give))
        lo, hi = keep
        d //= 2
    for partner, give in reversed(history):  # recursive doubling: swap finished halves
        ch.send(partner, buf[lo:hi])
        ch.recv_into(partner, buf[give[0] : give[1]])
        lo, hi = min(lo, give[0]), max(hi, give[1])
    if r < n - p:
        ch.send(r + p, buf)
