"""``sparkgrad.backends.mps``: Apple's Metal backend, which sparkgrad does not have."""

from __future__ import annotations


def is_available() -> bool:
    """Always False: sparkgrad runs on NumPy (cpu) and CuPy (cuda) only."""
    return False


def is_built() -> bool:
    """Always False, for the same reason."""
    return False
