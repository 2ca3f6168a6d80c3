"""``LayerNorm``: normalise each sample over its last dimensions, then scale and shift.

For an input ``(*, *normalized_shape)`` every sample is shifted to mean 0 and scaled to
variance 1 (the biased variance, plus ``eps``) over the trailing ``normalized_shape``
dimensions, then multiplied by ``weight`` (initialised to 1) and shifted by ``bias``
(initialised to 0). Unlike batch norm, it needs no running statistics, so train and eval
behave the same.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff.nn import init
from sparkgrad.autodiff.nn.linear import empty_parameter
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor

__all__ = ["LayerNorm"]


class LayerNorm(Module):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last ``len(normalized_shape)`` dims."""

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...] | list[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = empty_parameter(*self.normalized_shape, device=device, dtype=dtype)
            if bias:
                self.bias = empty_parameter(*self.normalized_shape, device=device, dtype=dtype)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        params = self._parameters
        return F.layer_norm(x, self.normalized_shape, params["weight"], params["bias"], self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )
