"""Ops that move values around without changing them: views, indexing, joining, casts."""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module, device_of, to_device
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.errors import ShapeError


class Reshape(Function):
    """z = a viewed with a new shape;  dL/da = g viewed with a's shape"""

    @staticmethod
    def forward(ctx: Context, a: Any, shape: tuple[int, ...]) -> Any:
        ctx.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ShapeError(
                f"cannot reshape a tensor of shape {tuple(a.shape)} ({a.size} elements) "
                f"into shape {tuple(shape)}"
            ) from None

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad.reshape(ctx.shape)


class Permute(Function):
    """z = a with axes reordered;  dL/da = g with the inverse order"""

    @staticmethod
    def forward(ctx: Context, a: Any, axes: tuple[int, ...]) -> Any:
        if sorted(ax % max(a.ndim, 1) for ax in axes) != list(range(a.ndim)):
            raise ShapeError(f"permute: {axes} is not an order of the {a.ndim} axes of {a.shape}")
        ctx.axes = axes
        return array_module(a).transpose(a, axes)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return array_module(grad).transpose(grad, np.argsort([ax % grad.ndim for ax in ctx.axes]))


class Expand(Function):
    """z = a broadcast to a larger shape;  dL/da = g summed back (done by the engine)"""

    @staticmethod
    def forward(ctx: Context, a: Any, shape: tuple[int, ...]) -> Any:
        try:
            return array_module(a).broadcast_to(a, shape)
        except ValueError:
            raise ShapeError(f"cannot expand shape {tuple(a.shape)} to {tuple(shape)}") from None

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad  # graph.sum_to_shape reduces it to a's shape


def _is_basic(index: Any) -> bool:
    """True for indices made of ints, slices, None and Ellipsis (each element hit at most once)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, slice, type(None), type(Ellipsis))) for p in parts)


class GetItem(Function):
    """z = a[index];  dL/da = g scattered back into zeros (added up where indices repeat)"""

    @staticmethod
    def forward(ctx: Context, a: Any, index: Any) -> Any:
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        try:
            return a[index]
        except IndexError as exc:
            raise IndexError(
                f"index {index!r} does not fit a tensor of shape {tuple(a.shape)}: {exc}"
            ) from None

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        xp = array_module(grad)
        out = xp.zeros(ctx.shape, dtype=grad.dtype)
        if _is_basic(ctx.index):
            out[ctx.index] = grad
        else:
            xp.add.at(out, ctx.index, grad)
        return out


class Cat(Function):
    """z = [a₁, a₂, ...] joined along an axis;  dL/daᵢ = the slice of g that aᵢ became"""

    @staticmethod
    def forward(ctx: Context, *arrays: Any, axis: int = 0) -> Any:
        xp = array_module(*arrays)
        ctx.axis, ctx.sizes = axis, [a.shape[axis] for a in arrays]
        try:
            return xp.concatenate(arrays, axis=axis)
        except ValueError:
            shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
            raise ShapeError(
                f"cat along axis {axis}: shapes {shapes} differ off that axis"
            ) from None

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        xp = array_module(grad)
        cuts = np.cumsum(ctx.sizes)[:-1].tolist()
        return tuple(xp.split(grad, cuts, axis=ctx.axis))


class Stack(Function):
    """z = [a₁, a₂, ...] stacked on a new axis;  dL/daᵢ = g[..., i, ...]"""

    @staticmethod
    def forward(ctx: Context, *arrays: Any, axis: int = 0) -> Any:
        xp = array_module(*arrays)
        ctx.axis = axis
        try:
            return xp.stack(arrays, axis=axis)
        except ValueError:
            shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
            raise ShapeError(f"stack needs equal shapes, found {shapes}") from None

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        xp = array_module(grad)
        return tuple(xp.take(grad, i, axis=ctx.axis) for i in range(grad.shape[ctx.axis]))


class Cast(Function):
    """z = a converted to another float dtype;  dL/da = g converted back"""

    @staticmethod
    def forward(ctx: Context, a: Any, dtype: Any) -> Any:
        ctx.dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad.astype(ctx.dtype)


class Move(Function):
    """z = a copied to another device;  dL/da = g copied back"""

    @staticmethod
    def forward(ctx: Context, a: Any, device: str) -> Any:
        ctx.device = device_of(a)
        return to_device(a, device)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return to_device(grad, ctx.device)


class Clone(Function):
    """z = a copy of a;  dL/da = g"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        return a.copy()

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad
