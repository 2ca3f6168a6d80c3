"""``axpy``: ``y += alpha * x`` in place, rounded once as PyTorch rounds it.

PyTorch's CPU kernels compute ``y.add_(x, alpha=a)`` (and ``lerp_``, and the weight decay
``g.add(p, alpha=wd)``) with a *fused multiply-add*: ``y + a*x`` is computed exactly and
rounded once. NumPy has no fused multiply-add, so ``y += a * x`` rounds twice (the
product, then the sum) and lands one bit away from PyTorch in about one element in ten.

BLAS ``axpy`` (``y = alpha*x + y``) is the fused operation and makes one pass over memory
instead of two. So, on the CPU, we call it through SciPy, in slices of at most 10 000
elements: up to that length OpenBLAS stays on the calling thread, and longer calls wake
helper threads that, on a busy machine, wait for a free core (milliseconds per step).
Everywhere else (CuPy arrays, no SciPy, non-contiguous ``y``) two array ops do the same
maths with the extra rounding. Either way ``y`` is updated in place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module

try:  # SciPy is optional: it only makes the update faster and bit-identical to PyTorch
    from scipy.linalg import blas as _blas

    _AXPY = {np.dtype(np.float32): _blas.saxpy, np.dtype(np.float64): _blas.daxpy}
except ImportError:  # pragma: no cover - depends on the environment
    _AXPY = {}

CHUNK = 10_000  # OpenBLAS runs axpy single-threaded up to this length


def axpy(alpha: float, x: Any, y: Any, scratch: Any) -> None:
    """``y += alpha * x`` in place. ``scratch`` (shaped like ``y``, may be ``x``) is only
    used by the fallback path, to hold ``alpha * x`` without allocating."""
    blas = _AXPY.get(y.dtype) if type(y) is np.ndarray and x.dtype == y.dtype else None
    if blas is not None and y.flags.c_contiguous and y.flags.writeable:
        xf, yf, n = np.ascontiguousarray(x).reshape(-1), y.reshape(-1), y.size  # views
        for start in range(0, n, CHUNK):  # blas(x, y, n, a, offx, incx, offy, incy)
            out = blas(xf, yf, min(CHUNK, n - start), alpha, start, 1, start, 1)
            if out is not yf:  # SciPy had to copy y: write the result back
                yf[...] = out
        return
    y += array_module(y).multiply(x, alpha, out=scratch)
