"""dtypes: PyTorch's names for NumPy's types, and the default floating-point dtype.

sparkgrad's dtypes *are* NumPy's: ``sg.float32`` is ``numpy.float32``, so a tensor's
``t.dtype`` (a ``numpy.dtype``) compares equal to it (``t.dtype == sg.float32``) and every
NumPy function accepts it. PyTorch's other spellings are aliases of the same objects:

=================  ==============  =================  ==============
``sg.float``       float32         ``sg.long``        int64
``sg.double``      float64         ``sg.int``         int32
``sg.half``        float16         ``sg.short``       int16
``sg.bool``        bool            ``sg.uint8``       uint8
=================  ==============  =================  ==============

``bfloat16`` exists only when the ``ml_dtypes`` package is installed (NumPy has no
bfloat16 of its own); complex dtypes are not supported.

The **default dtype** is what a Python float becomes: ``sg.tensor([1.5])``, ``sg.zeros(2)``,
``sg.rand(3)``, new layers' weights, and an integer tensor meeting a float (``i * 0.5``,
``sg.exp(i)``). It starts as float32 and :func:`set_default_dtype` changes it for the whole
process, as ``torch.set_default_dtype`` does.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

__all__ = [
    "float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "bool",
    "float", "double", "half", "long", "int", "short",
    "get_default_dtype", "set_default_dtype", "is_floating_point",
]  # fmt: skip

_default_dtype: type = np.float32


def as_dtype(dtype: Any) -> np.dtype:
    """``dtype`` (``sg.float32``, ``numpy.dtype('float32')``, Python ``float``...) as a
    ``numpy.dtype``; a :class:`TypeError` naming what was found if it is not one."""
    if isinstance(dtype, np.dtype):
        return dtype
    if isinstance(dtype, type) and (issubclass(dtype, np.generic) or dtype in _PYTHON_TYPES):
        return np.dtype(dtype)
    if _bfloat16 is not None and dtype is _bfloat16:
        return np.dtype(dtype)
    raise TypeError(
        f"expected a dtype such as sg.float32 or sg.int64, found {dtype!r} ({type(dtype).__name__})"
    )


def get_default_dtype() -> type:
    """The floating dtype Python floats become (``sg.float32`` unless set otherwise)."""
    return _default_dtype


def set_default_dtype(d: Any) -> None:
    """Make ``d`` (a floating dtype: float32, float64 or float16) the default, as torch.

    Affects every later factory call without ``dtype=``, ``sg.tensor`` of Python floats,
    new layers and int-to-float promotion; existing tensors keep their dtype.
    """
    global _default_dtype
    dtype = as_dtype(d)
    if dtype.kind != "f" and dtype.name != "bfloat16":
        raise TypeError("only floating-point types are supported as the default type")
    _default_dtype = dtype.type


def is_floating_point(input: Any) -> builtins.bool:  # noqa: A002 - torch's argument name
    """True when the tensor's dtype is a floating-point one (float16/32/64, bfloat16)."""
    d = np.dtype(input.dtype)
    return d.kind == "f" or d.name == "bfloat16"


_PYTHON_TYPES = (builtins.float, builtins.int, builtins.bool)  # float64, int64, bool

try:  # bfloat16 only through ml_dtypes (NumPy has none)
    from ml_dtypes import bfloat16 as _bfloat16
except ImportError:
    _bfloat16 = None
else:
    bfloat16 = _bfloat16
    __all__.append("bfloat16")

# The aliases come last: from here on ``float``, ``int`` and ``bool`` in this module are
# dtypes, not the builtins (every use above goes through ``builtins``).
float32 = np.float32
float64 = np.float64
float16 = np.float16
int8 = np.int8
int16 = np.int16
int32 = np.int32
int64 = np.int64
uint8 = np.uint8
bool = np.bool_  # noqa: A001 - torch.bool
float = np.float32  # noqa: A001 - torch.float
double = np.float64
half = np.float16
long = np.int64
int = np.int32  # noqa: A001 - torch.int
short = np.int16
