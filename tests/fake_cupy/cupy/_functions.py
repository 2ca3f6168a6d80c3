"""``cupy.<function>`` of the stand-in: the NumPy function of the same name, run on storage.

Device arguments are unwrapped, NumPy arrays refused with CuPy's ``TypeError``, results
wrapped (NumPy scalars become 0-d device arrays, as CuPy's reductions return). The
conversions that *do* cross to the device (``asarray``, ``array`` ...) and the functions
whose output size depends on device data (``nonzero``, ``unique`` ...) are written out in
``__init__``; everything else goes through :func:`numpy_function`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from . import _ledger
from ._ndarray import SHAPE_KEYS, host_param, index, unwrap, wrap

# output size known only once the device has computed it: the host waits (CuPy syncs)
SYNCING = {"nonzero", "argwhere", "flatnonzero", "unique", "extract", "compress", "trim_zeros"}
# NumPy answers these with Python values; CuPy with 0-d device arrays
AS_DEVICE_SCALAR = {"allclose", "array_equal", "array_equiv"}
# functions whose later positional arguments are host parameters (shapes, axes, pads)
SHAPE_FUNCS = set(
    """transpose reshape broadcast_to tile pad expand_dims moveaxis squeeze
split array_split roll flip rot90 swapaxes sum mean max min amax amin prod any all std var
argmax argmin cumsum cumprod repeat zeros ones empty full""".split()
)
SHAPE_FIRST = {"zeros", "ones", "empty", "full"}  # the shape comes first


class ufunc:  # noqa: N801 - CuPy's name
    """A NumPy ufunc on device arrays: called, or ``at``/``reduce``/``accumulate``/``outer``."""

    def __init__(self, np_ufunc: np.ufunc) -> None:
        self._u = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs

    def _run(self, method: str, args: Any, kwargs: Any) -> Any:
        outs = kwargs.get("out")
        result = getattr(self._u, method)(*unwrap(args), **unwrap(kwargs))
        if method == "at":
            return None
        if outs is not None:
            return outs
        return wrap(result)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._run("__call__", args, kwargs)

    def at(self, a: Any, indices: Any, *args: Any, **kwargs: Any) -> None:
        """``a[indices] op= b``: a host index array is copied to the device (as CuPy does)."""
        self._u.at(unwrap(a), index(indices), *unwrap(args), **unwrap(kwargs))

    def reduce(self, *args: Any, **kwargs: Any) -> Any:
        return self._run("reduce", args, kwargs)

    def accumulate(self, *args: Any, **kwargs: Any) -> Any:
        return self._run("accumulate", args, kwargs)

    def outer(self, *args: Any, **kwargs: Any) -> Any:
        return self._run("outer", args, kwargs)

    def __repr__(self) -> str:
        return f"<ufunc '{self.__name__}' (sparkgrad's CuPy stand-in)>"


@functools.cache
def numpy_function(func: Any, name: str) -> Any:
    """``func`` (a NumPy function) on device arrays."""
    if isinstance(func, np.ufunc):
        return ufunc(func)

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        if name in SYNCING or (name == "where" and len(args) + len(kwargs) == 1):
            _ledger.record("sync", f"{name}() (result size)")
        out = kwargs.get("out")
        first = 0 if name in SHAPE_FIRST else 1
        args = tuple(
            host_param(a) if name in SHAPE_FUNCS and i >= first else unwrap(a)
            for i, a in enumerate(args)
        )
        kwargs = {k: host_param(v) if k in SHAPE_KEYS else unwrap(v) for k, v in kwargs.items()}
        result = func(*args, **kwargs)
        if out is not None:
            return out
        if name in AS_DEVICE_SCALAR:
            return wrap(np.asarray(result))
        return wrap(result)

    return run
