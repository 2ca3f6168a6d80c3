"""Host buffers: every collective works on a C-contiguous NumPy array.

Sockets and NumPy reductions need contiguous host memory. :func:`host_buffer` returns
the array itself when it already is one (zero copies: the common case), otherwise a
contiguous host copy plus a function that writes the result back (a strided NumPy
view, or a CuPy array on the GPU: copied to the host and back, one code path).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from sparkgrad.comms.framing import dtype_code
from sparkgrad.errors import CommError


def is_cupy(array: Any) -> bool:
    """True for a CuPy array (without importing CuPy when it is not loaded)."""
    cp = sys.modules.get("cupy")
    return cp is not None and isinstance(array, cp.ndarray)


def host_buffer(array: Any, fill: bool = True) -> tuple[np.ndarray, Callable[[], None] | None]:
    """``(contiguous NumPy array, write_back or None)`` for a NumPy or CuPy ``array``.

    ``fill=False`` for a buffer that is only written (a ``recv``): the host copy starts
    empty instead of copying the old values over (from the GPU: one transfer saved).
    """
    if isinstance(array, np.ndarray):
        dtype_code(array.dtype)  # a clear error for dtypes that cannot travel
        if array.flags.c_contiguous:
            return array, None
        work = np.ascontiguousarray(array) if fill else np.empty(array.shape, array.dtype)
        return work, lambda: np.copyto(array, work)
    if is_cupy(array):
        work = array.get() if fill else np.empty(array.shape, array.dtype)
        dtype_code(work.dtype)

        def write_back() -> None:
            array[...] = sys.modules["cupy"].asarray(work)

        return work, write_back
    raise CommError(
        f"expected a NumPy or CuPy array, found {type(array).__name__}; "
        "sparkgrad.distributed accepts Tensors, sparkgrad.comms takes their .array"
    )


def like(array: Any, host: np.ndarray) -> Any:
    """``host`` moved to the device of ``array`` (a NumPy array stays as it is)."""
    if is_cupy(array):
        return sys.modules["cupy"].asarray(host)
    return host
