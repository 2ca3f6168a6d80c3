"""Random tensors: ``rand``, ``randn``, ``randint``, ``randperm`` and their ``*_like`` forms.

Every draw comes from the generator seeded by ``sg.manual_seed`` (:mod:`.random`), on the
CPU, then cast and moved: the same seed gives the same numbers on every device. The
numbers are not PyTorch's (a different generator), the distributions and dtypes are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import is_floating, to_device
from sparkgrad.autodiff.device import resolve
from sparkgrad.autodiff.dtypes import as_dtype, get_default_dtype
from sparkgrad.autodiff.factories import sizes
from sparkgrad.autodiff.random import default_generator
from sparkgrad.autodiff.tensor import Tensor

__all__ = [
    "rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like",
]  # fmt: skip


def _drawn(array: np.ndarray, dtype: np.dtype, device: Any, requires_grad: bool) -> Tensor:
    """Drawn on the CPU (same numbers on every device), then cast and moved."""
    data = to_device(array.astype(dtype, copy=False), resolve(device))
    return Tensor(data, requires_grad=requires_grad)


def _float_dtype(dtype: Any, kernel: str) -> np.dtype:
    dtype = as_dtype(get_default_dtype() if dtype is None else dtype)
    if not is_floating(dtype):  # torch's error: uniform/normal samples need a float dtype
        raise NotImplementedError(f'"{kernel}" not implemented for {dtype} (use a float dtype)')
    return dtype


def _uniform(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Uniform in [0, 1) *in dtype*: float64 draws cut down to the dtype's grid of 2^-bits.

    Rounding instead would turn draws just below 1 into 1.0 (one float16 in 4096), outside
    [0, 1); truncating keeps the interval, as torch's ``(bits & mask) · 2^-bits`` does.
    """
    values = default_generator().random(shape)
    bits = np.finfo(dtype).nmant + 1
    if bits < 53:
        values = np.floor(values * 2.0**bits) * 2.0**-bits
    return values


def rand(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1): ``rand(2, 3)`` or ``rand((2, 3))``."""
    dtype = _float_dtype(dtype, "check_uniform_bounds")
    return _drawn(_uniform(sizes(size), dtype), dtype, device, requires_grad)


def randn(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples (mean 0, variance 1)."""
    dtype = _float_dtype(dtype, "normal_kernel_cpu")
    return _drawn(default_generator().standard_normal(sizes(size)), dtype, device, requires_grad)


def _integers(low: int, high: int, shape: tuple[int, ...]) -> np.ndarray:
    if low >= high:
        raise RuntimeError(
            f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}"
        )
    return default_generator().integers(low, high, shape)


def randint(
    *args: Any,
    size: Any = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Integers drawn uniformly from [low, high): ``randint(high, size)`` or
    ``randint(low, high, size)`` (``size`` a tuple, also as a keyword); int64 by default."""
    if size is None and args:
        *args, size = args
    if size is None or len(args) not in (1, 2):
        raise TypeError(
            "randint() expects (high, size) or (low, high, size), "
            f"found {len(args) + (size is not None)} arguments"
        )
    low, high = (0, args[0]) if len(args) == 1 else args
    shape = sizes((size,) if isinstance(size, int) else tuple(size))
    values = _integers(int(low), int(high), shape)
    return _drawn(values, as_dtype(np.int64 if dtype is None else dtype), device, requires_grad)


def randperm(n: int, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A random permutation of ``0 .. n-1`` (int64 by default)."""
    if n < 0:
        raise RuntimeError(f"Trying to create tensor with negative dimension {n}: [{n}]")
    values = default_generator().permutation(int(n))
    return _drawn(values, as_dtype(np.int64 if dtype is None else dtype), device, requires_grad)


def rand_like(
    input: Tensor,  # noqa: A002 - torch's argument name
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """``rand`` in ``input``'s shape, dtype and device."""
    return rand(
        input.shape,
        dtype=input.dtype if dtype is None else dtype,
        device=input.device if device is None else device,
        requires_grad=requires_grad,
    )


def randn_like(
    input: Tensor,  # noqa: A002
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """``randn`` in ``input``'s shape, dtype and device."""
    return randn(
        input.shape,
        dtype=input.dtype if dtype is None else dtype,
        device=input.device if device is None else device,
        requires_grad=requires_grad,
    )


def randint_like(
    input: Tensor,  # noqa: A002
    low: int = 0,
    high: int | None = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """``randint`` in ``input``'s shape, dtype and device: ``randint_like(x, high)`` or
    ``randint_like(x, low, high)``."""
    if high is None:
        low, high = 0, low
    values = _integers(int(low), int(high), input.shape)
    dtype = as_dtype(input.dtype if dtype is None else dtype)
    return _drawn(values, dtype, input.device if device is None else device, requires_grad)
