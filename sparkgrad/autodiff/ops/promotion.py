"""Type promotion: the dtype a binary op computes in, following PyTorch where NumPy differs.

NumPy 2 treats NumPy scalars and integer arrays "strongly": ``int64 * 0.5`` and
``float32 * np.float64(2)`` give float64. PyTorch gives float32, and PyTorch is the spec,
so :mod:`sparkgrad.autodiff.functional` passes the operands of every binary op (and the
input of float-valued functions such as ``exp``) through here first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import is_floating
from sparkgrad.autodiff.dtypes import get_default_dtype
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ShapeError


def _kind(v: Any) -> str:
    """'f' for floating operands, 'i' for integers and booleans (tensors, arrays, scalars)."""
    dtype = getattr(v, "dtype", None)
    if dtype is not None:
        return "f" if np.dtype(dtype).kind == "c" or is_floating(dtype) else "i"
    return "f" if isinstance(v, float) else "i"


def _as_float(v: Any, dtype: Any) -> Any:
    """An integer operand converted to ``dtype`` (Python numbers are left alone: they're weak)."""
    if isinstance(v, Tensor):
        return Tensor._wrap(v.array.astype(dtype))
    return v.astype(dtype) if hasattr(v, "astype") else v


def _float_dtype_of(v: Any) -> Any:
    """The dtype of a float operand; a Python float stands for the default dtype."""
    dtype = getattr(v, "dtype", None)
    return get_default_dtype() if dtype is None else dtype


def promote(a: Any, b: Any, true_div: bool = False) -> tuple[Any, Any]:
    """PyTorch's type promotion where NumPy's differs.

    NumPy scalars are weak like Python ones (``x * np.float64(2)`` stays float32), an
    integer tensor meeting a float becomes that float's dtype (float32 for a Python float),
    and ``/`` between integers gives float32.
    """
    a = a.item() if isinstance(a, np.generic) else a
    b = b.item() if isinstance(b, np.generic) else b
    ka, kb = _kind(a), _kind(b)
    if ka == "i" and kb == "f":
        a = _as_float(a, _float_dtype_of(b))
    elif ka == "f" and kb == "i":
        b = _as_float(b, _float_dtype_of(a))
    elif true_div and ka == kb == "i":
        a, b = _as_float(a, get_default_dtype()), _as_float(b, get_default_dtype())
    return a, b


def floating(x: Tensor) -> Tensor:
    """Integer input to a float-valued function (exp, log ...) is taken in the default dtype
    (float32 unless ``sg.set_default_dtype`` changed it), as torch."""
    if x.array.dtype.kind == "c" or is_floating(x.array.dtype):
        return x
    return Tensor._wrap(x.array.astype(get_default_dtype()))


def apply_binary(fn: type, a: Any, b: Any, symbol: str) -> Tensor:
    """Apply a broadcasting binary op, turning NumPy's broadcast error into a ShapeError."""
    a, b = promote(a, b, true_div=fn.__name__ == "Div")
    try:
        return fn.apply(a, b)
    except ValueError as exc:
        if "broadcast" not in str(exc):
            raise
        sa = a.shape if hasattr(a, "shape") else ()
        sb = b.shape if hasattr(b, "shape") else ()
        raise ShapeError(
            f"shapes {tuple(sa)} and {tuple(sb)} cannot be broadcast for '{symbol}'"
        ) from None
