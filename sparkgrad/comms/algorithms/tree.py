"""Double binary tree all-reduce (NCCL's tree algorithm).

A binary tree reduces in ``2 log2(n)`` steps instead of the ring's ``2(n-1)``, so it wins
on small messages and many ranks. One tree alone wastes bandwidth: its leaves (half the
ranks) only send, and its root only receives. NCCL therefore runs *two* trees, each on
half of the buffer, built so that the leaves of one are the inner nodes of the other.

Here tree 0 is the heap-shaped tree over ranks ``0..n-1`` (parent of ``v`` is
``(v-1)//2``) and tree 1 is the same shape over the mirrored ranks ``n-1-v``: the inner
nodes of tree 0 are the low ranks, those of tree 1 the high ranks. Each half moves up
its tree (children's partials are added in a fixed order: own, left child, right child)
and then down again, segment by segment, the two trees interleaved so both run at once.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.comms.reduce_ops import ReduceOp


def tree_neighbours(rank: int, size: int, mirrored: bool) -> tuple[int | None, list[int]]:
    """``(parent, children)`` of ``rank`` in the heap tree, or in its mirror image."""

    def to_rank(v: int) -> int:
        return size - 1 - v if mirrored else v

    v = to_rank(rank)  # the mirror is its own inverse
    parent = to_rank((v - 1) // 2) if v > 0 else None
    children = [to_rank(c) for c in (2 * v + 1, 2 * v + 2) if c < size]
    return parent, children


def double_binary_tree_all_reduce(ch: Any, buf: Any, op: ReduceOp) -> None:
    """All-reduce ``buf`` in place: each half goes up, then down, its own binary tree."""
    if ch.size == 1:
        return
    half = buf.size // 2
    trees = [tree_neighbours(ch.rank, ch.size, m) for m in (False, True)]
    segs = [ch.segments(buf[:half]), ch.segments(buf[half:])]
    steps = max(len(segs[0]), len(segs[1]))
    for k in range(steps):  # up: reduce towards the two roots
        for t, (parent, children) in enumerate(trees):
            if k < len(segs[t]):
                for child in children:
                    ch.recv_reduce(child, segs[t][k], op)
                if parent is not None:
                    ch.send(parent, segs[t][k])
    for k in range(steps):  # down: broadcast the roots' results
        for t, (parent, children) in enumerate(trees):
            if k < len(segs[t]):
                if parent is not None:
                    ch.recv_into(parent, segs[t][k])
                for child in children:
                    ch.send(child, segs[t][k])
