"""The array backend: NumPy on ``device="cpu"``, CuPy on ``device="cuda"``.

Every op is written once against an *array module* ``xp`` (``numpy`` or ``cupy``), found
from the arrays themselves with :func:`array_module`. That is the whole GPU story: the
same forward and backward formulas run on either library.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

from sparkgrad.errors import DeviceError

DEFAULT_DTYPE = np.float32  # the *initial* default: read the current one with
# sparkgrad.autodiff.dtypes.get_default_dtype() (sg.set_default_dtype changes it)
_cupy: ModuleType | None = None
_cupy_error: str | None = None


def _load_cupy() -> ModuleType | None:
    """Import CuPy once; remember why it failed so the error can say so."""
    global _cupy, _cupy_error
    if _cupy is None and _cupy_error is None:
        try:
            cp = importlib.import_module("cupy")
            if cp.cuda.runtime.getDeviceCount() < 1:
                raise RuntimeError("CuPy found no GPU")
            _cupy = cp
        except Exception as exc:  # ImportError, CUDARuntimeError, ...
            _cupy_error = f"{type(exc).__name__}: {exc}"
    return _cupy


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    return _load_cupy() is not None


def cuda_device_count() -> int:
    """How many GPUs CuPy sees (0 without CuPy or a GPU)."""
    cp = _load_cupy()
    return 0 if cp is None else int(cp.cuda.runtime.getDeviceCount())


def normalize_device(device: Any) -> str:
    """Map ``None``, ``"cpu"``, ``"cuda"``, ``"cuda:0"``, an ``sg.device`` or a GPU number
    (``0``) to ``"cpu"`` or ``"cuda"`` (the backend; the GPU index is not used)."""
    if device is None:
        return "cpu"
    kind = getattr(device, "type", None)  # an sg.device (or a torch.device)
    if isinstance(kind, str):
        name = kind
    elif isinstance(device, (int, np.integer)) and not isinstance(device, (bool, np.bool_)):
        if device < 0:
            raise DeviceError(f"Device index must not be negative, found {device}")
        return "cuda"
    else:
        name = str(device).split(":")[0].lower()
    if name not in ("cpu", "cuda"):
        raise DeviceError(f"expected device 'cpu' or 'cuda', found {device!r}")
    return name


def get_array_module(device: str) -> ModuleType:
    """The array module for a device name: ``numpy`` for cpu, ``cupy`` for cuda."""
    if normalize_device(device) == "cpu":
        return np
    cp = _load_cupy()
    if cp is None:
        raise DeviceError(
            "device='cuda' needs CuPy and an NVIDIA GPU; "
            f"found none ({_cupy_error}). Install with: pip install 'sparkgrad[gpu]'"
        )
    return cp


def array_module(*arrays: Any) -> ModuleType:
    """The module that owns these arrays (``cupy`` if any of them is a CuPy array)."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def device_of(array: Any) -> str:
    """``"cuda"`` for a CuPy array, ``"cpu"`` otherwise."""
    return "cuda" if _cupy is not None and isinstance(array, _cupy.ndarray) else "cpu"


def to_device(array: Any, device: str) -> Any:
    """Move an array to ``device`` (a no-op when it is already there)."""
    device = normalize_device(device)
    if device_of(array) == device:
        return array
    if device == "cpu":
        return array.get()
    return get_array_module("cuda").asarray(array)


def to_numpy(array: Any) -> np.ndarray:
    """A NumPy view or copy of any backend array."""
    return array.get() if device_of(array) == "cuda" else np.asarray(array)


def is_floating(dtype: Any) -> bool:
    """True for float16/32/64 and bfloat16 (the only dtypes that can require gradients).

    ``ml_dtypes.bfloat16`` is a NumPy *extension* dtype whose ``kind`` is ``"V"``, not
    ``"f"``, so every "is this a float?" question goes through here rather than ``.kind``."""
    d = np.dtype(dtype)
    return d.kind == "f" or d.name == "bfloat16"
