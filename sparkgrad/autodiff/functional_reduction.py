"""Reductions of the functional API: sum, mean, max/min (three forms), var/std, argmax, norm.

Re-exported by :mod:`sparkgrad.autodiff.functional`. NumPy's spelling (``axis``,
``keepdims``) and PyTorch's (``dim``, ``keepdim``) are both accepted; the ops themselves
(:mod:`sparkgrad.autodiff.ops.reduction`) see one.
"""

from __future__ import annotations

import builtins
from collections import namedtuple
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.ops import arithmetic as ar
from sparkgrad.autodiff.ops import pointwise as pw
from sparkgrad.autodiff.ops import reduction as red
from sparkgrad.autodiff.ops import shape as sh
from sparkgrad.autodiff.ops.promotion import apply_binary
from sparkgrad.autodiff.spelling import axis_arg, pick
from sparkgrad.autodiff.tensor import Tensor

__all__ = [
    "sum", "mean", "max", "min", "amax", "amin", "var", "std", "argmax", "argmin", "norm",
    "MaxResult", "MinResult",
]  # fmt: skip


def sum(  # noqa: A001 - PyTorch's name
    x: Tensor,
    axis: Any = None,
    keepdims: bool | None = None,
    *,
    dim: Any = None,
    keepdim: bool | None = None,
) -> Tensor:
    return red.Sum.apply(
        x, axis=axis_arg(pick(axis, dim, None)), keepdims=pick(keepdims, keepdim, False)
    )


def mean(
    x: Tensor,
    axis: Any = None,
    keepdims: bool | None = None,
    *,
    dim: Any = None,
    keepdim: bool | None = None,
) -> Tensor:
    return red.Mean.apply(
        x, axis=axis_arg(pick(axis, dim, None)), keepdims=pick(keepdims, keepdim, False)
    )


# max(x, dim) returns values and indices, as torch.return_types.max
MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])


def _extremum(x: Tensor, args: tuple, axis: Any, dim: Any, keep: bool, mode: str) -> Any:
    """PyTorch's three forms: ``max(x)``, ``max(x, other)``, ``max(x, dim, keepdim)``."""
    if args and isinstance(args[0], Tensor):  # max(x, other): the element-wise maximum
        op = pw.Maximum if mode == "max" else pw.Minimum
        return apply_binary(op, x, args[0], mode)
    if args:
        dim = args[0]
        keep = args[1] if len(args) > 1 else keep
    if axis is not None:  # NumPy's spelling: values only, like np.max
        return red.Extremum.apply(x, axis=axis_arg(axis), keepdims=keep, mode=mode)
    if dim is None:
        return red.Extremum.apply(x, axis=None, keepdims=False, mode=mode)
    if not isinstance(dim, int):
        raise TypeError(
            f"{mode}() takes one int dim (and returns values and indices), found {dim!r}; "
            f"use a{mode}(x, dim=(...)) to reduce over several dims"
        )
    indices = _arg(x, dim, True, "argmax" if mode == "max" else "argmin")
    values = sh.Gather.apply(x, indices.array, axis=dim)  # the gradient goes to that index
    if not keep:
        shape = tuple(n for i, n in enumerate(x.shape) if i != dim % x.ndim)
        values, indices = sh.Reshape.apply(values, shape=shape), indices.reshape(shape)
    return (MaxResult if mode == "max" else MinResult)(values, indices)


def max(  # noqa: A001 - PyTorch's name
    x: Tensor,
    *args: Any,
    axis: Any = None,
    keepdims: bool | None = None,
    dim: Any = None,
    keepdim: bool | None = None,
) -> Any:
    """``max(x)``: the largest value; ``max(x, dim)``: ``(values, indices)`` along ``dim``
    (the gradient goes to the chosen index); ``max(x, y)``: the element-wise maximum."""
    return _extremum(x, args, axis, dim, builtins.bool(pick(keepdims, keepdim, False)), "max")


def min(  # noqa: A001 - PyTorch's name
    x: Tensor,
    *args: Any,
    axis: Any = None,
    keepdims: bool | None = None,
    dim: Any = None,
    keepdim: bool | None = None,
) -> Any:
    """``min(x)``, ``min(x, dim)`` -> ``(values, indices)``, ``min(x, y)``: as :func:`max`."""
    return _extremum(x, args, axis, dim, builtins.bool(pick(keepdims, keepdim, False)), "min")


def amax(x: Tensor, dim: Any = (), keepdim: bool = False) -> Tensor:
    """Largest values over one or several dims (all for ``()``); ties share the gradient."""
    axis = None if dim in ((), None) else axis_arg(dim)
    return red.Extremum.apply(x, axis=axis, keepdims=keepdim, mode="max")


def amin(x: Tensor, dim: Any = (), keepdim: bool = False) -> Tensor:
    """Smallest values over one or several dims (all for ``()``); ties share the gradient."""
    axis = None if dim in ((), None) else axis_arg(dim)
    return red.Extremum.apply(x, axis=axis, keepdims=keepdim, mode="min")


def norm(x: Tensor, p: Any = "fro", dim: Any = None, keepdim: bool = False) -> Tensor:
    """The p-norm over ``dim`` (all elements by default): 2 / "fro", 1, inf, or any p > 0."""
    axis = axis_arg(dim)
    if p in ("fro", 2, 2.0):
        return pw.Sqrt.apply(red.Sum.apply(ar.Mul.apply(x, x), axis=axis, keepdims=keepdim))
    magnitude = pw.Abs.apply(x)
    if p in (1, 1.0):
        return red.Sum.apply(magnitude, axis=axis, keepdims=keepdim)
    if p == float("inf"):
        return red.Extremum.apply(magnitude, axis=axis, keepdims=keepdim, mode="max")
    powered = red.Sum.apply(ar.Pow.apply(magnitude, p), axis=axis, keepdims=keepdim)
    return ar.Pow.apply(powered, 1.0 / p)


def var(
    x: Tensor,
    axis: Any = None,
    correction: int = 1,
    keepdims: bool | None = None,
    *,
    dim: Any = None,
    keepdim: bool | None = None,
    unbiased: bool | None = None,
) -> Tensor:
    """Variance with Bessel's correction by default (``correction=1``), as ``torch.var``."""
    if unbiased is not None:
        correction = 1 if unbiased else 0
    axis, keep = axis_arg(pick(axis, dim, None)), pick(keepdims, keepdim, False)
    return red.Var.apply(x, axis=axis, correction=correction, keepdims=keep)


def std(
    x: Tensor,
    axis: Any = None,
    correction: int = 1,
    keepdims: bool | None = None,
    *,
    dim: Any = None,
    keepdim: bool | None = None,
    unbiased: bool | None = None,
) -> Tensor:
    """Standard deviation: ``sqrt(var(...))`` with the same arguments."""
    return pw.Sqrt.apply(
        var(x, axis, correction, keepdims, dim=dim, keepdim=keepdim, unbiased=unbiased)
    )


def _arg(x: Tensor, axis: Any, keepdims: bool, fn: str) -> Tensor:
    xp = array_module(x.array)
    if axis is None:
        return Tensor._wrap(xp.asarray(getattr(x.array, fn)(), dtype=np.int64))
    out = getattr(x.array, fn)(axis=axis).astype(np.int64)
    return Tensor._wrap(xp.expand_dims(out, axis) if keepdims else out)


def argmax(
    x: Tensor,
    axis: int | None = None,
    keepdims: bool | None = None,
    *,
    dim: int | None = None,
    keepdim: bool | None = None,
) -> Tensor:
    return _arg(x, pick(axis, dim, None), pick(keepdims, keepdim, False), "argmax")


def argmin(
    x: Tensor,
    axis: int | None = None,
    keepdims: bool | None = None,
    *,
    dim: int | None = None,
    keepdim: bool | None = None,
) -> Tensor:
    return _arg(x, pick(axis, dim, None), pick(keepdims, keepdim, False), "argmin")
