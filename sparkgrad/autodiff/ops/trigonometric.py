"""Trigonometric and hyperbolic functions and their inverses, plus ``atan2``.

Every derivative is written the way PyTorch writes it (``derivatives.yaml``), so the two
engines round the same way: e.g. ``d asin(a)/da = 1/sqrt(1 - a²)`` is ``(1 - a·a)^(-1/2)``,
NaN outside ``[-1, 1]`` where the function itself is NaN. Inputs are floating point here;
:mod:`sparkgrad.autodiff.functional_math` converts integers first (as ``torch.sin`` does).
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Context, Function


class Sin(Function):
    """z = sin a;  dz/da = cos a"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).sin(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return grad * array_module(a).cos(a)


class Cos(Function):
    """z = cos a;  dz/da = -sin a"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).cos(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return grad * -array_module(a).sin(a)


class Tan(Function):
    """z = tan a;  dz/da = 1 + z²  (= 1/cos² a)"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        out = array_module(a).tan(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (out,) = ctx.saved_tensors
        return grad * (1 + out * out)


class Asin(Function):
    """z = asin a;  dz/da = 1/√(1 - a²)"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).arcsin(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return grad / array_module(a).sqrt(1 - a * a)


class Acos(Function):
    """z = acos a;  dz/da = -1/√(1 - a²)"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).arccos(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return -grad / array_module(a).sqrt(1 - a * a)


class Atan(Function):
    """z = atan a;  dz/da = 1/(1 + a²)"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).arctan(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return grad / (1 + a * a)


class Sinh(Function):
    """z = sinh a;  dz/da = cosh a"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).sinh(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return grad * array_module(a).cosh(a)


class Cosh(Function):
    """z = cosh a;  dz/da = sinh a"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).cosh(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return grad * array_module(a).sinh(a)


class Asinh(Function):
    """z = asinh a;  dz/da = 1/√(a² + 1)"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).arcsinh(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return grad / array_module(a).sqrt(a * a + 1)


class Acosh(Function):
    """z = acosh a;  dz/da = 1/√(a² - 1)  (defined for a >= 1)"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).arccosh(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return grad / array_module(a).sqrt(a * a - 1)


class Atanh(Function):
    """z = atanh a;  dz/da = 1/(1 - a²)  (defined for |a| < 1)"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return array_module(a).arctanh(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (a,) = ctx.saved_tensors
        return grad / (1 - a * a)


class Atan2(Function):
    """z = atan2(a, b), the angle of the point (b, a);  dz/da = b/(a²+b²), dz/db = -a/(a²+b²)

    At the origin (where a² + b² is 0) the angle jumps and both derivatives are taken as 0,
    as PyTorch does (it masks 1/(a² + b²) to 0 there).
    """

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        ctx.save_for_backward(a, b)
        return array_module(a, b).arctan2(a, b)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        a, b = ctx.saved_tensors
        xp = array_module(grad)
        need_a, need_b = ctx.needs_input_grad
        denom = a * a + b * b
        origin = denom == 0
        recip = xp.where(origin, 0, 1 / xp.where(origin, 1, denom))
        return (grad * b * recip if need_a else None), (grad * -a * recip if need_b else None)
