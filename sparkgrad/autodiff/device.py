"""Devices: the ``sg.device`` object, the default device, and parsing ``.to(...)`` arguments.

A device is a type (``"cpu"`` or ``"cuda"``) and an optional index, as ``torch.device``::

    sg.device("cuda:0") == sg.device("cuda", 0)     # True
    sg.device("cuda") == sg.device("cuda:0")        # False: "the current GPU" vs "GPU 0"
    str(sg.device("cuda", 1)), repr(sg.device("cpu"))   # 'cuda:1', "device(type='cpu')"

Everywhere a device is accepted, a string (``"cuda:1"``), a ``device`` or an int (``0`` for
``cuda:0``; an accelerator is required, as in torch) works. The engine itself runs on one
GPU, CuPy's current one: the index is kept and printed, and only the type picks the backend.

:func:`parse_to_args` reads every form of PyTorch's ``.to(...)`` (device, dtype, another
tensor, keywords) into one tuple; ``Module.to`` and ``Tensor.to`` both use it.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import cuda_is_available
from sparkgrad.autodiff.dtypes import as_dtype
from sparkgrad.errors import DeviceError

__all__ = ["device", "get_default_device", "set_default_device", "resolve", "parse_to_args"]

_TYPES = ("cpu", "cuda")
_DEVICE_STRING = re.compile(r"^([A-Za-z_]+)(?::(0|[1-9][0-9]*))?$")


class device:  # noqa: N801 - torch.device's name
    """A device type and index: ``device("cuda:1")``, ``device("cuda", 1)``, ``device(1)``.

    Immutable and hashable; equal when type and index are equal. Used as a context manager
    it is the default device inside the ``with`` block (``with sg.device("cuda"): ...``).
    """

    __slots__ = ("_type", "_index", "_previous")

    def __init__(self, type: Any, index: int | None = None) -> None:  # noqa: A002 - torch's
        if isinstance(type, device):
            if index is not None:
                raise RuntimeError("device(device, index): the device already has its index")
            kind, idx = type.type, type.index
        elif _is_index(type):
            if index is not None:
                raise TypeError(f"device(int) takes no second index, found {index!r}")
            kind, idx = _accelerator_type(), _check_index(type)
        elif isinstance(type, str):
            kind, idx = _parse_string(type)
            if index is not None:
                if idx is not None:
                    raise RuntimeError(
                        "type (string) must not include an index because index was passed "
                        f"explicitly: {type}"
                    )
                if not _is_index(index):
                    raise TypeError(f"device index must be an int, found {index!r}")
                idx = _check_index(index)
        else:
            raise TypeError(
                f"expected a device string such as 'cuda:0', an int or a device, found {type!r}"
            )
        object.__setattr__(self, "_type", kind)
        object.__setattr__(self, "_index", idx)
        object.__setattr__(self, "_previous", None)

    @property
    def type(self) -> str:
        """``"cpu"`` or ``"cuda"``."""
        return self._type

    @property
    def index(self) -> int | None:
        """The device number, or ``None`` for "the current one"."""
        return self._index

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"device objects are immutable (tried to set {name!r})")

    def __str__(self) -> str:
        return self._type if self._index is None else f"{self._type}:{self._index}"

    def __repr__(self) -> str:
        if self._index is None:
            return f"device(type='{self._type}')"
        return f"device(type='{self._type}', index={self._index})"

    def __eq__(self, other: object) -> bool:
        # as torch: a device never equals a string (sg.device("cpu") == "cpu" is False)
        if not isinstance(other, device):
            return NotImplemented
        return (self._type, self._index) == (other._type, other._index)

    def __hash__(self) -> int:
        return hash((self._type, self._index))

    def __reduce__(self) -> Any:
        return (device, (self._type, self._index))

    def __enter__(self) -> device:
        object.__setattr__(self, "_previous", get_default_device())
        set_default_device(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        set_default_device(self._previous)
        object.__setattr__(self, "_previous", None)


def _is_index(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_index(index: Any) -> int:
    if index < 0:
        raise DeviceError("Device index must not be negative")
    return int(index)


def _accelerator_type() -> str:
    """What a bare int means (torch: the current accelerator, an error without one)."""
    if not cuda_is_available():
        raise DeviceError("Cannot access accelerator device when none is available.")
    return "cuda"


def _parse_string(text: str) -> tuple[str, int | None]:
    match = _DEVICE_STRING.match(text)
    if match is None:
        raise DeviceError(f"Invalid device string: {text!r}")
    kind, idx = match.group(1), match.group(2)
    if kind not in _TYPES:
        raise DeviceError(
            f"Expected one of {', '.join(_TYPES)} device type at start of device string: "
            f"{text!r} (sparkgrad runs on NumPy for cpu and CuPy for cuda)"
        )
    return kind, None if idx is None else int(idx)


# ---- the default device -----------------------------------------------------------------
_default = device("cpu")


def get_default_device() -> device:
    """Where factories put tensors when no ``device=`` is given (cpu unless set)."""
    return _default


def set_default_device(d: Any) -> None:
    """Make ``d`` the device of later factory calls without ``device=`` (``None``: cpu).

    As ``torch.set_default_device``: ``sg.zeros(2)``, ``sg.tensor([1.0])``, ``sg.rand(3)``
    and new layers then live there; explicit ``device=`` arguments still win. Like the
    default dtype it is one setting for the whole process.
    """
    global _default
    new = device("cpu") if d is None else device(d)
    if new.type == "cuda" and new.index is None:
        new = device("cuda", 0)  # torch reports the index it will use
    _default = new


def resolve(d: Any) -> str:
    """The backend name (``"cpu"``/``"cuda"``) of a device argument; ``None`` is the default."""
    if d is None:
        return _default.type
    if isinstance(d, device):
        return d.type
    return device(d).type


# ---- .to(...) ---------------------------------------------------------------------------
_SIGNATURES = (
    "to(device=None, dtype=None, non_blocking=False, copy=False), "
    "to(dtype, non_blocking=False, copy=False), to(tensor, non_blocking=False, copy=False)"
)


def _is_tensor(value: Any) -> bool:
    from sparkgrad.autodiff.tensor import Tensor

    return isinstance(value, Tensor)


def _is_device(value: Any) -> bool:
    return isinstance(value, (str, device)) or _is_index(value)


def _invalid(args: tuple, kwargs: dict, why: str = "") -> TypeError:
    got = [type(a).__name__ for a in args] + [f"{k}={type(v).__name__}" for k, v in kwargs.items()]
    return TypeError(
        f"to() received an invalid combination of arguments - got ({', '.join(got)}){why}, "
        f"but expected one of: {_SIGNATURES}"
    )


def parse_to_args(*args: Any, **kwargs: Any) -> tuple[device | None, np.dtype | None, bool, bool]:
    """PyTorch's three ``.to`` signatures read into ``(device, dtype, non_blocking, copy)``.

    ``to(device=None, dtype=None, non_blocking=False, copy=False)``, ``to(dtype, ...)`` and
    ``to(tensor, ...)`` (that tensor's device and dtype); a device is a string, an int or a
    :class:`device`, a dtype ``sg.float64`` & co. (or Python's ``float``/``int``/``bool``).
    Strings are always devices, as in torch: ``to("float64")`` is an invalid device.
    ``device`` comes back as a :class:`device` (or ``None``: keep), ``dtype`` as a
    ``numpy.dtype`` (or ``None``: keep). Anything else raises torch's ``TypeError``.
    """
    unknown = set(kwargs) - {"device", "dtype", "non_blocking", "copy", "tensor"}
    if unknown:
        raise _invalid(args, kwargs, f" (unexpected keyword {sorted(unknown)[0]!r})")
    first = args[0] if args else None
    if (args and _is_tensor(first)) or "tensor" in kwargs:
        names = ("tensor", "non_blocking", "copy")
    elif args and first is not None and not _is_device(first):
        names = ("dtype", "non_blocking", "copy")
    else:
        names = ("device", "dtype", "non_blocking", "copy")
    if len(args) > len(names):
        raise TypeError(
            f"to() takes from 0 to {len(names)} positional arguments but {len(args)} were given"
        )
    values = dict(zip(names, args))
    for key, value in kwargs.items():
        if key in values or key not in names:
            raise _invalid(args, kwargs)
        values[key] = value
    non_blocking, copy = values.get("non_blocking", False), values.get("copy", False)
    if not all(isinstance(flag, (bool, np.bool_)) for flag in (non_blocking, copy)):
        raise _invalid(args, kwargs)
    non_blocking, copy = bool(non_blocking), bool(copy)
    if "tensor" in values:
        other = values["tensor"]
        if not _is_tensor(other):
            raise _invalid(args, kwargs)
        return device(other.device), np.dtype(other.dtype), non_blocking, copy
    dev, dtype = values.get("device"), values.get("dtype")
    if dev is not None:
        if not _is_device(dev):
            raise _invalid(args, kwargs)
        dev = device(dev)
    if dtype is not None:
        try:
            dtype = as_dtype(dtype)
        except TypeError:
            raise _invalid(args, kwargs) from None
    return dev, dtype, non_blocking, copy
