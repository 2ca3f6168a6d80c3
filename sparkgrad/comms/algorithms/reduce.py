"""Reduce: combine every rank's buffer onto the root (the others keep their input).

- pipelined chain: ``root+1 -> root+2 -> ... -> root``; each rank adds its own segment to
  the partial it received and forwards it (NCCL's ring reduce), ``k + n - 2`` segment times;
- binomial tree: the mirror image of the binomial broadcast, ``ceil(log2 n)`` steps.

``buf`` is the root's output or a scratch copy on the other ranks; partials are always
combined as ``acc = acc op incoming`` in a fixed order, so the result is deterministic.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.comms.reduce_ops import ReduceOp


def chain_reduce(ch: Any, buf: Any, op: ReduceOp, root: int) -> None:
    """Pipelined chain ending at ``root``: receive a partial, add own segment, pass it on."""
    n = ch.size
    pos = (ch.rank - root - 1) % n  # root+1 starts (pos 0), the root ends (pos n-1)
    prev, nxt = (ch.rank - 1) % n, (ch.rank + 1) % n
    for seg in ch.segments(buf):
        if pos > 0:
            ch.recv_reduce(prev, seg, op)
        if pos < n - 1:
            ch.send(nxt, seg)


def binomial_reduce(ch: Any, buf: Any, op: ReduceOp, root: int) -> None:
    """Binomial tree: relative rank ``v`` adds the partials of ``v + 1, v + 2, v + 4, ...``
    (those below its lowest set bit), then sends its partial to ``v - lowbit(v)``."""
    n = ch.size
    v = (ch.rank - root) % n
    mask = 1
    while mask < n:
        if v & mask:
            ch.send((v - mask + root) % n, buf)
            return
        if v + mask < n:
            ch.recv_reduce((v + mask + root) % n, buf, op)
        mask <<= 1
