"""``cupy.ndarray`` of the stand-in: a "device" array over NumPy storage, as strict as CuPy.

The array is its own type, not a NumPy subclass, and holds a NumPy array in ``_a`` (the
"device memory"). It does what CuPy does where CuPy differs from NumPy:

- no implicit conversion: ``np.asarray(x)`` / ``np.array(x)`` raise ``TypeError``
  (``__array__``), a NumPy array in an op or a NumPy function raises ``TypeError``
  (``Unsupported type``), assigning a NumPy array into it raises ``TypeError``;
- the ways back are explicit and counted: ``x.get()``, ``cupy.asnumpy(x)``, ``x.item()``,
  ``x.tolist()``, ``float/int/bool(x)`` (size-1 arrays only), ``repr(x)``, pickling;
- reductions and full integer indexing give 0-d *device* arrays, not NumPy scalars, so
  ``if loss > 0:`` or ``float(loss)`` shows up as the device→host copy it is;
- a NumPy or list index is copied to the device (counted), a boolean mask makes the host
  wait for the result's size (counted as ``sync``); no ``__index__`` (CuPy has none).
"""

from __future__ import annotations

import copy as _copy
import numbers
from typing import Any

import numpy as np

from . import _ledger

_SCALARS = (numbers.Number, np.generic, bool)
_NO_IMPLICIT = (
    "Implicit conversion to a NumPy array is not allowed. "
    "Please use `.get()` to construct a NumPy array explicitly."
)


def _unsupported(obj: Any) -> TypeError:
    return TypeError(f"Unsupported type {type(obj)}")


def wrap(value: Any) -> Any:
    """NumPy results → device results: arrays and NumPy scalars become ``ndarray``."""
    if isinstance(value, np.ndarray):
        out = object.__new__(ndarray)
        out._a = value
        return out
    if isinstance(value, np.generic):
        out = object.__new__(ndarray)
        out._a = np.asarray(value)
        return out
    if isinstance(value, tuple):
        return tuple(wrap(v) for v in value)
    if isinstance(value, list):
        return [wrap(v) for v in value]
    return value


def unwrap(value: Any) -> Any:
    """Device arguments → their NumPy storage; a NumPy array is refused (``TypeError``)."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, np.ndarray):
        raise _unsupported(value)
    if isinstance(value, tuple):
        return tuple(unwrap(v) for v in value)
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    return value


# Host parameters CuPy reads on the host (shapes, axes, repeats): a small integer NumPy
# array there is fine, as in CuPy; only array *operands* must be device arrays.
SHAPE_KEYS = {"axis", "axes", "shape", "newshape", "reps", "pad_width", "repeats", "shift",
              "source", "destination", "indices_or_sections", "k"}  # fmt: skip


def host_param(value: Any) -> Any:
    """A shape/axes argument: an integer NumPy array becomes a tuple, anything else strict."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "iu" and value.ndim <= 1:
        return value.tolist() if value.ndim == 0 else tuple(value.tolist())
    return unwrap(value)


def _operand(other: Any) -> Any:
    """The other side of a binary operator: storage, a scalar, or ``NotImplemented``."""
    if isinstance(other, ndarray):
        return other._a
    if isinstance(other, _SCALARS):
        return other
    if isinstance(other, (np.ndarray, list, tuple)):
        raise _unsupported(other)
    return NotImplemented  # a Tensor or another type: let it try its reflected operator


def index(key: Any) -> Any:
    """An index into device data: device arrays as they are, host arrays copied (counted)."""
    parts = key if isinstance(key, tuple) else (key,)
    out = []
    for s in parts:
        if isinstance(s, ndarray):
            if s._a.dtype == np.bool_:
                _ledger.record("sync", "boolean mask index (result size)")
            out.append(s._a)
        elif isinstance(s, (np.ndarray, list)):
            host = np.asarray(s)
            _ledger.record("to_device", f"host index array {host.dtype}{host.shape}", host.nbytes)
            if host.dtype == np.bool_:
                _ledger.record("sync", "boolean mask index (result size)")
            out.append(host)
        else:
            out.append(s)
    return tuple(out) if isinstance(key, tuple) else out[0]


class ndarray:  # noqa: N801 - CuPy's name
    """A CuPy-like array; its values live in ``_a`` (a NumPy array) and never leak."""

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100  # CuPy's: a Tensor's 1000 wins reflected operators

    def __init__(self, shape: Any, dtype: Any = float, memptr: Any = None, strides: Any = None,
                 order: str = "C") -> None:  # fmt: skip
        self._a = np.empty(shape, dtype=dtype, order=order)

    # ---- attributes ------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: wrap(self._a.T))
    mT = property(lambda self: wrap(np.swapaxes(self._a, -1, -2)))
    real = property(lambda self: wrap(self._a.real))
    imag = property(lambda self: wrap(self._a.imag))

    @property
    def base(self) -> Any:
        return None if self._a.base is None else wrap(self._a.base)

    @property
    def device(self) -> Any:
        from .cuda import Device

        return Device(0)

    @shape.setter
    def shape(self, value: Any) -> None:
        self._a.shape = value

    # ---- the explicit ways to the host (counted) --------------------------------------
    def get(self, stream: Any = None, order: str = "C", out: Any = None,
            blocking: bool = True) -> np.ndarray:  # fmt: skip
        """A NumPy copy on the host (CuPy's one way back)."""
        _ledger.record("to_host", "get()", self._a.nbytes)
        host = np.array(self._a, order=order, copy=True)
        if out is not None:
            np.copyto(out, host)
            return out
        return host

    def set(self, arr: np.ndarray, stream: Any = None) -> None:
        """Copy a NumPy array of the same shape into this device array."""
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, found {type(arr)}")
        if arr.shape != self._a.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        _ledger.record("to_device", "set()", arr.nbytes)
        np.copyto(self._a, arr)

    def item(self) -> Any:
        if self._a.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        _ledger.record("to_host", "item()", self._a.itemsize)
        return self._a.item()

    def tolist(self) -> Any:
        _ledger.record("to_host", "tolist()", self._a.nbytes)
        return self._a.tolist()

    def tobytes(self, order: str = "C") -> bytes:
        _ledger.record("to_host", "tobytes()", self._a.nbytes)
        return self._a.tobytes(order)

    def _scalar(self, kind: type, what: str) -> Any:
        if self._a.size != 1:
            raise TypeError("only length-1 arrays can be converted to Python scalars")
        _ledger.record("to_host", what, self._a.itemsize)
        return kind(self._a.reshape(()).item())

    def __float__(self) -> float:
        return self._scalar(float, "float()")

    def __int__(self) -> int:
        return self._scalar(int, "int()")

    def __complex__(self) -> complex:
        return self._scalar(complex, "complex()")

    def __bool__(self) -> bool:
        if self._a.size == 0:
            return False
        if self._a.size > 1:
            raise ValueError(
                "The truth value of an array with more than one element is ambiguous. "
                "Use a.any() or a.all()"
            )
        return self._scalar(bool, "bool()")

    def __repr__(self) -> str:
        _ledger.record("to_host", "repr()", self._a.nbytes)
        return repr(self._a)

    def __str__(self) -> str:
        _ledger.record("to_host", "str()", self._a.nbytes)
        return str(self._a)

    def __format__(self, spec: str) -> str:
        _ledger.record("to_host", "format()", self._a.nbytes)
        return format(self._a if self._a.ndim else self._a.item(), spec)

    def __reduce__(self) -> Any:
        from . import array

        return array, (self.get(),)

    def __copy__(self) -> ndarray:
        return wrap(self._a.copy())

    def __deepcopy__(self, memo: dict) -> ndarray:
        return wrap(_copy.deepcopy(self._a, memo))

    # ---- NumPy interop: refused or dispatched back here --------------------------------
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(_NO_IMPLICIT)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        for x in inputs + tuple(kwargs.get("out", ())):
            if not isinstance(x, (ndarray, np.ndarray, *_SCALARS)):
                return NotImplemented
        outs = kwargs.get("out")
        if method == "at":  # np.add.at(a, indices, b): the indices are an index
            a, where, *rest = inputs
            return ufunc.at(unwrap(a), index(where), *unwrap(tuple(rest)))
        result = getattr(ufunc, method)(*unwrap(inputs), **unwrap(kwargs))
        if outs:  # the caller's own device arrays, filled in place
            return outs[0] if len(outs) == 1 else tuple(outs)
        return wrap(result)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        from . import _functions

        for t in types:
            if not issubclass(t, (ndarray, np.ndarray)):
                return NotImplemented
        return _functions.numpy_function(func, func.__name__)(*args, **kwargs)

    # ---- containers --------------------------------------------------------------------
    def __len__(self) -> int:
        if self._a.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._a)

    def __iter__(self) -> Any:
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self._a.shape[0]))

    def __getitem__(self, key: Any) -> Any:
        return wrap(self._a[index(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, np.ndarray):
            raise _unsupported(value)  # CuPy refuses assignment from CPU arrays (gh-2079)
        if isinstance(value, (list, tuple)):
            raise TypeError(f"Unsupported type {type(value)}")
        self._a[index(key)] = unwrap(value)

    __hash__ = None  # type: ignore[assignment]


def _binary(name: str) -> Any:
    op = getattr(np.ndarray, name)

    def method(self: ndarray, other: Any) -> Any:
        o = _operand(other)
        if o is NotImplemented:
            return NotImplemented
        return wrap(op(self._a, o))

    method.__name__ = name
    return method


def _inplace(name: str) -> Any:
    op = getattr(np.ndarray, name)

    def method(self: ndarray, other: Any) -> Any:
        o = _operand(other)
        if o is NotImplemented:
            return NotImplemented
        op(self._a, o)
        return self

    method.__name__ = name
    return method


def _unary(name: str) -> Any:
    op = getattr(np.ndarray, name)

    def method(self: ndarray) -> Any:
        return wrap(op(self._a))

    method.__name__ = name
    return method


_SHAPE_METHODS = set(
    """reshape transpose squeeze swapaxes sum mean max min prod any all std
var argmax argmin cumsum cumprod repeat""".split()
)


def _plain(name: str) -> Any:
    """A method run on the storage: device arguments unwrapped, results wrapped."""
    param = host_param if name in _SHAPE_METHODS else unwrap

    def method(self: ndarray, *args: Any, **kwargs: Any) -> Any:
        args = tuple(param(a) for a in args)
        kwargs = {k: host_param(v) if k in SHAPE_KEYS else unwrap(v) for k, v in kwargs.items()}
        return wrap(getattr(self._a, name)(*args, **kwargs))

    method.__name__ = name
    return method


def _syncing(name: str) -> Any:
    """A method whose output size depends on device data (the host waits for it)."""
    plain = _plain(name)

    def method(self: ndarray, *args: Any, **kwargs: Any) -> Any:
        _ledger.record("sync", f"{name}() (result size)")
        return plain(self, *args, **kwargs)

    method.__name__ = name
    return method


_OPS = "add sub mul truediv floordiv mod pow matmul and or xor lshift rshift".split()
for _op in _OPS:
    setattr(ndarray, f"__{_op}__", _binary(f"__{_op}__"))
    setattr(ndarray, f"__r{_op}__", _binary(f"__r{_op}__"))
    setattr(ndarray, f"__i{_op}__", _inplace(f"__i{_op}__"))
for _op in "lt le eq ne gt ge divmod rdivmod".split():
    setattr(ndarray, f"__{_op}__", _binary(f"__{_op}__"))
for _op in "neg pos abs invert".split():
    setattr(ndarray, f"__{_op}__", _unary(f"__{_op}__"))

_METHODS = """all any argmax argmin argpartition argsort astype choose clip compress conj
conjugate copy cumprod cumsum diagonal dot fill flatten max mean min partition prod put
ravel repeat reshape round searchsorted sort squeeze std sum swapaxes take trace transpose
var view""".split()
for _name in _METHODS:
    setattr(ndarray, _name, _plain(_name))
ndarray.nonzero = _syncing("nonzero")
ndarray.compress = _syncing("compress")
ndarray.__module__ = "cupy"
