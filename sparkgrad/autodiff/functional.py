"""The functional API: every op as a plain function, with PyTorch's names and arguments.

Imported as ``import sparkgrad.nn.functional as F`` (or ``sparkgrad.autodiff.functional``).
Reductions accept NumPy's spelling (``axis``, ``keepdims``) and PyTorch's (``dim``,
``keepdim``); this module is where the two meet, so the ops themselves see one spelling.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.functional_conv import *  # noqa: F403 - conv2d, pooling
from sparkgrad.autodiff.functional_nn import *  # noqa: F403 - linear, softmax, losses ...
from sparkgrad.autodiff.grad_mode import is_grad_enabled
from sparkgrad.autodiff.ops import arithmetic as ar
from sparkgrad.autodiff.ops import pointwise as pw
from sparkgrad.autodiff.ops import reduction as red
from sparkgrad.autodiff.ops import shape as sh
from sparkgrad.autodiff.ops.promotion import floating, promote
from sparkgrad.autodiff.spelling import axis_arg, pick
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ShapeError

Operand = Tensor | float | int | Any


def _binary(fn: type, a: Operand, b: Operand, symbol: str) -> Tensor:
    """Apply a broadcasting binary op, turning NumPy's broadcast error into a ShapeError."""
    a, b = promote(a, b, true_div=fn is ar.Div)
    try:
        return fn.apply(a, b)
    except ValueError as exc:
        if "broadcast" not in str(exc):
            raise
        sa = a.shape if hasattr(a, "shape") else ()
        sb = b.shape if hasattr(b, "shape") else ()
        raise ShapeError(
            f"shapes {tuple(sa)} and {tuple(sb)} cannot be broadcast for '{symbol}'"
        ) from None


# ---- arithmetic ---------------------------------------------------------------------
def add(a: Operand, b: Operand) -> Tensor:
    return _binary(ar.Add, a, b, "+")


def sub(a: Operand, b: Operand) -> Tensor:
    return _binary(ar.Sub, a, b, "-")


def mul(a: Operand, b: Operand) -> Tensor:
    return _binary(ar.Mul, a, b, "*")


def div(a: Operand, b: Operand) -> Tensor:
    return _binary(ar.Div, a, b, "/")


def pow(a: Operand, b: Operand) -> Tensor:  # noqa: A001 - PyTorch's name
    return _binary(ar.Pow, a, b, "**")


def neg(a: Tensor) -> Tensor:
    return ar.Neg.apply(a)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    return ar.MatMul.apply(a, b)


# ---- element-wise -------------------------------------------------------------------
def exp(x: Tensor) -> Tensor:
    return pw.Exp.apply(floating(x))


def log(x: Tensor) -> Tensor:
    return pw.Log.apply(floating(x))


def sqrt(x: Tensor) -> Tensor:
    return pw.Sqrt.apply(floating(x))


def tanh(x: Tensor) -> Tensor:
    return pw.Tanh.apply(floating(x))


def sigmoid(x: Tensor) -> Tensor:
    return pw.Sigmoid.apply(floating(x))


def relu(x: Tensor) -> Tensor:
    return pw.ReLU.apply(x)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', found {approximate!r}")
    return pw.GELU.apply(x, approximate=approximate)


def abs(x: Tensor) -> Tensor:  # noqa: A001 - PyTorch's name
    return pw.Abs.apply(x)


def clamp(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
    return pw.Clamp.apply(x, lo=min, hi=max)


clip = clamp


def maximum(a: Operand, b: Operand) -> Tensor:
    return _binary(pw.Maximum, a, b, "maximum")


def minimum(a: Operand, b: Operand) -> Tensor:
    return _binary(pw.Minimum, a, b, "minimum")


def where(condition: Any, a: Operand, b: Operand) -> Tensor:
    cond = condition.array if isinstance(condition, Tensor) else condition
    return pw.Where.apply(cond, a, b)


# ---- reductions ---------------------------------------------------------------------
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


def max(  # noqa: A001 - PyTorch's name
    x: Tensor,
    axis: Any = None,
    keepdims: bool | None = None,
    *,
    dim: Any = None,
    keepdim: bool | None = None,
) -> Tensor:
    """Largest values over ``axis`` (all axes by default). Indices come from :func:`argmax`."""
    axis, keep = axis_arg(pick(axis, dim, None)), pick(keepdims, keepdim, False)
    return red.Extremum.apply(x, axis=axis, keepdims=keep, mode="max")


def min(  # noqa: A001 - PyTorch's name
    x: Tensor,
    axis: Any = None,
    keepdims: bool | None = None,
    *,
    dim: Any = None,
    keepdim: bool | None = None,
) -> Tensor:
    """Smallest values over ``axis`` (all axes by default). Indices come from :func:`argmin`."""
    axis, keep = axis_arg(pick(axis, dim, None)), pick(keepdims, keepdim, False)
    return red.Extremum.apply(x, axis=axis, keepdims=keep, mode="min")


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
    return sqrt(var(x, axis, correction, keepdims, dim=dim, keepdim=keepdim, unbiased=unbiased))


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


# ---- shapes -------------------------------------------------------------------------
def _shape_args(shape: Sequence[Any]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def reshape(x: Tensor, *shape: Any) -> Tensor:
    return sh.Reshape.apply(x, shape=_shape_args(shape))


view = reshape


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    nd = x.ndim
    start, end = start_dim % nd if nd else 0, end_dim % nd if nd else 0
    shape = x.shape[:start] + (-1,) + x.shape[end + 1 :]
    return reshape(x, shape)


def permute(x: Tensor, *axes: Any) -> Tensor:
    return sh.Permute.apply(x, axes=_shape_args(axes))


def transpose(x: Tensor, dim0: int = -2, dim1: int = -1) -> Tensor:
    axes = list(range(x.ndim))
    axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
    return permute(x, axes)


def squeeze(x: Tensor, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    axis = pick(axis, dim, None)
    if axis is None:
        return reshape(x, tuple(n for n in x.shape if n != 1))
    axis %= x.ndim
    if x.shape[axis] != 1:
        return x
    return reshape(x, x.shape[:axis] + x.shape[axis + 1 :])


def unsqueeze(x: Tensor, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    axis = pick(axis, dim, None)
    axis = axis % (x.ndim + 1)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def expand(x: Tensor, *shape: Any) -> Tensor:
    """Broadcast to ``shape``; ``-1`` keeps that dimension (as ``torch.Tensor.expand``)."""
    target = list(_shape_args(shape))
    offset = len(target) - x.ndim
    for i, n in enumerate(target):
        if n == -1:
            target[i] = x.shape[i - offset]
    return sh.Expand.apply(x, shape=tuple(target))


def broadcast_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    return sh.Expand.apply(x, shape=tuple(shape))


def getitem(x: Tensor, index: Any) -> Tensor:
    """``x[index]``: slices, integers, integer arrays/tensors, boolean masks."""
    if isinstance(index, Tensor):
        index = index.array
    elif isinstance(index, tuple):
        index = tuple(i.array if isinstance(i, Tensor) else i for i in index)
    elif isinstance(index, list):
        index = np.asarray(index)
    return sh.GetItem.apply(x, index=index)


def cat(tensors: Sequence[Tensor], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    return sh.Cat.apply(*tensors, axis=pick(axis, dim, 0))


concatenate = cat


def stack(tensors: Sequence[Tensor], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    return sh.Stack.apply(*tensors, axis=pick(axis, dim, 0))


def split(
    x: Tensor,
    split_size_or_sections: int | Sequence[int],
    axis: int | None = None,
    *,
    dim: int | None = None,
) -> tuple[Tensor, ...]:
    """Pieces of ``x`` along ``axis``: chunks of one size, or the listed sizes (``torch.split``)."""
    axis = pick(axis, dim, 0) % x.ndim
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        sizes = [step] * (n // step) + ([n % step] if n % step else [])
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ShapeError(f"split sizes {sizes} do not add up to {n} (axis {axis} of {x.shape})")
    pieces, start = [], 0
    for size in sizes:
        index = (slice(None),) * axis + (slice(start, start + size),)
        pieces.append(getitem(x, index))
        start += size
    return tuple(pieces)


def chunk(
    x: Tensor, chunks: int, axis: int | None = None, *, dim: int | None = None
) -> tuple[Tensor, ...]:
    axis = pick(axis, dim, 0)
    n = x.shape[axis]
    return split(x, -(-n // chunks), axis)


def cast(x: Tensor, dtype: Any) -> Tensor:
    """``x`` converted to ``dtype`` (differentiable between float dtypes)."""
    if not np.dtype(dtype).kind == "f" or not is_grad_enabled():
        return Tensor._wrap(x.array.astype(dtype))
    return sh.Cast.apply(x, dtype=dtype)


def move(x: Tensor, device: str) -> Tensor:
    """``x`` copied to ``device`` (differentiable)."""
    return sh.Move.apply(x, device=device)


def clone(x: Tensor) -> Tensor:
    return sh.Clone.apply(x)
