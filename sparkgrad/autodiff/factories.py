"""Ways to make tensors: from data, filled with a value, or drawn from the seeded generator."""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import DEFAULT_DTYPE, get_array_module, normalize_device, to_device
from sparkgrad.autodiff.random import default_generator
from sparkgrad.autodiff.tensor import Tensor


def tensor(
    data: Any, requires_grad: bool = False, dtype: Any = None, device: str | None = "cpu"
) -> Tensor:
    """A new tensor from a list, scalar or array (copied, as ``torch.tensor`` does)."""
    if isinstance(data, Tensor):
        data = data.array
    out = Tensor(data, requires_grad=False, dtype=dtype, device=normalize_device(device))
    if hasattr(data, "shape") and out.array is data:
        out.array = out.array.copy()
    if requires_grad:
        out.requires_grad_(True)
    return out


def _shape(size: tuple[Any, ...]) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(size[0])
    return tuple(size)


def _filled(kind: str, size: tuple, dtype: Any, device: str, requires_grad: bool) -> Tensor:
    xp = get_array_module(device)
    array = getattr(xp, kind)(_shape(size), dtype=dtype or DEFAULT_DTYPE)
    return Tensor(array, requires_grad=requires_grad)


def zeros(
    *size: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False
) -> Tensor:
    return _filled("zeros", size, dtype, device, requires_grad)


def ones(*size: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    return _filled("ones", size, dtype, device, requires_grad)


def empty(
    *size: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False
) -> Tensor:
    return _filled("empty", size, dtype, device, requires_grad)


def full(
    size: Any,
    fill_value: float,
    dtype: Any = None,
    device: str = "cpu",
    requires_grad: bool = False,
) -> Tensor:
    xp = get_array_module(device)
    size = (size,) if isinstance(size, int) else tuple(size)
    if dtype is None:  # as torch.full: bool -> bool, int -> int64, float -> float32
        if isinstance(fill_value, bool):
            dtype = np.bool_
        else:
            dtype = np.int64 if isinstance(fill_value, int) else DEFAULT_DTYPE
    return Tensor(xp.full(size, fill_value, dtype=dtype), requires_grad=requires_grad)


def zeros_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def arange(
    start: float,
    end: float | None = None,
    step: float = 1,
    dtype: Any = None,
    device: str = "cpu",
    requires_grad: bool = False,
) -> Tensor:
    """``arange(5)`` or ``arange(2, 10, 2)``; integers give int64, floats float32 (PyTorch)."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_int = all(isinstance(v, int) for v in (start, end, step))
        dtype = np.int64 if is_int else DEFAULT_DTYPE
    xp = get_array_module(device)
    return Tensor(xp.arange(start, end, step, dtype=dtype), requires_grad=requires_grad)


def _drawn(array: np.ndarray, dtype: Any, device: str, requires_grad: bool) -> Tensor:
    """Drawn on the CPU (same numbers on every device), then cast and moved."""
    data = to_device(array.astype(dtype or DEFAULT_DTYPE), normalize_device(device))
    return Tensor(data, requires_grad=requires_grad)


def randn(
    *size: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False
) -> Tensor:
    """Standard normal samples from the generator seeded by ``manual_seed``."""
    return _drawn(default_generator().standard_normal(_shape(size)), dtype, device, requires_grad)


def rand(*size: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) from the generator seeded by ``manual_seed``."""
    return _drawn(default_generator().random(_shape(size)), dtype, device, requires_grad)


def randint(low: int, high: int, size: Any, device: str = "cpu") -> Tensor:
    """Integers in [low, high) as int64."""
    size = (size,) if isinstance(size, int) else tuple(size)
    return _drawn(default_generator().integers(low, high, size), np.int64, device, False)
