"""The sequence models of :mod:`sparkgrad.models` written in PyTorch, key for key.

Each class here has the same submodules under the same names as its sparkgrad twin, so
``torch_model.load_state_dict(sparkgrad_state)`` works with no renaming. They serve the
side-by-side step benchmark (:mod:`sparkgrad.benchmark.step`) and the tests that load an
exported model into PyTorch and compare logits. Only this file imports torch's modules.
"""

from __future__ import annotations

import math

import torch
from torch import nn

SIDE = 28


class TorchRandomShift(nn.Module):
    """Identity in eval mode (the twins are compared in eval mode)."""

    def __init__(self, pad: int = 2) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.pad == 0:
            return x
        n, p = x.shape[0], self.pad
        padded = nn.functional.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (n, 1, 1))
        dx = torch.randint(0, 2 * p + 1, (n, 1, 1))
        rows = dy + torch.arange(SIDE)[None, :, None]
        cols = dx + torch.arange(SIDE)[None, None, :]
        return padded[torch.arange(n)[:, None, None], rows, cols]


class TorchViT(nn.Module):
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
        self.patch, self.tokens = patch, (SIDE // patch) ** 2
        self.shift = TorchRandomShift(shift)
        self.embed = nn.Linear(patch * patch, d_model)
        self.positions = nn.Parameter(torch.randn(1, self.tokens, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, nhead, dim_feedforward or 2 * d_model, dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, SIDE, SIDE)
        n, g, p = x.shape[0], SIDE // self.patch, self.patch
        x = self.shift(x).reshape(n, g, p, g, p).permute(0, 1, 3, 2, 4).reshape(n, g * g, p * p)
        return self.head(self.norm(self.encoder(self.embed(x) + self.positions)).mean(dim=1))


class TorchGPT(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        context: int = 64,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dropout: float = 0.0,
        tie_weights: bool = False,
    ) -> None:
        super().__init__()
        self.context = context
        self.token = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(context, d_model)
        self.dropout = nn.Dropout(dropout)
        block = nn.TransformerEncoderLayer(
            d_model, nhead, 4 * d_model, dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )  # fmt: skip
        self.blocks = nn.TransformerEncoder(block, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        if tie_weights:
            self.head.weight = self.token.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        x = self.token(ids) + self.position(torch.arange(t))
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        return self.head(self.norm(self.blocks(self.dropout(x), mask=mask, is_causal=True)))


class TorchLSTMLM(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        context: int = 64,
        d_model: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
        tie_weights: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = nn.Embedding(vocab_size, d_model)
        self.drop = nn.Dropout(dropout)
        self.rnn = nn.LSTM(d_model, d_model, num_layers, batch_first=True, dropout=dropout)
        self.decoder = nn.Linear(d_model, vocab_size)
        if tie_weights:
            self.decoder.weight = self.encoder.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.drop(self.encoder(ids)))
        return self.decoder(self.drop(out))


class TorchSinusoidalPositions(nn.Module):
    def __init__(self, d_model: int, max_len: int = 64) -> None:
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float64)[:, None]
        frequency = torch.exp(
            torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model)
        )
        pe = torch.zeros(max_len, d_model, dtype=torch.float64)
        pe[:, 0::2] = torch.sin(position * frequency)
        pe[:, 1::2] = torch.cos(position * frequency)[:, : d_model // 2]
        self.register_buffer("pe", pe.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[: x.shape[1]]


class TorchSeq2Seq(nn.Module):
    def __init__(
        self,
        vocab_size: int = 13,
        source_len: int = 10,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dropout: float = 0.0,
        pad: int = 0,
    ) -> None:
        super().__init__()
        self.source_len, self.scale, self.pad = source_len, math.sqrt(d_model), pad
        self.embed = nn.Embedding(vocab_size, d_model)
        self.positions = TorchSinusoidalPositions(d_model, 64)
        self.transformer = nn.Transformer(
            d_model, nhead, num_layers, num_layers, 4 * d_model, dropout, batch_first=True
        )
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        src, tgt = x[:, : self.source_len], x[:, self.source_len :]
        padding = src == self.pad
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        out = self.transformer(
            self.positions(self.embed(src) * self.scale),
            self.positions(self.embed(tgt) * self.scale),
            tgt_mask=causal,
            src_key_padding_mask=padding,
            memory_key_padding_mask=padding,
            tgt_is_causal=True,
        )
        return self.head(out)
