"""``Seq2SeqTransformer``: the encoder-decoder of "Attention is all you need" (``--model
seq2seq``), trained to reverse digit strings (:mod:`sparkgrad.dataset.reversal`).

::

    src (N, S) -embed·√d + sinusoidal positions-> encoder (self-attention, src padding masked)
    tgt_in (N, T) -embed·√d + positions-> decoder (causal self-attention, then attention
      over the encoder's output with the same src padding mask) -head-> (N, T, V)

Both masks are in real use: sources have 1 to 10 digits, so most rows end in PAD tokens
that no query may attend to (``src_key_padding_mask``, ``memory_key_padding_mask``), and
the decoder writes left to right (``tgt_mask``, causal). The engine hands a strategy one
input tensor, so the model's input is ``src`` and ``tgt_in`` side by side; ``forward``
cuts it at ``source_len``.
"""

from __future__ import annotations

import math

from sparkgrad.autodiff import nn
from sparkgrad.autodiff.random import manual_seed
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ShapeError
from sparkgrad.models.recompute import set_recompute
from sparkgrad.models.sequence_parts import SinusoidalPositions, check_token_ids

__all__ = ["Seq2SeqTransformer", "build_seq2seq"]


class Seq2SeqTransformer(nn.Module):
    """``nn.Transformer`` between shared token embeddings and a linear head."""

    def __init__(
        self,
        vocab_size: int = 13,  # PAD, BOS, EOS and ten digits (sparkgrad.dataset.reversal)
        source_len: int = 10,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dropout: float = 0.0,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.vocab_size, self.source_len, self.scale = vocab_size, source_len, math.sqrt(d_model)
        self.embed = nn.Embedding(vocab_size, d_model)
        self.positions = SinusoidalPositions(d_model, max_len=64)
        self.transformer = nn.Transformer(
            d_model, nhead, num_layers, num_layers, 4 * d_model, dropout, batch_first=True
        )
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, x: Tensor) -> Tensor:
        check_token_ids(x, self.vocab_size)
        if x.shape[1] <= self.source_len:
            raise ShapeError(
                f"expected source ({self.source_len} ids) and target side by side, found "
                f"{x.shape[1]} ids per row"
            )
        src, tgt = x[:, : self.source_len], x[:, self.source_len :]
        padding = src == self.pad_id
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1], device=x.device)
        out = self.transformer(
            self.positions(self.embed(src) * self.scale),
            self.positions(self.embed(tgt) * self.scale),
            tgt_mask=causal,
            src_key_padding_mask=padding,
            memory_key_padding_mask=padding,
            tgt_is_causal=True,
        )
        return self.head(out)


def build_seq2seq(seed: int = 0, recompute: str = "none", **options: object) -> Seq2SeqTransformer:
    """A :class:`Seq2SeqTransformer` drawn right after ``manual_seed(seed)``.

    ``recompute``: ``"none"``, ``"blocks"`` or ``"selective"`` (:mod:`.recompute`).
    """
    manual_seed(seed)
    return set_recompute(Seq2SeqTransformer(**options), recompute)
