"""Arithmetic: ``+ - * / ** @`` and negation.

Gradients are returned in the broadcast shape of the output; the engine reduces them to
each input's shape (``graph.sum_to_shape``), so no op here deals with broadcasting.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.errors import ShapeError


class Add(Function):
    """z = a + b;  dz/da = 1, dz/db = 1"""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        return a + b

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad, grad


class Sub(Function):
    """z = a - b;  dz/da = 1, dz/db = -1"""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        return a - b

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad, (-grad if ctx.needs_input_grad[1] else None)


class Mul(Function):
    """z = a * b;  dz/da = b, dz/db = a"""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (grad * b if need_a else None), (grad * a if need_b else None)


class Div(Function):
    """z = a / b;  dz/da = 1/b, dz/db = -a/b²"""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        ga = grad / b if need_a else None
        gb = -grad * a / (b * b) if need_b else None
        return ga, gb


class Pow(Function):
    """z = a ** b;  dz/da = b·a^(b-1), dz/db = z·ln(a)"""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        out = a**b
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        a, b, out = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        ga = grad * b * a ** (b - 1) if need_a else None
        gb = None
        if need_b:
            xp = array_module(out)
            # ln a, but 0 where a == 0 and NaN where a < 0 (as PyTorch), without log warnings
            log_a = xp.where(a < 0, xp.nan, xp.log(xp.where(a > 0, a, 1)))
            gb = grad * out * log_a.astype(out.dtype)  # a may be a Python int
        return ga, gb


class Neg(Function):
    """z = -a;  dz/da = -1"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        return -a

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return -grad


class MatMul(Function):
    """z = a @ b;  dL/da = g @ bᵀ, dL/db = aᵀ @ g (1-D operands promoted, batch dims broadcast)"""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        if a.ndim == 0 or b.ndim == 0:
            raise ShapeError(
                f"matmul needs at least 1-D operands, found shapes {a.shape} and {b.shape}"
            )
        k_a = a.shape[-1]
        k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if k_a != k_b:
            raise ShapeError(
                f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                f"({k_a} != {k_b})"
            )
        ctx.save_for_backward(a, b)
        try:
            return a @ b
        except ValueError:  # batch dims that do not broadcast
            raise ShapeError(
                f"matmul: batch dims of shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be "
                "broadcast"
            ) from None

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        a, b = ctx.saved_tensors
        xp = array_module(grad)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = grad
        if b.ndim == 1:  # first, so that 1-D @ 1-D (a 0-d grad) becomes (1, 1)
            g2 = g2[..., None]
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2)
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = g2 @ xp.swapaxes(b2, -1, -2)
            if a.ndim == 1:
                ga = ga[..., 0, :]
        if ctx.needs_input_grad[1]:
            gb = xp.swapaxes(a2, -1, -2) @ g2
            if b.ndim == 1:
                gb = gb[..., 0]
        return ga, gb


class Dot(MatMul):
    """z = a · b for two 1-D tensors;  MatMul's gradients (a class of its own so that
    autocast can treat ``dot`` as PyTorch does: unlisted on the CPU, promoted on CUDA)"""
