"""Ways to make tensors: from data, filled with a value, shaped like another, the identity.

Ranges (``arange``, ``linspace``, ``logspace``) are in :mod:`.ranges`, random draws in
:mod:`.sampling`. Every factory takes PyTorch's keywords: ``dtype=`` (``sg.float64``,
``sg.long`` ...), ``device=`` (``"cuda:0"``, ``sg.device("cuda")`` or ``0``) and
``requires_grad=``. Without ``dtype=`` floats get the default dtype (float32 unless
``sg.set_default_dtype`` says otherwise); without ``device=`` tensors go to the default
device (cpu unless ``sg.set_default_device`` says otherwise).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import device_of, get_array_module
from sparkgrad.autodiff.device import get_default_device, resolve
from sparkgrad.autodiff.dtypes import as_dtype, get_default_dtype
from sparkgrad.autodiff.tensor import Tensor

__all__ = [
    "tensor", "from_numpy", "as_tensor", "is_tensor", "numel",
    "zeros", "ones", "empty", "full", "eye",
    "zeros_like", "ones_like", "empty_like", "full_like",
]  # fmt: skip


def dtype_or(dtype: Any, default: Any) -> np.dtype:
    """``dtype`` checked and as a ``numpy.dtype``; ``default`` when it is ``None``."""
    return as_dtype(default if dtype is None else dtype)


def sizes(size: tuple[Any, ...]) -> tuple[int, ...]:
    """``(2, 3)`` from ``zeros(2, 3)`` or ``zeros((2, 3))``; negative sizes refused (torch)."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    shape = tuple(int(n) for n in size)
    if any(n < 0 for n in shape):
        raise RuntimeError(f"Trying to create tensor with negative dimension: {list(shape)}")
    return shape


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None, device: Any = None) -> Tensor:
    """A new tensor from a list, scalar, array or tensor, always copied (``torch.tensor``).

    Without ``dtype``: Python floats take the default dtype, Python ints int64, booleans
    bool; an array or tensor keeps its dtype. Without ``device``: a tensor or CuPy array
    stays on its GPU, anything else goes to the default device (and so does everything
    once a non-cpu default device is set, as in torch).
    """
    if isinstance(data, Tensor):
        data = data.array
    if isinstance(data, np.generic):
        data = np.asarray(data)
    fresh = not hasattr(data, "dtype")
    if fresh:  # Python data: torch's inference (float -> default dtype, int -> int64)
        data = np.asarray(data)
        if dtype is None and data.dtype.kind == "f":
            dtype = get_default_dtype()
        elif dtype is None and data.dtype.kind in "iu":
            dtype = np.int64
    if device is not None:
        target = resolve(device)
    elif device_of(data) == "cuda" and get_default_device().type == "cpu":
        target = "cuda"  # a GPU tensor stays on its GPU
    else:
        target = get_default_device().type
    dtype = None if dtype is None else as_dtype(dtype)
    out = Tensor(data, requires_grad=False, dtype=dtype, device=target)
    if out.array is data and not fresh:
        out.array = out.array.copy()
    if requires_grad:
        out.requires_grad_(True)
    return out


#: the NumPy dtypes a tensor can share memory with (torch.from_numpy's list)
_SHAREABLE = {np.dtype(t) for t in ("f8", "f4", "f2", "c8", "c16", "i8", "i4", "i2", "i1")} | {
    np.dtype(t) for t in ("u8", "u4", "u2", "u1", "?")
}


def from_numpy(ndarray: Any) -> Tensor:
    """A tensor that *shares memory* with ``ndarray`` and keeps its dtype (``torch.from_numpy``).

    Writing into one shows in the other (``torch.tensor`` copies instead); a float64 array
    stays float64, so ``x.float()`` is often the next call.
    """
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    if ndarray.dtype.newbyteorder("=") not in _SHAREABLE:
        raise TypeError(
            f"can't convert np.ndarray of type numpy.{ndarray.dtype.type.__name__}. The only "
            "supported types are: float64, float32, float16, complex64, complex128, int64, "
            "int32, int16, int8, uint64, uint32, uint16, uint8, and bool."
        )
    return Tensor._wrap(ndarray)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """``data`` as a tensor, without a copy where none is needed (``torch.as_tensor``).

    A tensor of the asked dtype and device is returned itself; a NumPy array of the asked
    dtype, going to the CPU, is shared as :func:`from_numpy` does; anything else is
    converted like :func:`tensor` (and keeps its graph when it is a tensor, as in torch).
    """
    want = None if dtype is None else as_dtype(dtype)
    if isinstance(data, Tensor):
        out = data if want is None or data.dtype == want else data.to(want)
        return out if device is None else out.to(resolve(device))
    target = get_default_device().type if device is None else resolve(device)
    if (
        isinstance(data, np.ndarray)
        and target == "cpu"
        and (want is None or want == data.dtype)  # not `in (None, ...)`: dtype(None) is f8
    ):
        return from_numpy(data)
    return tensor(data, dtype=want, device=target)


def is_tensor(obj: Any) -> bool:
    """``isinstance(obj, Tensor)`` (``torch.is_tensor``)."""
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> int:  # noqa: A002 - PyTorch's name
    """The number of elements of ``input`` (``torch.numel``)."""
    return input.numel()


def _filled(kind: str, size: tuple, dtype: Any, device: Any, requires_grad: bool) -> Tensor:
    xp = get_array_module(resolve(device))
    array = getattr(xp, kind)(sizes(size), dtype=dtype_or(dtype, get_default_dtype()))
    return Tensor(array, requires_grad=requires_grad)


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    return _filled("zeros", size, dtype, device, requires_grad)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones: ``ones(2, 3)`` or ``ones((2, 3))``."""
    return _filled("ones", size, dtype, device, requires_grad)


def empty(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor whose values are whatever was in memory: fill it before reading it."""
    return _filled("empty", size, dtype, device, requires_grad)


def full(
    size: Any,
    fill_value: Any,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """A tensor of ``fill_value``; its dtype follows the value as torch: bool -> bool,
    int -> int64, float -> the default dtype."""
    if dtype is None:
        if isinstance(fill_value, (bool, np.bool_)):
            dtype = np.bool_
        elif isinstance(fill_value, (int, np.integer)):
            dtype = np.int64
        else:
            dtype = get_default_dtype()
    shape = sizes((size,) if isinstance(size, int) else tuple(size))
    xp = get_array_module(resolve(device))
    return Tensor(xp.full(shape, fill_value, dtype=as_dtype(dtype)), requires_grad=requires_grad)


def eye(
    n: int,
    m: int | None = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """The ``n × m`` identity (``m = n`` by default): ones on the main diagonal."""
    for name, value in (("n", n), ("m", m)):
        if value is None:
            continue
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f"eye(): argument '{name}' must be int, not {type(value).__name__}")
        if value < 0:
            raise RuntimeError(f"{name} must be greater or equal to 0, got {value}")
    xp = get_array_module(resolve(device))
    array = xp.eye(n, n if m is None else m, dtype=dtype_or(dtype, get_default_dtype()))
    return Tensor(array, requires_grad=requires_grad)


# ---- shaped like another tensor: same shape, dtype and device unless told otherwise ------
def _like(input: Tensor, dtype: Any, device: Any) -> tuple[tuple[int, ...], Any, Any]:
    return (
        input.shape,
        input.dtype if dtype is None else dtype,
        (input.device if device is None else device),
    )


def zeros_like(
    input: Tensor,  # noqa: A002 - torch's argument name
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    shape, dtype, device = _like(input, dtype, device)
    return zeros(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(
    input: Tensor,  # noqa: A002
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    shape, dtype, device = _like(input, dtype, device)
    return ones(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def empty_like(
    input: Tensor,  # noqa: A002
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    shape, dtype, device = _like(input, dtype, device)
    return empty(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(
    input: Tensor,  # noqa: A002
    fill_value: Any,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """``fill_value`` in ``input``'s shape and dtype (``full_like(int_tensor, 2.7)`` is 2)."""
    shape, dtype, device = _like(input, dtype, device)
    xp = get_array_module(resolve(device))
    array = xp.full(shape, fill_value).astype(as_dtype(dtype))  # cast as torch: 2.7 -> 2
    return Tensor(array, requires_grad=requires_grad)
