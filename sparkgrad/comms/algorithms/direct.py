"""Direct algorithms: every piece goes straight from its owner to its destination.

- all_to_all: ``n-1`` rounds of pairwise exchange; in round ``k`` rank ``r`` sends block
  ``r+k`` to rank ``r+k`` and receives block ``r-k`` from rank ``r-k`` (everyone busy,
  no link used twice in a round);
- gather: every rank sends its block to the root, which receives them in rank order;
- scatter: the root sends block ``i`` to rank ``i``.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.comms.algorithms.layout import blocks


def direct_all_to_all(ch: Any, send: Any, out: Any) -> None:
    """Block ``j`` of ``send`` goes to rank ``j``; block ``j`` of ``out`` comes from rank ``j``."""
    n, r = ch.size, ch.rank
    sb, ob = blocks(send.size, n), blocks(out.size, n)
    out[ob[r][0] : ob[r][1]] = send[sb[r][0] : sb[r][1]]
    for k in range(1, n):
        dst, src = (r + k) % n, (r - k) % n
        ch.send(dst, send[sb[dst][0] : sb[dst][1]])
        ch.recv_into(src, out[ob[src][0] : ob[src][1]])


def direct_gather(ch: Any, send: Any, out: Any, root: int) -> None:
    """Block ``i`` of the root's ``out`` receives rank ``i``'s ``send`` (others: ``out`` unused)."""
    if ch.rank != root:
        ch.send(root, send)
        return
    ob = blocks(out.size, ch.size)
    for i in range(ch.size):
        view = out[ob[i][0] : ob[i][1]]
        if i == root:
            view[...] = send
        else:
            ch.recv_into(i, view)


def direct_scatter(ch: Any, send: Any, out: Any, root: int) -> None:
    """Rank ``i``'s ``out`` receives block ``i`` of the root's ``send``."""
    if ch.rank != root:
        ch.recv_into(root, out)
        return
    sb = blocks(send.size, ch.size)
    for i in range(ch.size):
        if i == root:
            out[...] = send[sb[i][0] : sb[i][1]]
        else:
            ch.send(i, send[sb[i][0] : sb[i][1]])
