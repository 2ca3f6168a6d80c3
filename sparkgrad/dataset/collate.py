"""Collation: turning a list of samples into one batch (``torch.utils.data``'s rules).

The loader fetches ``batch_size`` samples and hands the *list* to ``collate_fn``.
:func:`default_collate` adds a batch dimension in front, looking at the first sample:

==========================  ==================================================
sample element              batch
==========================  ==================================================
Tensor, NumPy/CuPy array    a Tensor, the samples stacked (dtype kept)
NumPy scalar                a 1-d Tensor of its dtype
Python ``float``            a float64 Tensor (as PyTorch)
Python ``int`` / ``bool``   ``torch.tensor(batch)``'s dtype: int64 / bool, float32 if
                            later samples are floats
``str`` / ``bytes``         left as they are (the strings of the batch)
dict                        the same keys, each collated
namedtuple                  the same namedtuple, each field collated
tuple                       a *list*, each position collated (PyTorch's choice)
list or other sequence      the same type, each position collated
==========================  ==================================================

So ``(image, label)`` samples give ``[images (B, ...), labels (B,)]``. Anything else raises
PyTorch's ``TypeError``. :func:`collate` with your own ``collate_fn_map`` extends the rules,
as ``torch.utils.data._utils.collate.collate`` does; :func:`default_convert` is what the
loader applies when automatic batching is off (``batch_size=None``): arrays become Tensors,
no batch dimension.
"""

from __future__ import annotations

import collections.abc
import copy
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import device_of
from sparkgrad.autodiff.functional import stack
from sparkgrad.autodiff.tensor import Tensor

_STR_OR_OBJECT = re.compile(r"[SaUO]")
default_collate_err_msg_format = (
    "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"
)


def _is_numpy(elem: Any) -> bool:
    name = type(elem).__name__
    return type(elem).__module__ == "numpy" and name not in ("str_", "string_", "bytes_")


def default_convert(data: Any) -> Any:
    """Turn NumPy arrays (inside any structure) into Tensors without a batch dimension."""
    elem_type = type(data)
    if isinstance(data, Tensor):
        return data
    if device_of(data) == "cuda":
        return Tensor(data)
    if _is_numpy(data):
        if isinstance(data, np.ndarray) and _STR_OR_OBJECT.search(data.dtype.str):
            return data
        return Tensor(np.asarray(data))  # as torch.as_tensor: shares the array's memory
    if isinstance(data, collections.abc.Mapping):
        try:
            if isinstance(data, collections.abc.MutableMapping):
                clone = copy.copy(data)
                clone.update({key: default_convert(data[key]) for key in data})
                return clone
            return elem_type({key: default_convert(data[key]) for key in data})
        except TypeError:
            return {key: default_convert(data[key]) for key in data}
    if isinstance(data, tuple) and hasattr(data, "_fields"):  # namedtuple
        return elem_type(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            if isinstance(data, collections.abc.MutableSequence):
                clone = copy.copy(data)
                for i, d in enumerate(data):
                    clone[i] = default_convert(d)
                return clone
            return elem_type([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data


def collate(
    batch: list[Any], *, collate_fn_map: dict[type | tuple[type, ...], Callable] | None = None
) -> Any:
    """Collate ``batch`` with the per-type functions of ``collate_fn_map``, then containers.

    The element type is looked up exactly first, then with ``isinstance`` in the map's
    order; dicts, namedtuples and sequences are collated position by position.
    """
    elem = batch[0]
    elem_type = type(elem)
    if collate_fn_map is not None:
        if elem_type in collate_fn_map:
            return collate_fn_map[elem_type](batch, collate_fn_map=collate_fn_map)
        for collate_type in collate_fn_map:
            if isinstance(elem, collate_type):
                return collate_fn_map[collate_type](batch, collate_fn_map=collate_fn_map)
    again = {"collate_fn_map": collate_fn_map}
    if isinstance(elem, collections.abc.Mapping):
        try:
            if isinstance(elem, collections.abc.MutableMapping):
                clone = copy.copy(elem)
                clone.update({key: collate([d[key] for d in batch], **again) for key in elem})
                return clone
            return elem_type({key: collate([d[key] for d in batch], **again) for key in elem})
        except TypeError:
            return {key: collate([d[key] for d in batch], **again) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return elem_type(*(collate(samples, **again) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if not all(len(e) == size for e in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        transposed = list(zip(*batch))
        if isinstance(elem, tuple):
            return [collate(samples, **again) for samples in transposed]  # as PyTorch
        try:
            if isinstance(elem, collections.abc.MutableSequence):
                clone = copy.copy(elem)
                for i, samples in enumerate(transposed):
                    clone[i] = collate(samples, **again)
                return clone
            return elem_type([collate(samples, **again) for samples in transposed])
        except TypeError:
            return [collate(samples, **again) for samples in transposed]
    raise TypeError(default_collate_err_msg_format.format(elem_type))


def collate_tensor_fn(batch: list[Tensor], *, collate_fn_map: Any = None) -> Tensor:
    """Stack along a new first dimension (shapes must agree, as ``torch.stack``)."""
    first = batch[0].shape
    for i, t in enumerate(batch):
        if t.shape != first:
            raise RuntimeError(
                f"stack expects each tensor to be equal size, but got {list(first)} at entry 0 "
                f"and {list(t.shape)} at entry {i}"
            )
    return stack(list(batch), 0)


def collate_numpy_array_fn(batch: list[Any], *, collate_fn_map: Any = None) -> Tensor:
    """NumPy (or CuPy) arrays: as Tensors, then stacked; string/object arrays are refused."""
    elem = batch[0]
    if _STR_OR_OBJECT.search(elem.dtype.str) is not None:
        raise TypeError(default_collate_err_msg_format.format(elem.dtype))
    return collate([Tensor(b) for b in batch], collate_fn_map=collate_fn_map)


def collate_numpy_scalar_fn(batch: list[Any], *, collate_fn_map: Any = None) -> Tensor:
    """NumPy scalars: one 1-d Tensor of their dtype."""
    return Tensor(np.asarray(batch))


def collate_float_fn(batch: list[float], *, collate_fn_map: Any = None) -> Tensor:
    """Python floats: float64, as PyTorch's ``default_collate`` (not the float32 default)."""
    return Tensor(np.asarray(batch, dtype=np.float64))


def collate_int_fn(batch: list[int], *, collate_fn_map: Any = None) -> Tensor:
    """Python ints (and bools): ``tensor(batch)``'s rules: int64, bool, float32 if mixed."""
    return Tensor(list(batch))


def collate_str_fn(batch: Any, *, collate_fn_map: Any = None) -> Any:
    """Strings and bytes stay as they are."""
    return batch


default_collate_fn_map: dict[type | tuple[type, ...], Callable] = {
    Tensor: collate_tensor_fn,
    np.ndarray: collate_numpy_array_fn,
    (np.bool_, np.number, np.object_): collate_numpy_scalar_fn,
    float: collate_float_fn,
    int: collate_int_fn,
    str: collate_str_fn,
    bytes: collate_str_fn,
}


def _register_cupy() -> None:
    """CuPy arrays collate like NumPy arrays (looked up when CuPy is already imported)."""
    import sys

    cp = sys.modules.get("cupy")
    if cp is not None and cp.ndarray not in default_collate_fn_map:
        default_collate_fn_map[cp.ndarray] = collate_numpy_array_fn


def default_collate(batch: list[Any]) -> Any:
    """Stack a list of samples into a batch (see the table in the module docstring)."""
    _register_cupy()
    return collate(batch, collate_fn_map=default_collate_fn_map)
