"""Step functions: sign, floor, ceil, round, trunc.

Each is constant between its jumps, so its derivative is 0 wherever it exists, and at the
jumps (where it does not) PyTorch also returns 0: backward is a tensor of zeros, never
``None``, so ``x.grad`` exists after ``x.floor().sum().backward()`` exactly as in PyTorch.
Integer tensors pass through unchanged in dtype (``torch.floor`` of int64 is int64).
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Context, Function


def _zeros(grad: Any) -> Any:
    return array_module(grad).zeros_like(grad)


class Sign(Function):
    """z = sign a ∈ {-1, 0, 1};  dz/da = 0"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        return array_module(a).sign(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return _zeros(grad)


class Floor(Function):
    """z = ⌊a⌋ (largest integer <= a);  dz/da = 0"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        return array_module(a).floor(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return _zeros(grad)


class Ceil(Function):
    """z = ⌈a⌉ (smallest integer >= a);  dz/da = 0"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        return array_module(a).ceil(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return _zeros(grad)


class Round(Function):
    """z = a rounded to ``decimals`` places, halves to even (2.5 -> 2, as torch);  dz/da = 0

    With ``decimals`` it is ``rint(a·10ᵈ)/10ᵈ`` (``rint(a/10⁻ᵈ)·10⁻ᵈ`` for negative ``d``),
    the order of operations PyTorch uses, so both round the same.
    """

    @staticmethod
    def forward(ctx: Context, a: Any, decimals: int = 0) -> Any:
        xp = array_module(a)
        if decimals == 0 or a.dtype.kind != "f":
            return xp.rint(a) if a.dtype.kind == "f" else a.copy()
        scale = a.dtype.type(10.0 ** abs(decimals))
        if decimals > 0:
            return xp.rint(a * scale) / scale
        return xp.rint(a / scale) * scale

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return _zeros(grad)


class Trunc(Function):
    """z = a with its fraction dropped (towards zero);  dz/da = 0"""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        return array_module(a).trunc(a)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return _zeros(grad)
