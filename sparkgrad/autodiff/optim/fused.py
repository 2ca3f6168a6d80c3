"""``axpy``: ``y += alpha * x`` in place, rounded once as PyTorch rounds it.

PyTorch's CPU kernels compute ``y.add_(x, alpha=a)`` (and ``lerp_``, and the weight decay
``g.add(p, alpha=wd)``) with a *fused multiply-add*: ``y + a*x`` is computed exactly and
rounded once. NumPy has no fused multiply-add, so ``y += a * x`` rounds twice (the
product, then the sum) and lands one bit away from PyTorch in about one element in ten.

BLAS ``axpy`` (``y = alpha*x + y``) is the fused operation and makes one pass over memory
instead of two. So, on the CPU, we call it through SciPy, with two precautions:

- slices of at most :data:`CHUNK` (< 10 000) elements: up to that length OpenBLAS stays on
  the calling thread. Longer calls wake helper threads, and SciPy's OpenBLAS is not
  NumPy's: right after a matrix product NumPy's BLAS threads still spin on the cores, and
  a training step measured 5-15x slower with both pools awake on 2 cores.
- OpenBLAS's vector kernels fuse whole blocks of 16 to 64 elements, but finish the last
  ``n % block`` elements with scalar code that rounds twice (seen on AVX-512 machines).
  So float32 calls cover a whole number of blocks (:data:`BLOCK`), and the few elements
  left over are computed in float64: the product of two float32 is exact there, and the
  sum is rounded to float32 as a fused multiply-add would round it (but for one case in
  ~2**29, when the float64 sum lands exactly halfway between two float32 neighbours).

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

BLOCK = 64  # a multiple of every OpenBLAS axpy kernel's block: no scalar tail inside
CHUNK = 156 * BLOCK  # 9 984: OpenBLAS runs axpy single-threaded up to 10 000 elements


def axpy(alpha: float, x: Any, y: Any, scratch: Any) -> None:
    """``y += alpha * x`` in place. ``scratch`` (shaped like ``y``, may be ``x``) is only
    used by the fallback path, to hold ``alpha * x`` without allocating."""
    blas = _AXPY.get(y.dtype) if type(y) is np.ndarray and x.dtype == y.dtype else None
    if blas is not None and y.flags.c_contiguous and y.flags.writeable:
        xf, yf, n = np.ascontiguousarray(x).reshape(-1), y.reshape(-1), y.size  # views
        body = n - n % BLOCK if y.dtype == np.float32 else n
        for start in range(0, body, CHUNK):  # blas(x, y, n, a, offx, incx, offy, incy)
            out = blas(xf, yf, min(CHUNK, body - start), alpha, start, 1, start, 1)
            if out is not yf:  # SciPy had to copy y: write the result back
                yf[...] = out
        if body < n:
            _fma_float32(alpha, xf[body:], yf[body:])
        return
    y += array_module(y).multiply(x, alpha, out=scratch)


def _fma_float32(alpha: float, x: np.ndarray, y: np.ndarray) -> None:
    """``y = fma(alpha, x, y)`` for a few float32 elements, through float64."""
    product = x.astype(np.float64) * np.float64(np.float32(alpha))  # exact: 24 + 24 bits
    y[...] = (product + y).astype(np.float32)
