"""Evenly spaced values: ``arange``, ``linspace``, ``logspace``, computed as PyTorch does.

``linspace(start, end, steps)`` is not ``start + i·step`` all the way: rounding would make
the last value miss ``end``. PyTorch (``RangeFactoriesKernel.cpp``) counts the first half
up from ``start`` and the second half down from ``end``::

    step = (end - start) / (steps - 1)              # in the output dtype
    x[i] = start + step·i              for i <  steps // 2
    x[i] = end - step·(steps - 1 - i)  for i >= steps // 2

so both ends are exact. One more detail decides the last bit: the C++ compiler fuses
``start + step·i`` into one *fused multiply-add* (one rounding instead of two). Emulating
that (:func:`_fused`) gives PyTorch's float32 and float64 values bit for bit (checked on
a million random values); without it about one value in five differs by one ulp.

``logspace`` is ``base ** linspace`` with the exponent in float64, unfused (that code is
compiled outside the FMA kernels) and the power from the C library: bit for bit as torch
again. ``arange`` computes ``start + i·step`` per element in float64 and rounds once, as
torch's scalar loop; torch's SIMD loop restarts that sum every 8 elements, so its last bit
can differ there (never by more than one ulp of the larger end). Values are computed on
the CPU with NumPy and then moved, so every device gets the same numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import to_device
from sparkgrad.autodiff.device import resolve
from sparkgrad.autodiff.dtypes import as_dtype, get_default_dtype
from sparkgrad.autodiff.tensor import Tensor

__all__ = ["arange", "linspace", "logspace"]


# ---- a*b + c with one rounding (the fused multiply-add the C++ kernels use) --------------
def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``hi + lo == a + b`` exactly, ``hi`` the rounded sum (Knuth's TwoSum)."""
    hi = a + b
    bb = hi - a
    return hi, (a - (hi - bb)) + (b - bb)


def _two_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``hi + lo == a·b`` exactly (Dekker's product with Veltkamp's split)."""
    hi = a * b

    def split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = 134217729.0 * x  # 2**27 + 1
        high = c - (c - x)
        return high, x - high

    ah, al = split(a)
    bh, bl = split(b)
    return hi, ((ah * bh - hi) + ah * bl + al * bh) + al * bl


def _round_to_odd_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a + b`` rounded *to odd*: truncated, with the last bit set when anything was lost.

    A value rounded to odd with two extra bits rounds to nearest correctly a second time,
    which is how the fused results below avoid double-rounding errors at ties.
    """
    hi, lo = _two_sum(a, b)
    even = (hi.view(np.int64) & 1) == 0
    return np.where((lo != 0) & even, np.nextafter(hi, np.where(lo > 0, np.inf, -np.inf)), hi)


def _fused(a: Any, b: np.ndarray, c: Any, dtype: np.dtype) -> np.ndarray:
    """``a·b + c`` rounded once to ``dtype`` (float32 or float64; ``b`` holds integers)."""
    a, b, c = (np.asarray(v, dtype=np.float64) for v in (a, b, c))
    b, a, c = np.broadcast_arrays(b, a, c)
    if dtype == np.float32:
        # a (24 bits) times an integer below 2**29 is exact in float64; the sum rounded to
        # odd in float64 (53 bits) then rounds to nearest float32 correctly.
        return _round_to_odd_sum(a * b, c).astype(np.float32)
    # float64: Boldo and Melquiond's emulation (exact product, TwoSum, one sum to odd)
    uh, ul = _two_product(a, b)
    th, tl = _two_sum(c, uh)
    return th + _round_to_odd_sum(tl, ul)


def _pow(base: float, exponent: float) -> float:
    """C's ``pow`` (Python's ``math.pow``), with C's inf/NaN where Python raises instead."""
    try:
        return math.pow(base, exponent)
    except (OverflowError, ValueError):
        return float(np.power(base, exponent))


_libm_pow = np.frompyfunc(_pow, 2, 1)


# ---- linspace --------------------------------------------------------------------------
def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, Tensor) else value


def _linspace_values(start: Any, end: Any, steps: int, dtype: np.dtype) -> np.ndarray:
    i = np.arange(steps)
    lower = i < steps // 2
    k = np.where(lower, i, steps - 1 - i)  # distance from the end counted from
    if dtype.kind == "f":
        s, e = dtype.type(start), dtype.type(end)
        step = (e - s) / dtype.type(steps - 1)  # rounded in the output dtype, as torch
        if dtype == np.float16:  # c10::Half: the product in float, each result in half
            product = (np.float32(step) * k.astype(np.float32)).astype(np.float16)
            return np.where(lower, s + product, e - product)
        return np.where(lower, _fused(step, k, s, dtype), _fused(-step, k, e, dtype))
    # integer dtypes: start and end in the dtype, the step in float64, truncated at the end
    s, e = np.int64(start), np.int64(end)
    step = (np.float64(e) - np.float64(s)) / (steps - 1)
    values = np.where(lower, _fused(step, k, s, np.float64), _fused(-step, k, e, np.float64))
    return values.astype(dtype)


def linspace(
    start: Any,
    end: Any,
    steps: int,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """``steps`` values from ``start`` to ``end``, both included (default dtype)."""
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool):
        raise TypeError(f"linspace(): argument 'steps' must be int, not {type(steps).__name__}")
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    dtype = as_dtype(get_default_dtype() if dtype is None else dtype)
    start, end = _scalar(start), _scalar(end)
    if steps <= 1:
        values = np.full(steps, start).astype(dtype)
    else:
        values = _linspace_values(start, end, int(steps), dtype)
    return Tensor(to_device(values, resolve(device)), requires_grad=requires_grad)


def logspace(
    start: Any,
    end: Any,
    steps: int,
    base: float = 10.0,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """``base ** x`` for ``steps`` exponents ``x`` from ``start`` to ``end`` (default dtype).

    As torch: the exponent is ``start + step·i`` (from the nearer end) in float64 with
    ``start``/``end`` first rounded to the output dtype, the power in float64, then rounded.
    """
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool):
        raise TypeError(f"logspace(): argument 'steps' must be int, not {type(steps).__name__}")
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    dtype = as_dtype(get_default_dtype() if dtype is None else dtype)
    start, end, base = _scalar(start), _scalar(end), float(base)
    if steps <= 1:
        exponents = np.full(steps, float(start))
    else:
        s, e = dtype.type(start), dtype.type(end)  # int dtypes truncate, as torch
        step = np.float64(e - s) / (steps - 1)
        i = np.arange(steps)
        lower = i < steps // 2
        k = np.where(lower, i, steps - 1 - i)
        # not fused here: torch's logspace is compiled outside the FMA-enabled kernels
        exponents = np.where(lower, np.float64(s) + step * k, np.float64(e) - step * k)
    # the C library's pow, as std::pow: NumPy's SIMD np.power differs in the last bit
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN, silently as torch
        values = _libm_pow(base, exponents).astype(np.float64)
        if dtype == np.float16:  # double -> float -> half, as c10::Half's constructor does
            values = values.astype(np.float32)
        values = values.astype(dtype)
    return Tensor(to_device(values, resolve(device)), requires_grad=requires_grad)


# ---- arange ------------------------------------------------------------------------------
def arange(
    start: Any = 0,
    end: Any = None,
    step: Any = 1,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """``start, start + step, ...`` up to (not including) ``end``: ``arange(5)``,
    ``arange(2, 10, 2)``. All-integer arguments give int64, any float the default dtype."""
    if end is None:
        start, end = 0, start
    start, end, step = _scalar(start), _scalar(end), _scalar(step)
    if dtype is None:
        integral = all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (start, end, step)
        )
        dtype = np.int64 if integral else get_default_dtype()
    dtype = as_dtype(dtype)
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (step > 0 and end < start) or (step < 0 and end > start):
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    size = math.ceil((float(end) - float(start)) / float(step))
    i = np.arange(size)
    if dtype.kind == "f":  # accumulate in float64 (torch's CPU accumulate type), round once
        values = _fused(float(step), i, float(start), np.float64)
        if dtype == np.float16:
            values = values.astype(np.float32)
        values = values.astype(dtype)
    else:  # integers: start and step in the dtype, as torch (arange(0.5, 3, dtype=int64))
        values = (np.int64(start) + np.int64(step) * i).astype(dtype)
    return Tensor(to_device(values, resolve(device)), requires_grad=requires_grad)
