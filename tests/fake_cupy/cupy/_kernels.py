"""NumPy equivalents of the CUDA kernels sparkgrad compiles with CuPy, by kernel name.

The stand-in cannot run CUDA C, so each ``ElementwiseKernel`` the project defines gets a
NumPy function here computing the same thing (outputs updated in place, as the kernel
writes them). A kernel without an entry raises ``NotImplementedError`` when called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def sparkgrad_axpy(alpha: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``y = fma(alpha, x, y)`` (sparkgrad.autodiff.optim.fused): rounded once in float32
    (the float64 product of two float32 is exact); float64 has no NumPy fma (rounds twice)."""
    if y.dtype == np.float32:
        y[...] = (x.astype(np.float64) * np.float64(alpha) + y).astype(np.float32)
    else:
        y += alpha * x
    return y


def register(kernel: Callable[[str], Callable[[Any], Any]]) -> None:
    """Register every equivalent above with ``cupy._kernel``."""
    kernel("sparkgrad_axpy")(sparkgrad_axpy)
