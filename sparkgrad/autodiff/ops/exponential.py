"""Exponentials, logarithms and small powers: exp2, expm1, log2, log10, log1p, rsqrt,
reciprocal, square, erf.

``expm1`` and ``log1p`` exist for precision, not speed: for tiny ``a``, ``exp(a) - 1`` loses
every digit of ``a`` to the rounding of ``exp(a)`` near 1 (``exp(1e-10) - 1`` is 0 in float32)
while ``expm1(a)`` keeps them. Derivatives reuse the output where PyTorch does
(``d reciprocal = -z²``, ``d rsqrt = -z³/2``), so both engines round alike.
"""

from __future__ import annotations

import math
from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.autodiff.ops.pointwise import _erf

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


class Exp2(Function):
    """z = 2ᵃ;  dz/da = z·ln 2"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        out = array_module(a).exp2(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (out,) = ctx.saved_tensors
        return grad * (out * _LN2)


class Expm1(Function):
    """z = eᵃ - 1;  dz/da = eᵃ = z + 1"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        out = array_module(a).expm1(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (out,) = ctx.saved_tensors
        return grad * (out + 1)


class Log2(Function):
    """z = log₂ a;  dz/da = 1/(a·ln 2)"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).log2(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return grad / (a * _LN2)


class Log10(Function):
    """z = log₁₀ a;  dz/da = 1/(a·ln 10)"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).log10(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return grad / (a * _LN10)


class Log1p(Function):
    """z = ln(1 + a);  dz/da = 1/(1 + a)"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).log1p(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return grad / (a + 1)


class Rsqrt(Function):
    """z = 1/√a;  dz/da = -a^(-3/2)/2 = -z³/2"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        out = 1 / array_module(a).sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (out,) = ctx.saved_tensors
        return grad * (-0.5 * out * out * out)


class Reciprocal(Function):
    """z = 1/a;  dz/da = -1/a² = -z²"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        out = 1 / a
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (out,) = ctx.saved_tensors
        return grad * -(out * out)


class Square(Function):
    """z = a²;  dz/da = 2a"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return a * a

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return grad * (2 * a)


class Erf(Function):
    """z = erf a = 2/√π ∫₀ᵃ e^(-t²) dt;  dz/da = 2/√π · e^(-a²)"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return _erf(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return grad * (_TWO_OVER_SQRT_PI * array_module(a).exp(-(a * a)))
