"""``Flatten``: merge a range of dimensions into one, e.g. ``(N, 1, 28, 28)`` → ``(N, 784)``."""

from __future__ import annotations

from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor

__all__ = ["Flatten"]


class Flatten(Module):
    """Flatten dims ``start_dim..end_dim`` (default: all but the batch dimension)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
