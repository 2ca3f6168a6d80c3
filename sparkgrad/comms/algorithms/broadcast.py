"""Broadcast: the root's buffer ends up on every rank.

- pipelined chain: ranks in a line starting at the root, each forwards every segment to
  the next as soon as it has it; for ``k`` segments it takes ``k + n - 2`` segment times,
  close to one message time on large buffers (NCCL's ring broadcast);
- binomial tree: the set of ranks holding the data doubles every step, ``ceil(log2 n)``
  steps of the whole buffer; best for small messages.
"""

from __future__ import annotations

from typing import Any


def chain_broadcast(ch: Any, buf: Any, root: int) -> None:
    """Pipelined chain ``root -> root+1 -> ... -> root-1``, segment by segment."""
    n = ch.size
    pos = (ch.rank - root) % n
    prev, nxt = (ch.rank - 1) % n, (ch.rank + 1) % n
    for seg in ch.segments(buf):
        if pos > 0:
            ch.recv_into(prev, seg)
        if pos < n - 1:
            ch.send(nxt, seg)


def binomial_broadcast(ch: Any, buf: Any, root: int) -> None:
    """Binomial tree: relative rank ``v`` receives from ``v - lowbit(v)``, then sends to
    ``v + m`` for every power of two ``m`` below ``lowbit(v)``."""
    n = ch.size
    v = (ch.rank - root) % n
    mask = 1
    while mask < n:
        if v & mask:
            ch.recv_into((v - mask + root) % n, buf)
            break
        mask <<= 1
    mask >>= 1
    while mask > 0:
        if v + mask < n:
            ch.send((v + mask + root) % n, buf)
        mask >>= 1
