"""How a sequence is cut over ``cp`` ranks, and which key blocks a query block may see.

**Non-causal** attention does the same work for every (query, key) pair, so the plain
contiguous split is balanced: rank ``r`` holds positions ``[r·L/cp, (r+1)·L/cp)``.

**Causal** attention is not: with a contiguous split, rank 0's queries see only their own
block while the last rank's see all of them, so rank 0 idles ``cp-1`` of the ``cp`` steps.
The balanced ("zigzag") split cuts the sequence into ``2·cp`` chunks and gives rank ``r``
chunks ``r`` and ``2cp-1-r`` -- one from the cheap front and one from the expensive back::

    L = 8 positions, cp = 2: chunks c0..c3 of 2 positions
    rank 0: c0 c3    (positions 0 1 6 7)
    rank 1: c1 c2    (positions 2 3 4 5)

Every rank then computes the same number of (query chunk, key chunk) blocks. Between a
query chunk ``i`` and a key chunk ``j`` there are only three masks (:func:`block_mask`):
``j < i`` all visible ("full"), ``j == i`` the lower triangle ("causal"), ``j > i`` nothing
("none": the block is skipped, no scores computed -- but the K/V still travel on).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from sparkgrad.errors import ShapeError

BlockMask = Literal["full", "causal", "none"]


def num_chunks(cp: int, balanced: bool) -> int:
    """How many equal chunks the sequence is cut into: ``2·cp`` balanced, else ``cp``."""
    return 2 * cp if balanced else cp


def rank_chunks(rank: int, cp: int, balanced: bool) -> tuple[int, ...]:
    """The chunk indices rank ``rank`` holds, in its local order: ``(r, 2cp-1-r)`` or ``(r,)``."""
    return (rank, 2 * cp - 1 - rank) if balanced else (rank,)


def check_divisible(length: int, cp: int, balanced: bool, what: str = "sequence length") -> int:
    """The chunk length ``L / chunks``; a :class:`ShapeError` when ``L`` does not divide."""
    n = num_chunks(cp, balanced)
    if length % n:
        how = f"2·cp = {n} (balanced causal chunks)" if balanced else f"cp = {n}"
        raise ShapeError(
            f"context parallel: expected a {what} divisible by {how}, found {length} "
            f"(pad the sequence to a multiple of {n})"
        )
    return length // n


def positions(rank: int, cp: int, length: int, balanced: bool) -> np.ndarray:
    """The global positions (``int64``, local order) that ``rank`` holds of ``L`` positions."""
    c = check_divisible(length, cp, balanced)
    return np.concatenate([np.arange(i * c, (i + 1) * c) for i in rank_chunks(rank, cp, balanced)])


def split_sequence(x: Any, rank: int, cp: int, balanced: bool, dim: int = -2) -> Any:
    """This rank's piece of ``x`` (array or Tensor) along ``dim``: its chunks, concatenated."""
    dim = dim % len(x.shape)
    idx = positions(rank, cp, x.shape[dim], balanced)
    return x[(slice(None),) * dim + (idx,)]


def gather_sequence(parts: list[Any], balanced: bool, dim: int = -2) -> np.ndarray:
    """Undo :func:`split_sequence`: the full sequence (NumPy) from the pieces in rank order."""
    cp = len(parts)
    parts = [np.asarray(p) for p in parts]
    dim = dim % parts[0].ndim
    length = sum(p.shape[dim] for p in parts)
    order = np.concatenate([positions(r, cp, length, balanced) for r in range(cp)])
    stacked = np.concatenate(parts, axis=dim)  # local orders, rank after rank
    inverse = np.empty_like(order)
    inverse[order] = np.arange(length)
    return np.take(stacked, inverse, axis=dim)


def block_mask(q_chunk: int, k_chunk: int) -> BlockMask:
    """Causal mask between query chunk ``i`` and key chunk ``j`` of equal length:
    ``j < i`` "full", ``j == i`` "causal" (the diagonal block), ``j > i`` "none" (skip)."""
    if k_chunk < q_chunk:
        return "full"
    return "causal" if k_chunk == q_chunk else "none"
