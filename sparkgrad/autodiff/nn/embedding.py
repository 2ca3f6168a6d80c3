"""``Embedding``: a lookup table from integer ids to learned vectors.

``Embedding(num_embeddings, embedding_dim)`` holds a weight of shape
``(num_embeddings, embedding_dim)`` initialised from N(0, 1), as PyTorch does. Calling it
on integer ids of any shape returns their rows, shape ``(*ids.shape, embedding_dim)``.
Backward adds each incoming gradient row into the row it came from; the row
``padding_idx`` (if given) starts at zero and never receives a gradient.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff.nn import init
from sparkgrad.autodiff.nn.linear import empty_parameter
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.nn.parameter import Parameter
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError, ShapeError

__all__ = ["Embedding"]


class Embedding(Module):
    """Rows of ``weight`` picked by integer ids."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ConfigError(
                    f"padding_idx must be within [-{num_embeddings}, {num_embeddings}), "
                    f"found {padding_idx}"
                )
            padding_idx %= num_embeddings  # negative counts from the end, as in PyTorch
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.weight = empty_parameter(num_embeddings, embedding_dim, device=device, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, 1), then the padding row set to zero."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.array[self.padding_idx] = 0

    def forward(self, ids: Tensor) -> Tensor:
        return F.embedding(ids, self._parameters["weight"], self.padding_idx)

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        return text + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")

    @classmethod
    def from_pretrained(
        cls, embeddings: Tensor, freeze: bool = True, padding_idx: int | None = None
    ) -> Embedding:
        """An Embedding whose weight *is* ``embeddings`` (2-D, memory shared; frozen by default)."""
        if embeddings.ndim != 2:
            raise ShapeError(f"embeddings must be 2-D, found shape {embeddings.shape}")
        rows, dim = embeddings.shape
        layer = cls(
            rows, dim, padding_idx=padding_idx, device=embeddings.device, dtype=embeddings.dtype
        )
        layer.weight = Parameter(embeddings.array, requires_grad=not freeze)
        return layer
