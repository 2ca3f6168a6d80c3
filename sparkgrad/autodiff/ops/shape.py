"""Ops that move values around without changing them: views, indexing, joining, casts.

The view ops (``view_of_input = True``: reshape, permute, expand, basic indexing) return
NumPy/CuPy views of their input, and each says how to *write back* through it
(``write_back(base, view)``: the new base, given the view's new values), which is what an
in-place update of a view needs (:mod:`sparkgrad.autodiff.inplace`). The last three ops are
the out-of-place twins of in-place writes: ``IndexPut`` (``x[i] = v``), ``Fill`` (``x.fill_``)
and ``Copy`` (``x.copy_(src)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module, device_of, to_device
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.errors import ShapeError


class Reshape(Function):
    """z = a viewed with a new shape;  dL/da = g viewed with a's shape"""

    view_of_input = True

    @staticmethod
    def write_back(base: Any, view: Any, shape: tuple[int, ...]) -> Any:
        return Reshape.apply(view, shape=base.shape)

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

    view_of_input = True

    @staticmethod
    def write_back(base: Any, view: Any, axes: tuple[int, ...]) -> Any:
        inverse = tuple(int(i) for i in np.argsort([ax % base.ndim for ax in axes]))
        return Permute.apply(view, axes=inverse)

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

    view_of_input = True  # read-only: writing through it is refused before write_back

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

    view_of_input = True  # for basic indices (slices, ints): NumPy returns a view

    @staticmethod
    def write_back(base: Any, view: Any, index: Any) -> Any:
        return IndexPut.apply(base, view, index=index)

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


def _along(index: Any, axis: int) -> tuple[Any, ...]:
    """The full advanced index that ``take_along_axis(a, index, axis)`` reads."""
    xp = array_module(index)
    grid = [
        xp.arange(n).reshape((1,) * i + (n,) + (1,) * (index.ndim - i - 1))
        for i, n in enumerate(index.shape)
    ]
    grid[axis] = index
    return tuple(grid)


class Gather(Function):
    """z[i][j] = a[i][index[i][j]] along ``axis`` (torch.gather);  dL/da = g added at index"""

    @staticmethod
    def forward(ctx: Context, a: Any, index: Any, axis: int) -> Any:
        axis %= a.ndim
        if index.ndim != a.ndim or index.dtype.kind not in "iu":
            raise ShapeError(
                f"gather: index must be an integer tensor with as many dims as the input "
                f"({a.ndim}), found {index.ndim} dims of dtype {index.dtype}"
            )
        ctx.shape, ctx.where = a.shape, _along(index, axis)
        try:
            return a[ctx.where]
        except IndexError as exc:
            raise IndexError(f"gather: index out of bounds for {tuple(a.shape)}: {exc}") from None

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        xp = array_module(grad)
        out = xp.zeros(ctx.shape, dtype=grad.dtype)
        xp.add.at(out, ctx.where, grad)
        return out, None


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


class IndexPut(Function):
    """z = a with z[index] = v;  dL/da = g with zeros at index, dL/dv = g[index]"""

    @staticmethod
    def forward(ctx: Context, a: Any, v: Any, index: Any) -> Any:
        out = a.copy()
        try:
            out[index] = v
        except (IndexError, ValueError) as exc:
            shape_v = tuple(getattr(v, "shape", ()))
            raise ShapeError(
                f"cannot write a value of shape {shape_v} into index {index!r} of a tensor of "
                f"shape {tuple(a.shape)}: {exc}"
            ) from None
        ctx.index, ctx.v_ndim = index, getattr(v, "ndim", 0)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        need_a, need_v = ctx.needs_input_grad
        ga = gv = None
        if need_a:
            ga = grad.copy()
            ga[ctx.index] = 0
        if need_v:
            gv = grad[ctx.index]
            if gv.ndim < ctx.v_ndim:  # NumPy let v have extra leading 1s
                gv = gv.reshape((1,) * (ctx.v_ndim - gv.ndim) + gv.shape)
        return ga, gv


class Fill(Function):
    """z = c everywhere (a number or an array of a's shape);  dL/da = 0"""

    @staticmethod
    def forward(ctx: Context, a: Any, value: Any) -> Any:
        out = array_module(a).empty_like(a)
        out[...] = value
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return array_module(grad).zeros_like(grad)


class Copy(Function):
    """z = src broadcast to a's shape, in a's dtype and device;  dL/da = 0, dL/dsrc = g"""

    @staticmethod
    def forward(ctx: Context, a: Any, src: Any) -> Any:
        xp = array_module(a)
        ctx.src_device = device_of(src) if hasattr(src, "shape") else None
        value = to_device(src, device_of(a)) if hasattr(src, "shape") else src
        try:
            return xp.broadcast_to(xp.asarray(value, dtype=a.dtype), a.shape).copy()
        except ValueError:
            shape = tuple(getattr(src, "shape", ()))
            raise ShapeError(
                f"copy_: the source of shape {shape} does not broadcast to {tuple(a.shape)}"
            ) from None

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        ga = array_module(grad).zeros_like(grad) if ctx.needs_input_grad[0] else None
        gs = to_device(grad, ctx.src_device) if ctx.needs_input_grad[1] else None
        return ga, gs
