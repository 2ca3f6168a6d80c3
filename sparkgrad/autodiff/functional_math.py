"""The element-wise maths of the functional API: trigonometry, exponentials and logarithms,
rounding, ``erf``, ``atan2`` and the triangles ``tril``/``triu``.

Re-exported by :mod:`sparkgrad.autodiff.functional` (so also ``F.sin`` and ``sg.sin``).
dtype rules are PyTorch's: a float-valued function of an integer or boolean tensor computes
in the default float dtype (``sg.sin(sg.arange(3))`` is float32), while the rounding
functions, ``sign`` and ``square`` keep integer dtypes (``sg.floor`` of int64 is int64).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.ops import exponential as ex
from sparkgrad.autodiff.ops import rounding as rd
from sparkgrad.autodiff.ops import triangle as tri
from sparkgrad.autodiff.ops import trigonometric as tr
from sparkgrad.autodiff.ops.promotion import floating, promote
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ShapeError

__all__ = [
    "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh",
    "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh",
    "atan2", "arctan2",
    "exp2", "expm1", "log2", "log10", "log1p", "rsqrt", "reciprocal", "square", "erf",
    "sign", "floor", "ceil", "round", "trunc", "fix",
    "tril", "triu",
]  # fmt: skip


# ---- trigonometric and hyperbolic -----------------------------------------------------
def sin(input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's argument name
    return tr.Sin.apply(floating(input))


def cos(input: Tensor) -> Tensor:  # noqa: A002
    return tr.Cos.apply(floating(input))


def tan(input: Tensor) -> Tensor:  # noqa: A002
    return tr.Tan.apply(floating(input))


def asin(input: Tensor) -> Tensor:  # noqa: A002
    """Inverse sine; NaN outside [-1, 1] (value and gradient), as torch."""
    return tr.Asin.apply(floating(input))


def acos(input: Tensor) -> Tensor:  # noqa: A002
    """Inverse cosine; NaN outside [-1, 1] (value and gradient), as torch."""
    return tr.Acos.apply(floating(input))


def atan(input: Tensor) -> Tensor:  # noqa: A002
    return tr.Atan.apply(floating(input))


def sinh(input: Tensor) -> Tensor:  # noqa: A002
    return tr.Sinh.apply(floating(input))


def cosh(input: Tensor) -> Tensor:  # noqa: A002
    return tr.Cosh.apply(floating(input))


def asinh(input: Tensor) -> Tensor:  # noqa: A002
    return tr.Asinh.apply(floating(input))


def acosh(input: Tensor) -> Tensor:  # noqa: A002
    """Inverse hyperbolic cosine; NaN below 1, as torch."""
    return tr.Acosh.apply(floating(input))


def atanh(input: Tensor) -> Tensor:  # noqa: A002
    """Inverse hyperbolic tangent; ±inf at ±1 and NaN beyond, as torch."""
    return tr.Atanh.apply(floating(input))


arcsin, arccos, arctan = asin, acos, atan
arcsinh, arccosh, arctanh = asinh, acosh, atanh


def atan2(input: Any, other: Any) -> Tensor:  # noqa: A002
    """The angle of the point ``(other, input)`` in (-π, π], broadcasting; torch's argument order
    (``atan2(y, x)``). Integer operands compute in the default float dtype."""
    a, b = promote(input, other, true_div=True)  # int/int -> float, as for division
    a = floating(a) if isinstance(a, Tensor) else a
    b = floating(b) if isinstance(b, Tensor) else b
    try:
        return tr.Atan2.apply(a, b)
    except ValueError as exc:
        if "broadcast" not in str(exc):
            raise
        raise ShapeError(
            f"shapes {tuple(getattr(a, 'shape', ()))} and {tuple(getattr(b, 'shape', ()))} "
            "cannot be broadcast for 'atan2'"
        ) from None


arctan2 = atan2


# ---- exponentials, logarithms, powers ---------------------------------------------------
def exp2(input: Tensor) -> Tensor:  # noqa: A002
    return ex.Exp2.apply(floating(input))


def expm1(input: Tensor) -> Tensor:  # noqa: A002
    """``exp(x) - 1``, accurate for tiny ``x``."""
    return ex.Expm1.apply(floating(input))


def log2(input: Tensor) -> Tensor:  # noqa: A002
    return ex.Log2.apply(floating(input))


def log10(input: Tensor) -> Tensor:  # noqa: A002
    return ex.Log10.apply(floating(input))


def log1p(input: Tensor) -> Tensor:  # noqa: A002
    """``log(1 + x)``, accurate for tiny ``x``."""
    return ex.Log1p.apply(floating(input))


def rsqrt(input: Tensor) -> Tensor:  # noqa: A002
    """``1 / sqrt(x)``."""
    return ex.Rsqrt.apply(floating(input))


def reciprocal(input: Tensor) -> Tensor:  # noqa: A002
    """``1 / x``; integers give floats, as torch."""
    return ex.Reciprocal.apply(floating(input))


def square(input: Tensor) -> Tensor:  # noqa: A002
    """``x * x``; integers stay integers, booleans become int64 (as torch)."""
    if input.dtype == np.bool_:
        input = Tensor._wrap(input.array.astype(np.int64))
    return ex.Square.apply(input)


def erf(input: Tensor) -> Tensor:  # noqa: A002
    """The error function ``2/√π ∫₀ˣ e^(-t²) dt``."""
    return ex.Erf.apply(floating(input))


# ---- rounding (zero gradients) -------------------------------------------------------
def sign(input: Tensor) -> Tensor:  # noqa: A002
    """-1, 0 or 1 in the input's dtype (booleans stay booleans); gradient 0."""
    if input.dtype == np.bool_:
        return Tensor._wrap(input.array.copy())
    return rd.Sign.apply(input)


def _rounded(op: type, x: Tensor, name: str, **kwargs: Any) -> Tensor:
    """Integers are already whole: a copy, as torch; booleans are refused, as torch."""
    if x.dtype == np.bool_:
        raise NotImplementedError(f"{name} is not implemented for bool tensors (as in torch)")
    if x.dtype.kind in "iu":
        return Tensor._wrap(x.array.copy())
    return op.apply(x, **kwargs)


def floor(input: Tensor) -> Tensor:  # noqa: A002
    return _rounded(rd.Floor, input, "floor")


def ceil(input: Tensor) -> Tensor:  # noqa: A002
    return _rounded(rd.Ceil, input, "ceil")


def trunc(input: Tensor) -> Tensor:  # noqa: A002
    return _rounded(rd.Trunc, input, "trunc")


fix = trunc


def round(input: Tensor, *, decimals: int = 0) -> Tensor:  # noqa: A001, A002 - torch's names
    """Round half to even (``round(2.5) == 2``); ``decimals`` places (negative: tens...)."""
    if decimals != 0 and input.dtype.kind in "iub":
        raise NotImplementedError(f"round with decimals is not implemented for {input.dtype}")
    return _rounded(rd.Round, input, "round", decimals=decimals)


# ---- triangles -----------------------------------------------------------------------
def _triangle(x: Tensor, diagonal: int, upper: bool, name: str) -> Tensor:
    if x.ndim < 2:
        raise ShapeError(f"{name}: input tensor must have at least 2 dimensions, found {x.shape}")
    return tri.Triangle.apply(x, diagonal=int(diagonal), upper=upper)


def tril(input: Tensor, diagonal: int = 0) -> Tensor:  # noqa: A002
    """The lower triangle of the last two dims: keeps ``[i, j]`` where ``j - i <= diagonal``
    (``diagonal=-1`` also drops the main diagonal), zeros elsewhere."""
    return _triangle(input, diagonal, upper=False, name="tril")


def triu(input: Tensor, diagonal: int = 0) -> Tensor:  # noqa: A002
    """The upper triangle of the last two dims: keeps ``[i, j]`` where ``j - i >= diagonal``."""
    return _triangle(input, diagonal, upper=True, name="triu")
