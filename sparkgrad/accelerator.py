"""``sparkgrad.accelerator``: ``torch.accelerator``'s device-agnostic questions.

The one accelerator sparkgrad knows is an NVIDIA GPU through CuPy, so the answers are those
of :mod:`sparkgrad.cuda`; the usual tutorial line works unchanged::

    device = sg.accelerator.current_accelerator() if sg.accelerator.is_available() else "cpu"
"""

from __future__ import annotations

from sparkgrad.autodiff.backend import cuda_device_count, cuda_is_available
from sparkgrad.autodiff.device import device

__all__ = ["is_available", "current_accelerator", "device_count"]


def is_available() -> bool:
    """True when an accelerator (a GPU CuPy can use) is present."""
    return cuda_is_available()


def current_accelerator(check_available: bool = False) -> device | None:
    """``sg.device("cuda")`` when a GPU is there, else ``None`` (as torch without one).

    ``check_available`` is accepted as in torch; both ways the answer is ``None`` without a
    usable GPU.
    """
    return device("cuda") if cuda_is_available() else None


def device_count() -> int:
    """How many accelerators there are (GPUs CuPy sees)."""
    return cuda_device_count()
