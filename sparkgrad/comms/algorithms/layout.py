"""How a flat buffer is cut into per-rank blocks (shared by the algorithms)."""

from __future__ import annotations


def blocks(count: int, parts: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` bounds cutting ``count`` elements into ``parts`` nearly equal blocks."""
    return [(count * i // parts, count * (i + 1) // parts) for i in range(parts)]
