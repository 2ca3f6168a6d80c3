"""``axpy``, ``lerp``, ``addcmul``: the fused updates of the optimizers, rounded as PyTorch's.

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

On the GPU, ``axpy`` is one CuPy ``ElementwiseKernel`` computing CUDA's ``fma(a, x, y)``:
one pass, rounded once, as PyTorch's CPU kernel. Everywhere else (no SciPy, non-contiguous
``y``, mixed dtypes) two array ops do the same maths with the extra rounding. Either way
``y`` is updated in place.

``addcmul`` (``y.addcmul_(x1, x2, value=v)``, the running averages of squared gradients
in Adam, RMSprop, Adadelta and Adagrad) is fused as well: PyTorch's compiled kernel is
``fma(v * x1, x2, y)``, the product ``v * x1`` rounded, the rest rounded once. BLAS has no
element-wise fused multiply-add, so float32 goes through float64 as above, in slices of
:data:`WIDE_CHUNK` elements and one float64 buffer per thread.
"""

from __future__ import annotations

import threading
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
    xp = array_module(y)
    if xp is not np and x.dtype == y.dtype and y.dtype in (np.float32, np.float64):
        _cuda_axpy(xp)(y.dtype.type(alpha), x, y)  # a NumPy scalar: typed, not copied over
        return
    y += xp.multiply(x, alpha, out=scratch)


_CUDA_AXPY: list[Any] = []  # the compiled kernel, made on first use


def _cuda_axpy(cp: Any) -> Any:
    """``y = fma(alpha, x, y)`` as a CuPy kernel (float and double overloads of CUDA's fma)."""
    if not _CUDA_AXPY:
        _CUDA_AXPY.append(
            cp.ElementwiseKernel("T alpha, T x", "T y", "y = fma(alpha, x, y)", "sparkgrad_axpy")
        )
    return _CUDA_AXPY[0]


def _fma_float32(alpha: float, x: np.ndarray, y: np.ndarray) -> None:
    """``y = fma(alpha, x, y)`` for a few float32 elements, through float64."""
    product = x.astype(np.float64) * np.float64(np.float32(alpha))  # exact: 24 + 24 bits
    y[...] = (product + y).astype(np.float32)


def lerp(start: Any, end: Any, weight: float, scratch: Any) -> None:
    """``start += weight * (end - start)`` in place, as ``torch.Tensor.lerp_`` computes it.

    PyTorch picks one of two forms by the size of the weight, each one fused multiply-add,
    so that ``weight = 1`` lands exactly on ``end``::

        start + weight * (end - start)          if |weight| < 0.5
        end - (1 - weight) * (end - start)      otherwise

    ``weight`` is rounded to ``start``'s dtype first, as PyTorch does; ``scratch`` (shaped
    like ``start``) holds ``end - start``.
    """
    xp = array_module(start)
    w = start.dtype.type(weight)
    xp.subtract(end, start, out=scratch)
    if abs(w) < 0.5:
        axpy(w, scratch, start, scratch)
    else:
        start[...] = end
        axpy(-(1 - w), scratch, start, scratch)


WIDE_CHUNK = 8192  # float64 elements per slice of addcmul: 64 KiB, stays in cache
_wide = threading.local()  # one float64 buffer per thread (ranks may run as threads)


def addcmul(y: Any, x1: Any, x2: Any, value: float, scratch: Any) -> None:
    """``y += value * x1 * x2`` in place, as ``torch.Tensor.addcmul_`` rounds it on the CPU:
    ``fma(value * x1, x2, y)``. ``scratch`` (shaped like ``y``, may be ``x1``) holds
    ``value * x1``."""
    xp = array_module(y)
    if value == 1:
        scaled = x1
    else:
        scaled = xp.multiply(x1, value, out=scratch)
    exact = all(type(a) is np.ndarray and a.dtype == np.float32 for a in (y, scaled, x2))
    flat = _flat_views(y, scaled, x2) if exact and y.flags.writeable else None
    if flat is None:  # CuPy, float64, mixed layouts: two rounded ops
        if scaled is not scratch:
            scaled = xp.multiply(x1, 1, out=scratch)
        scratch *= x2
        y += scratch
        return
    yf, sf, x2f = flat
    wide = getattr(_wide, "buffer", None)
    if wide is None:
        wide = _wide.buffer = np.empty(WIDE_CHUNK, dtype=np.float64)
    for start in range(0, yf.size, WIDE_CHUNK):
        stop = min(start + WIDE_CHUNK, yf.size)
        w = wide[: stop - start]
        np.multiply(sf[start:stop], x2f[start:stop], out=w, dtype=np.float64)  # exact
        w += yf[start:stop]  # rounded once to float64 ...
        yf[start:stop] = w  # ... and once to float32


def _flat_views(*arrays: Any) -> list[Any] | None:
    """1-D views of arrays that share one contiguous layout (C, or F as its transpose)."""
    if all(a.flags.c_contiguous for a in arrays):
        return [a.reshape(-1) for a in arrays]
    if all(a.flags.f_contiguous for a in arrays):
        return [a.T.reshape(-1) for a in arrays]
    return None


def penalized_gradient(
    grad: Any, param: Any, weight_decay: float, maximize: bool, a: Any, b: Any
) -> Any:
    """The gradient every optimizer starts from: ``-g`` if ``maximize``, then
    ``+ weight_decay * p`` (the L2 penalty), as ``torch.optim`` computes them.

    ``grad`` (``p.grad``, shared with buckets and hooks) is never written: a changed gradient
    lives in the scratch array ``a`` (``b`` is axpy's scratch). Returns ``grad`` itself when
    neither applies, else ``a``.
    """
    if maximize:
        grad = array_module(grad).negative(grad, out=a)
    if weight_decay != 0:
        if grad is not a:
            a[...] = grad
            grad = a
        axpy(weight_decay, param, a, b)  # g + weight_decay * p
    return grad
