"""``VisionTransformer``: MNIST as a sequence of patches (``--model vit``).

::

    (N, 28, 28) -shift (training only)-> -cut into 7x7 patches-> (N, 16, 49)
      -embed (Linear 49→d)-> + learned positions (1, 16, d)
      -TransformerEncoder: pre-norm layers, GELU MLP-> (N, 16, d)
      -LayerNorm, mean over the 16 tokens-> (N, d) -head-> (N, 10) logits

A Transformer has no notion of "neighbouring pixels" beyond the position embeddings, so on
the 4,000 training digits of ``mnist-5k`` it overfits; :class:`RandomShift` (a layer, like
Keras's ``RandomTranslation``: active in training, identity in eval) moves each training
image by up to 2 pixels, which is what brings it past 95%.
"""

from __future__ import annotations

import sparkgrad as sg
from sparkgrad.autodiff import nn
from sparkgrad.autodiff.random import manual_seed
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ShapeError
from sparkgrad.models.recompute import set_recompute

__all__ = ["RandomShift", "VisionTransformer", "build_vit"]

SIDE = 28


class RandomShift(nn.Module):
    """Move each image by up to ``pad`` pixels in x and y (zero fill); training mode only."""

    def __init__(self, pad: int = 2) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.pad == 0:
            return x
        n, side, p = x.shape[0], x.shape[1], self.pad
        padded = sg.zeros(n, side + 2 * p, side + 2 * p, dtype=x.dtype, device=x.device)
        padded[:, p : p + side, p : p + side] = x
        dy = sg.randint(0, 2 * p + 1, (n, 1, 1))  # drawn by the seeded generator (host)
        dx = sg.randint(0, 2 * p + 1, (n, 1, 1))
        shifts = sg.stack([dy, dx]).to(x.device)  # one host→device copy of 2n numbers
        iota = self._iota(max(n, side), x.device)  # 0, 1, 2, ... kept on x's device
        rows = shifts[0] + iota[:side].reshape(1, side, 1)
        cols = shifts[1] + iota[:side].reshape(1, 1, side)
        return padded[iota[:n].reshape(n, 1, 1), rows, cols]  # indices on the data's device

    def _iota(self, length: int, device: str) -> Tensor:
        """``arange(length)`` on ``device``, made once (not a buffer: not in the state_dict)."""
        cached = self.__dict__.get("_iota_cache")
        if cached is None or cached.device != device or cached.shape[0] < length:
            cached = sg.arange(length, device=device)
            self.__dict__["_iota_cache"] = cached
        return cached


class VisionTransformer(nn.Module):
    """Patches → linear embedding + positions → encoder → mean-pooled LayerNorm → classes."""

    def __init__(
        self,
        patch: int = 7,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int | None = None,
        dropout: float = 0.0,
        num_classes: int = 10,
        shift: int = 2,
    ) -> None:
        super().__init__()
        if SIDE % patch:
            raise ShapeError(f"the patch size must divide {SIDE}, found {patch}")
        self.patch, self.tokens = patch, (SIDE // patch) ** 2
        self.shift = RandomShift(shift)
        self.embed = nn.Linear(patch * patch, d_model)
        self.positions = nn.Parameter(sg.randn(1, self.tokens, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, nhead, dim_feedforward or 2 * d_model, dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, num_layers)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def patches(self, images: Tensor) -> Tensor:
        """(N, 28, 28) → (N, tokens, patch²): row-major patches, each row-major inside."""
        n, g, p = images.shape[0], SIDE // self.patch, self.patch
        return images.reshape(n, g, p, g, p).permute(0, 1, 3, 2, 4).reshape(n, g * g, p * p)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2 and x.shape[1] == SIDE * SIDE:
            x = x.reshape(-1, SIDE, SIDE)
        elif x.ndim == 4 and x.shape[1] == 1:
            x = x.reshape(-1, SIDE, SIDE)
        if x.ndim != 3 or x.shape[1:] != (SIDE, SIDE):
            raise ShapeError(
                f"VisionTransformer expects images (N, 28, 28), (N, 1, 28, 28) or flat "
                f"(N, 784), found {tuple(x.shape)}"
            )
        tokens = self.embed(self.patches(self.shift(x))) + self.positions
        return self.head(self.norm(self.encoder(tokens)).mean(dim=1))


def build_vit(seed: int = 0, recompute: str = "none", **options: object) -> VisionTransformer:
    """A :class:`VisionTransformer` drawn right after ``manual_seed(seed)``.

    ``recompute``: ``"none"``, ``"blocks"`` or ``"selective"`` (:mod:`.recompute`).
    """
    manual_seed(seed)
    return set_recompute(VisionTransformer(**options), recompute)
