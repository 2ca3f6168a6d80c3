"""``tril``/``triu``: keep one triangle of a matrix (of the last two dims), zero the rest.

The op is a fixed mask, ``z = a·M``, so the gradient is the same mask applied to ``g``. The
mask comes from ``tri``: element ``[i, j]`` is kept by ``tril`` when ``j - i <= diagonal``
and by ``triu`` when ``j - i >= diagonal``; it broadcasts over any batch dims in front.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Context, Function


def _mask(xp: Any, shape: tuple[int, ...], diagonal: int, upper: bool) -> Any:
    rows, cols = shape[-2], shape[-1]
    if upper:  # j - i >= d  <=>  not (j - i <= d - 1)
        return ~xp.tri(rows, cols, diagonal - 1, dtype=bool)
    return xp.tri(rows, cols, diagonal, dtype=bool)


class Triangle(Function):
    """z = a where the triangle's mask M holds, else 0;  dL/da = g·M"""

    @staticmethod
    def forward(ctx: Context, a: Any, diagonal: int = 0, upper: bool = False) -> Any:
        xp = array_module(a)
        mask = _mask(xp, a.shape, diagonal, upper)
        ctx.save_for_backward(mask)
        return xp.where(mask, a, xp.zeros((), dtype=a.dtype))

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (mask,) = ctx.saved_tensors
        xp = array_module(grad)
        return xp.where(mask, grad, xp.zeros((), dtype=grad.dtype))
