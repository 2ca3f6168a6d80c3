"""Dissemination barrier (Hensgen, Finkel & Manber): ``ceil(log2 n)`` rounds, no payload.

In round ``k`` rank ``r`` signals rank ``r + 2^k`` and waits for rank ``r - 2^k``. After
the last round every rank has heard, directly or through others, from every rank, so
nobody leaves before everybody has arrived.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def dissemination_barrier(ch: Any) -> None:
    """Return only once every rank of the channel has entered the barrier."""
    n, r = ch.size, ch.rank
    token, got = np.zeros(1, np.uint8), np.empty(1, np.uint8)
    step = 1
    while step < n:
        ch.send((r + step) % n, token)
        ch.recv_into((r - step) % n, got)
        step <<= 1
