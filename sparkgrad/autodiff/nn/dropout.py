"""``Dropout`` and ``Dropout2d``: randomly zero activations while training, nothing in eval.

In training mode each element is kept with probability ``1 - p`` and scaled by
``1 / (1 - p)``, so the expected value of every activation is unchanged and the layer can
simply switch off for evaluation (``model.eval()``). The mask comes from sparkgrad's seeded
generator, so a seeded run drops the same units every time.

``Dropout2d`` draws one coin per *channel* of an (N, C, H, W) input and zeros whole
feature maps: neighbouring pixels are so correlated that dropping single ones barely
regularises a convolutional layer.
"""

from __future__ import annotations

from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError

__all__ = ["Dropout", "Dropout2d"]


class Dropout(Module):
    """Zero each element with probability ``p`` during training (identity in eval mode)."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout2d(Module):
    """Zero each whole channel with probability ``p`` during training (identity in eval mode)."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout2d(x, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
