"""Operators and methods of :class:`Tensor`, each forwarding to :mod:`.functional`.

Kept apart from ``tensor.py`` so that file stays about what a tensor *is*; this one is
the list of what you can *do* with it (``a + b``, ``x.relu()``, ``x.sum(dim=1)`` ...).
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff import functional as F


def _reflected(fn: Any) -> Any:
    def method(self: Any, other: Any) -> Any:
        return fn(other, self)

    return method


def _compare(name: str) -> Any:
    def method(self: Any, other: Any) -> Any:
        from sparkgrad.autodiff.tensor import Tensor

        other = other.array if isinstance(other, Tensor) else other
        return Tensor._wrap(getattr(self.array, name)(other))

    method.__name__ = name
    return method


METHODS = {
    "__add__": F.add,
    "__radd__": _reflected(F.add),
    "__sub__": F.sub,
    "__rsub__": _reflected(F.sub),
    "__mul__": F.mul,
    "__rmul__": _reflected(F.mul),
    "__truediv__": F.div,
    "__rtruediv__": _reflected(F.div),
    "__pow__": F.pow,
    "__rpow__": _reflected(F.pow),
    "__matmul__": F.matmul,
    "__rmatmul__": _reflected(F.matmul),
    "__neg__": F.neg,
    "__getitem__": F.getitem,
    "__lt__": _compare("__lt__"),
    "__le__": _compare("__le__"),
    "__gt__": _compare("__gt__"),
    "__ge__": _compare("__ge__"),
    "__eq__": _compare("__eq__"),
    "__ne__": _compare("__ne__"),
    "add": F.add,
    "sub": F.sub,
    "mul": F.mul,
    "div": F.div,
    "pow": F.pow,
    "matmul": F.matmul,
    "neg": F.neg,
    "exp": F.exp,
    "log": F.log,
    "sqrt": F.sqrt,
    "tanh": F.tanh,
    "sigmoid": F.sigmoid,
    "relu": F.relu,
    "gelu": F.gelu,
    "abs": F.abs,
    "clamp": F.clamp,
    "clip": F.clamp,
    "maximum": F.maximum,
    "minimum": F.minimum,
    "sum": F.sum,
    "mean": F.mean,
    "max": F.max,
    "min": F.min,
    "var": F.var,
    "std": F.std,
    "argmax": F.argmax,
    "argmin": F.argmin,
    "reshape": F.reshape,
    "view": F.reshape,
    "flatten": F.flatten,
    "permute": F.permute,
    "transpose": F.transpose,
    "squeeze": F.squeeze,
    "unsqueeze": F.unsqueeze,
    "expand": F.expand,
    "broadcast_to": F.broadcast_to,
    "split": F.split,
    "chunk": F.chunk,
    "softmax": F.softmax,
    "log_softmax": F.log_softmax,
}


def install(cls: type) -> None:
    """Attach every entry of :data:`METHODS` to the Tensor class."""
    for name, fn in METHODS.items():
        setattr(cls, name, fn)
