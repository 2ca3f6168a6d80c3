"""The seedable random generator behind ``randn``, ``rand``, dropout and weight init.

Numbers are always drawn on the CPU with NumPy's PCG64 and then moved to the device, so
the same seed gives the same weights on ``cpu`` and ``cuda`` and on every rank.
"""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator (as ``torch.manual_seed``) and return it."""
    global _generator
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator() -> np.random.Generator:
    """The global generator that factories and initialisers draw from."""
    return _generator


def get_rng_state() -> dict:
    """The generator state as a JSON-friendly dict (stored in checkpoints)."""
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    _generator.bit_generator.state = state
