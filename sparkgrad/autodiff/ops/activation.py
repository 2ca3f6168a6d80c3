"""More activations: softplus, SiLU, leaky ReLU, ELU, hardtanh.

ReLU, GELU, sigmoid and tanh live in :mod:`.pointwise`. The conventions at the kinks are
PyTorch's: leaky ReLU and ELU take the negative side's slope at exactly 0, hardtanh's
gradient is 0 at its bounds (unlike ``clamp``, which passes it on: both are torch's choices).
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Context, Function


def _sigmoid(xp: Any, a: Any) -> Any:
    """1/(1 + e⁻ᵃ) without overflow: e^(-|a|) is in (0, 1]."""
    e = xp.exp(-xp.abs(a))
    return xp.where(a >= 0, 1 / (1 + e), e / (1 + e))


class Softplus(Function):
    """z = ln(1 + e^(βa))/β, and z = a where βa > threshold;  dz/da = σ(βa) (1 past threshold)

    Past the threshold ``ln(1 + eᵗ)`` equals ``t`` to float precision, and ``e^(βa)`` would
    overflow, so PyTorch switches to the identity there; so does this.
    """

    @staticmethod
    def forward(ctx: Context, a: Any, beta: float = 1.0, threshold: float = 20.0) -> Any:
        xp = array_module(a)
        scaled = a * beta
        linear = scaled > threshold
        ctx.save_for_backward(scaled, linear)
        safe = xp.where(linear, 0, scaled)  # no overflow warning from the unused branch
        return xp.where(linear, a, xp.log1p(xp.exp(safe)) / beta)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        scaled, linear = ctx.saved_tensors
        xp = array_module(grad)
        return xp.where(linear, grad, grad * _sigmoid(xp, scaled))


class SiLU(Function):
    """z = a·σ(a) (also called swish);  dz/da = σ(a)·(1 + a·(1 - σ(a)))"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        s = _sigmoid(array_module(a), a)
        ctx.save_for_backward(a, s)
        return a * s

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        a, s = ctx.saved_tensors
        return grad * (s * (1 + a * (1 - s)))


class LeakyReLU(Function):
    """z = a where a > 0, else slope·a;  dz/da = 1 where a > 0, else slope (also at 0)"""

    @staticmethod
    def forward(ctx: Context, a: Any, negative_slope: float = 0.01) -> Any:
        positive = a > 0
        ctx.save_for_backward(positive)
        ctx.negative_slope = negative_slope
        return array_module(a).where(positive, a, a * negative_slope)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (positive,) = ctx.saved_tensors
        return array_module(grad).where(positive, grad, grad * ctx.negative_slope)


class ELU(Function):
    """z = a where a > 0, else α(eᵃ - 1);  dz/da = 1 where a > 0, else α·eᵃ (α at 0)"""

    @staticmethod
    def forward(ctx: Context, a: Any, alpha: float = 1.0) -> Any:
        xp = array_module(a)
        negative = xp.minimum(a, 0)  # expm1 of the positive side would only be discarded
        ctx.save_for_backward(a, negative)
        ctx.alpha = alpha
        return xp.where(a > 0, a, alpha * xp.expm1(negative))

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        a, negative = ctx.saved_tensors
        xp = array_module(grad)
        return xp.where(a > 0, grad, grad * (ctx.alpha * xp.exp(negative)))


class Hardtanh(Function):
    """z = min(max(a, lo), hi);  dz/da = 1 where lo < a < hi, else 0 (0 at the bounds)"""

    @staticmethod
    def forward(ctx: Context, a: Any, min_val: float = -1.0, max_val: float = 1.0) -> Any:
        ctx.save_for_backward((a > min_val) & (a < max_val))
        return array_module(a).clip(a, min_val, max_val)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (inside,) = ctx.saved_tensors
        return grad * inside
