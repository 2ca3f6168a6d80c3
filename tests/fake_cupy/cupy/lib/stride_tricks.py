"""``cupy.lib.stride_tricks.as_strided``: a strided view of device storage (no copy)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._ndarray import ndarray, wrap


def as_strided(x: ndarray, shape: Any = None, strides: Any = None) -> ndarray:
    """A view of ``x`` with the given shape and byte strides (CuPy: no ``writeable`` flag)."""
    if not isinstance(x, ndarray):
        raise TypeError(f"expected cupy.ndarray, found {type(x)}")
    return wrap(np.lib.stride_tricks.as_strided(x._a, shape, strides))
