"""``sparkgrad.backends.cudnn``: the cuDNN switches tutorials set, accepted and unused.

sparkgrad's GPU ops are CuPy kernels, not cuDNN, and they are deterministic already, so
``sg.backends.cudnn.deterministic = True`` and ``benchmark = True`` change nothing.
"""

from __future__ import annotations

enabled = True
benchmark = False
deterministic = False


def is_available() -> bool:
    """Always False: sparkgrad does not use cuDNN."""
    return False
