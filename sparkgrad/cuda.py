"""``sparkgrad.cuda``: the GPU questions of ``torch.cuda``, answered by CuPy.

``sg.cuda.is_available()`` is True when CuPy imports and sees a GPU; then
``device="cuda"`` runs every op on it. sparkgrad draws all random numbers from one seeded
generator on the CPU (the same numbers on every device), so ``manual_seed`` and
``manual_seed_all`` here are ``sg.manual_seed``.
"""

from __future__ import annotations

from sparkgrad.autodiff.backend import cuda_device_count, cuda_is_available, get_array_module
from sparkgrad.autodiff.random import manual_seed as _manual_seed

__all__ = [
    "is_available", "device_count", "current_device", "synchronize",
    "manual_seed", "manual_seed_all",
]  # fmt: skip


def is_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    return cuda_is_available()


def device_count() -> int:
    """How many GPUs CuPy sees (0 without CuPy or a GPU)."""
    return cuda_device_count()


def current_device() -> int:
    """The number of the GPU ops run on (CuPy's current device); an error without a GPU."""
    return int(get_array_module("cuda").cuda.runtime.getDevice())


def synchronize(device: object = None) -> None:
    """Wait until every queued GPU kernel has finished (before reading a timer, say)."""
    get_array_module("cuda").cuda.runtime.deviceSynchronize()


def manual_seed(seed: int) -> None:
    """Seed the random generator (the one ``sg.manual_seed`` seeds: there is only one)."""
    _manual_seed(seed)


def manual_seed_all(seed: int) -> None:
    """Seed the random generator for every GPU: the same single generator."""
    _manual_seed(seed)
