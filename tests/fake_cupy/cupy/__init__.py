"""A strict, test-only stand-in for CuPy on the CPU (``SPARKGRAD_FAKE_CUDA=1``).

Never installed, never imported unless asked: the root ``tests/conftest.py`` puts this
folder first on ``sys.path`` and ``PYTHONPATH`` when ``SPARKGRAD_FAKE_CUDA=1`` is set, so
``import cupy`` (here and in every spawned rank or Spark worker) finds it. Then
``device="cuda"`` runs the whole cuda-marked suite on the CPU, with CuPy's strictness:

- :class:`ndarray` is its own type over NumPy storage and refuses every implicit
  conversion (``np.asarray(x)``, NumPy arrays in ops, ``float`` of a non-scalar) with
  CuPy's ``TypeError`` (see ``_ndarray``);
- ``cupy.asarray``/``array`` are the way there, ``x.get()``/``cupy.asnumpy`` the way
  back, and each crossing and each wait is written to :mod:`cupy.fake` (the ledger), so a
  test can assert that a training step makes none it did not ask for;
- the rest of ``cupy.<name>`` is NumPy's function of that name on the storage
  (``_functions``); ``cupy.cuda`` answers as one GPU named "sparkgrad fake CUDA device".

What it cannot tell: speed, memory, kernel launch costs, CUDA C (``ElementwiseKernel`` /
``RawKernel`` run only with a NumPy equivalent registered by name, see :func:`_kernel`),
and names that exist in NumPy but not in CuPy (they work here).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as _np

from . import _ledger as fake
from . import cuda, lib
from ._functions import numpy_function as _numpy_function
from ._functions import ufunc
from ._ndarray import ndarray, unwrap, wrap

__version__ = "13.6.0+sparkgrad.fake"
IS_SPARKGRAD_FAKE = True  # what gpu_check and reports print: these numbers are not a GPU's

__all__ = ["ndarray", "ufunc", "asarray", "array", "asnumpy", "get_array_module", "cuda"]


def _contains_device(obj: Any) -> bool:
    if isinstance(obj, ndarray):
        return True
    return isinstance(obj, (list, tuple)) and any(_contains_device(o) for o in obj)


def array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", subok: bool = False,
          ndmin: int = 0, *, blocking: bool = False) -> ndarray:  # fmt: skip
    """A device array from host data (a counted host→device copy) or from device arrays."""
    if _contains_device(obj):  # device data (a list of device arrays): stays on the device
        storage = unwrap(obj)
        out = _np.array(storage, dtype=dtype, copy=copy or None, order=order, ndmin=ndmin)
        return wrap(out)
    host = _np.array(obj, dtype=dtype, order=order, ndmin=ndmin)
    if host.dtype == object:
        raise ValueError(f"Unsupported dtype {host.dtype}")
    fake.record("to_device", f"array({type(obj).__name__})", host.nbytes)
    return wrap(host)


def asarray(a: Any, dtype: Any = None, order: Any = None, *, blocking: bool = False) -> ndarray:
    """``a`` itself when it is a device array of that dtype, else :func:`array` of it."""
    if isinstance(a, ndarray) and (dtype is None or _np.dtype(dtype) == a.dtype):
        return a
    return array(a, dtype=dtype, copy=False, order=order or "K")


asanyarray = asarray


def ascontiguousarray(a: Any, dtype: Any = None) -> ndarray:
    """A C-contiguous device array (device arrays only, as in CuPy)."""
    if not isinstance(a, ndarray):
        raise TypeError(f"Argument 'a' has incorrect type (expected cupy.ndarray, got {type(a)})")
    return wrap(_np.ascontiguousarray(a._a, dtype=dtype))


def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None,
            blocking: bool = True) -> _np.ndarray:  # fmt: skip
    """A NumPy array on the host: ``a.get()`` for a device array, ``a`` as it is otherwise."""
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out)
    return _np.asarray(a, order=order)


def get_array_module(*args: Any) -> Any:
    """This module when any argument is a device array, ``numpy`` otherwise."""
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else _np


def is_available() -> bool:
    return cuda.runtime.getDeviceCount() > 0


def fuse(*args: Any, **kwargs: Any) -> Any:
    """``@cupy.fuse``: here the function runs as written, op by op (NumPy has no fusion)."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda f: f


_KERNELS: dict[str, Any] = {}  # kernel name -> its NumPy equivalent (see _kernels)


def _kernel(name: str) -> Any:
    """Register ``fn`` as the NumPy equivalent of the CUDA kernel ``name``:
    ``cupy._kernel("adam_step")(numpy_fn)``. The stand-in runs that instead of CUDA C."""

    def register(fn: Any) -> Any:
        _KERNELS[name] = fn
        return fn

    return register


class _Kernel:
    """``ElementwiseKernel``/``RawKernel``/``ReductionKernel``: run the registered equivalent."""

    def __init__(self, *args: Any, name: str = "kernel", **kwargs: Any) -> None:
        self.name = kwargs.get("name", name)
        if len(args) >= 4 and isinstance(args[3], str):  # ElementwiseKernel(in, out, op, name)
            self.name = args[3]
        elif len(args) == 2 and isinstance(args[1], str):  # RawKernel(code, name)
            self.name = args[1]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fn = _KERNELS.get(self.name)
        if fn is None:
            raise NotImplementedError(
                f"the CuPy stand-in cannot compile CUDA C (kernel {self.name!r}); register a "
                f"NumPy equivalent with cupy._kernel({self.name!r})(fn)"
            )
        return wrap(fn(*unwrap(args), **unwrap(kwargs)))


ElementwiseKernel = RawKernel = ReductionKernel = _Kernel

from . import _kernels  # noqa: E402 - registers the project's kernels with _kernel

_kernels.register(_kernel)


class _MemoryPool:
    """``cupy.get_default_memory_pool()``: the stand-in allocates nothing, so all zeros."""

    def used_bytes(self) -> int:
        return 0

    def total_bytes(self) -> int:
        return 0

    def free_bytes(self) -> int:
        return 0

    def n_free_blocks(self) -> int:
        return 0

    def free_all_blocks(self, stream: Any = None) -> None:
        return None

    def set_limit(self, size: Any = None, fraction: Any = None) -> None:
        return None

    def get_limit(self) -> int:
        return 0


_POOL, _PINNED_POOL = _MemoryPool(), _MemoryPool()


def get_default_memory_pool() -> _MemoryPool:
    return _POOL


def get_default_pinned_memory_pool() -> _MemoryPool:
    return _PINNED_POOL


# NumPy names CuPy has no counterpart of (or has its own module for): not offered here
_NOT_OFFERED = {
    "ndarray", "matrix", "asmatrix", "memmap", "frombuffer", "fromfile", "fromiter",
    "load", "save", "savez", "savez_compressed", "loadtxt", "savetxt", "genfromtxt",
    "random", "linalg", "fft", "testing", "ma", "char", "rec", "ctypeslib", "polynomial",
    "strings", "emath", "typing", "f2py", "exceptions", "dtypes", "core", "array_api",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    """``cupy.<name>``: NumPy's types and constants as they are, its functions on storage."""
    if name.startswith("__") or name in _NOT_OFFERED or not hasattr(_np, name):
        raise AttributeError(f"module 'cupy' (sparkgrad's stand-in) has no attribute {name!r}")
    obj = getattr(_np, name)
    if isinstance(obj, type) or not callable(obj):  # dtypes, finfo, constants, newaxis
        value = obj
    else:
        value = _numpy_function(obj, name)
    globals()[name] = value
    return value
