"""The seedable random generator behind ``randn``, ``rand``, dropout and weight init.

Numbers are always drawn on the CPU with NumPy's PCG64 and then moved to the device, so
the same seed gives the same weights on ``cpu`` and ``cuda`` and on every rank.

The generator is per thread, like the grad-mode switch: ranks running as threads of one
process (the ``threads`` transport) each call ``manual_seed(seed)`` and build their model,
and one rank's draws must not interleave with another's. In a single-threaded program this
is exactly PyTorch's global generator. A thread that never seeds starts from seed 0.
"""

from __future__ import annotations

import threading

import numpy as np

_local = threading.local()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed this thread's generator (as ``torch.manual_seed``) and return it."""
    _local.generator = np.random.default_rng(int(seed))
    return _local.generator


def default_generator() -> np.random.Generator:
    """The generator that factories and initialisers draw from (this thread's)."""
    generator = getattr(_local, "generator", None)
    return generator if generator is not None else manual_seed(0)


def get_rng_state() -> dict:
    """The generator state as a JSON-friendly dict (stored in checkpoints)."""
    return default_generator().bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    default_generator().bit_generator.state = state
