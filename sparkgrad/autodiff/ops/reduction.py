"""Reductions over an axis (or all axes). ``axis`` is None, an int or a tuple of ints."""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Context, Function


def _axes(ndim: int, axis: Any) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(sorted(a % ndim if ndim else 0 for a in axis))


def _expand_back(grad: Any, shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Any:
    """Give a reduced gradient its reduced axes back (as size 1) so it broadcasts to ``shape``."""
    if not keepdims:
        xp = array_module(grad)
        grad = xp.expand_dims(grad, axes) if axes else grad
    return grad


class Sum(Function):
    """z = Σ a over axes;  dz/da = 1 (the gradient is copied back over the summed axes)"""

    @staticmethod
    def forward(ctx: Context, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, _axes(a.ndim, axis), keepdims
        return a.sum(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        grad = _expand_back(grad, ctx.shape, ctx.axes, ctx.keepdims)
        return array_module(grad).broadcast_to(grad, ctx.shape)


class Mean(Function):
    """z = Σ a / n over axes;  dz/da = 1/n"""

    @staticmethod
    def forward(ctx: Context, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, _axes(a.ndim, axis), keepdims
        ctx.count = 1
        for ax in ctx.axes:
            ctx.count *= a.shape[ax]
        return a.mean(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        grad = _expand_back(grad, ctx.shape, ctx.axes, ctx.keepdims) / ctx.count
        return array_module(grad).broadcast_to(grad, ctx.shape)


class Extremum(Function):
    """z = max (or min) of a over axes;  dz/da = 1 at the extreme elements (ties share evenly)"""

    @staticmethod
    def forward(
        ctx: Context, a: Any, axis: Any = None, keepdims: bool = False, mode: str = "max"
    ) -> Any:
        if a.size == 0:
            raise ValueError(f"{mode}() of an empty tensor (shape {a.shape}) has no value")
        axes = _axes(a.ndim, axis)
        reduce = a.max if mode == "max" else a.min
        out = reduce(axis=axes, keepdims=True)
        ctx.save_for_backward(a, out)
        ctx.axes, ctx.keepdims = axes, keepdims
        return out if keepdims else out.reshape([n for i, n in enumerate(a.shape) if i not in axes])

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        a, out = ctx.saved_tensors
        grad = _expand_back(grad, a.shape, ctx.axes, ctx.keepdims)
        hits = (a == out).astype(grad.dtype)
        return grad * hits / hits.sum(axis=ctx.axes, keepdims=True)


class Var(Function):
    """z = Σ (a - ā)² / (n - correction);  dz/da = 2(a - ā) / (n - correction)"""

    @staticmethod
    def forward(
        ctx: Context, a: Any, axis: Any = None, correction: int = 1, keepdims: bool = False
    ) -> Any:
        axes = _axes(a.ndim, axis)
        count = 1
        for ax in axes:
            count *= a.shape[ax]
        centered = a - a.mean(axis=axes, keepdims=True)
        ctx.save_for_backward(centered)
        ctx.axes, ctx.keepdims, ctx.denom = axes, keepdims, max(count - correction, 0)
        return (centered * centered).sum(axis=axes, keepdims=keepdims) / ctx.denom

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (centered,) = ctx.saved_tensors
        grad = _expand_back(grad, centered.shape, ctx.axes, ctx.keepdims)
        return grad * centered * (2 / ctx.denom)
