"""Element-wise functions of one or two tensors."""

from __future__ import annotations

import math
from typing import Any

from sparkgrad.autodiff.backend import array_module, device_of
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.autodiff.ops import fused


def _erf(x: Any) -> Any:
    """The error function on either backend (SciPy on the CPU, CuPy's copy on the GPU)."""
    if device_of(x) == "cuda":
        from cupyx.scipy.special import erf
    else:
        from scipy.special import erf
    out = erf(x)  # SciPy answers float64 for a bfloat16 (extension dtype) input
    return out if out.dtype == x.dtype else out.astype(x.dtype)


class Exp(Function):
    """z = eᵃ;  dz/da = z"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        out = array_module(a).exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (out,) = ctx.saved_tensors
        return grad * out


class Log(Function):
    """z = ln a;  dz/da = 1/a"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).log(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return grad / a


class Sqrt(Function):
    """z = √a;  dz/da = 1 / (2z)"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        out = array_module(a).sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (out,) = ctx.saved_tensors
        return grad / (2 * out)


class Tanh(Function):
    """z = tanh a;  dz/da = 1 - z²"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        out = array_module(a).tanh(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (out,) = ctx.saved_tensors
        return grad * (1 - out * out)


class Sigmoid(Function):
    """z = 1 / (1 + e⁻ᵃ);  dz/da = z(1 - z)"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        xp = array_module(a)
        e = xp.exp(-xp.abs(a))  # in (0, 1]: never overflows, keeps precision for a << 0
        out = xp.where(a >= 0, 1 / (1 + e), e / (1 + e))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (out,) = ctx.saved_tensors
        return grad * out * (1 - out)


class ReLU(Function):
    """z = max(a, 0);  dz/da = 1 where a > 0, else 0"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        out = array_module(a).maximum(a, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (out,) = ctx.saved_tensors
        return grad * (out > 0)


class GELU(Function):
    """z = a·Φ(a) (erf form) or its tanh approximation;  dz/da = Φ(a) + a·φ(a)"""

    @staticmethod
    def forward(ctx: Context, a: Any, approximate: str = "none") -> Any:
        xp = array_module(a)
        ctx.approximate = approximate
        if approximate == "tanh":  # a·a·a, not a**3: NumPy's float32 pow is slow
            t = xp.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * (a * a * a)))
            ctx.save_for_backward(a, t)  # t, kept: backward needs it too
            return 0.5 * a * (1 + t)
        cdf = fused.normal_cdf(a)  # Φ(a) = ½(1 + erf(a/√2)), kept: backward needs it too
        ctx.save_for_backward(a, cdf)
        return a * cdf

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        a = ctx.saved_tensors[0]
        if ctx.approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            t = ctx.saved_tensors[1]
            d_inner = k * (1 + 3 * 0.044715 * a * a)
            return grad * (0.5 * (1 + t) + 0.5 * a * (1 - t * t) * d_inner)
        cdf = ctx.saved_tensors[1]
        return fused.gelu_backward(grad, a, cdf)  # grad·(Φ(a) + a·φ(a)), φ(a) = e^(−a²/2)/√(2π)


class Abs(Function):
    """z = |a|;  dz/da = sign(a) (0 at 0, as PyTorch)"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).abs(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return grad * array_module(a).sign(a)


class Clamp(Function):
    """z = min(max(a, lo), hi);  dz/da = 1 where lo <= a <= hi, else 0"""

    @staticmethod
    def forward(ctx: Context, a: Any, lo: float | None = None, hi: float | None = None) -> Any:
        if lo is None and hi is None:
            raise ValueError("clamp needs at least one of min and max")
        ctx.save_for_backward(a)
        ctx.bounds = (lo, hi)
        return array_module(a).clip(a, lo, hi)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        lo, hi = ctx.bounds
        inside = True
        if lo is not None:
            inside = a >= lo
        if hi is not None:
            inside = inside & (a <= hi)
        return grad * inside


class Maximum(Function):
    """z = max(a, b);  the larger input gets the gradient, ties split it in half (PyTorch)"""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        ctx.save_for_backward(a, b)
        return array_module(a, b).maximum(a, b)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        a, b = ctx.saved_tensors
        share = array_module(grad).where(a == b, 0.5, a > b).astype(grad.dtype)
        return grad * share, grad * (1 - share)


class Minimum(Function):
    """z = min(a, b);  the smaller input gets the gradient, ties split it in half (PyTorch)"""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        ctx.save_for_backward(a, b)
        return array_module(a, b).minimum(a, b)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        a, b = ctx.saved_tensors
        share = array_module(grad).where(a == b, 0.5, a < b).astype(grad.dtype)
        return grad * share, grad * (1 - share)


class Where(Function):
    """z = a where cond else b;  dz/da = cond, dz/db = not cond"""

    @staticmethod
    def forward(ctx: Context, cond: Any, a: Any, b: Any) -> Any:
        xp = array_module(cond, a, b)
        ctx.save_for_backward(cond)
        return xp.where(cond, a, b)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (cond,) = ctx.saved_tensors
        xp = array_module(grad)
        _, need_a, need_b = ctx.needs_input_grad
        ga = xp.where(cond, grad, 0) if need_a else None
        gb = xp.where(cond, 0, grad) if need_b else None
        return None, ga, gb
