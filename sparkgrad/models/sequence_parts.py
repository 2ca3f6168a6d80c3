"""Small parts the sequence models share: a per-token loss, sinusoidal positions, sampling.

- :class:`TokenCrossEntropy` — cross-entropy over every position of ``(N, T, V)`` logits
  against ``(N, T)`` targets: the ``F.cross_entropy(logits.view(-1, V), y.view(-1))`` line
  of every PyTorch language-model example, as a loss module the engine can hand to a strategy.
- :class:`SinusoidalPositions` — "Attention is all you need"'s fixed position code,
  ``PE(pos, 2i) = sin(pos / 10000^(2i/d))``, ``PE(pos, 2i+1) = cos(pos / 10000^(2i/d))``,
  kept as a *buffer*: it moves with ``.to(device)`` and is saved in ``state_dict`` like
  PyTorch's ``register_buffer``, but no optimizer ever sees it.
- :func:`sample_next` — the next token from the last position's logits: divide by the
  temperature, keep the ``top_k`` largest, softmax, draw (from sparkgrad's generator).
"""

from __future__ import annotations

import math

import numpy as np

import sparkgrad as sg
from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff import nn
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError, ShapeError


class TokenCrossEntropy(nn.Module):
    """Mean cross-entropy over all (sample, position) pairs; ``ignore_index`` positions skipped."""

    def __init__(self, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        vocab = logits.shape[-1]
        return F.cross_entropy(
            logits.reshape(-1, vocab), target.reshape(-1), ignore_index=self.ignore_index
        )


def sinusoid_table(length: int, d_model: int) -> np.ndarray:
    """``(length, d_model)`` float32: sin in the even columns, cos in the odd ones."""
    position = np.arange(length)[:, None]
    frequency = np.exp(np.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    table = np.zeros((length, d_model))
    table[:, 0::2] = np.sin(position * frequency)
    table[:, 1::2] = np.cos(position * frequency)[:, : d_model // 2]
    return table.astype(np.float32)


class SinusoidalPositions(nn.Module):
    """``x + PE[:T]`` for ``x`` of shape ``(N, T, d_model)``; ``PE`` is the buffer ``pe``."""

    def __init__(self, d_model: int, max_len: int = 512) -> None:
        super().__init__()
        self.register_buffer("pe", sg.tensor(sinusoid_table(max_len, d_model)))

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] > self.pe.shape[0]:
            raise ShapeError(
                f"a sequence of {x.shape[1]} positions is longer than the {self.pe.shape[0]} "
                f"this positional encoding holds"
            )
        return x + self.pe[: x.shape[1]]


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None) -> Tensor:
    """One token id per row of ``logits`` ``(N, V)``; ``temperature`` 0 means argmax."""
    if temperature < 0 or not math.isfinite(temperature):
        raise ConfigError(f"temperature must be a finite number >= 0, found {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None:
        if top_k < 1:
            raise ConfigError(f"top_k must be >= 1, found {top_k}")
        k = min(top_k, logits.shape[-1])
        kth = np.sort(logits.numpy(), axis=-1)[:, -k][:, None]
        logits = logits.masked_fill(sg.tensor(logits.numpy() < kth), float("-inf"))
    probs = F.softmax(logits, dim=-1).numpy().astype(np.float64)
    u = sg.rand(len(probs)).numpy()[:, None]  # sparkgrad's generator: seeded, checkpointed
    cdf = np.cumsum(probs, axis=-1)
    # the first id whose cdf passes u: "<=" skips ids of probability 0 even when u is 0
    ids = np.minimum((cdf <= u * cdf[:, -1:]).sum(axis=-1), probs.shape[-1] - 1)
    return sg.tensor(ids.astype(np.int64))


def check_token_ids(ids: Tensor, vocab_size: int, context: int | None = None) -> None:
    """A ShapeError for a batch longer than ``context``; ConfigError for ids outside 0..V-1."""
    if ids.ndim != 2:
        raise ShapeError(f"expected token ids of shape (N, T), found {tuple(ids.shape)}")
    if context is not None and ids.shape[1] > context:
        raise ShapeError(
            f"a sequence of {ids.shape[1]} tokens is longer than the model's context of "
            f"{context} (--context)"
        )
    values = ids.array  # the backend's array: one scalar leaves the device (more on error)
    if values.size and bool(((values < 0) | (values >= vocab_size)).any()):
        low = int(values.min())
        bad = low if low < 0 else int(values.max())
        raise ConfigError(
            f"token id {bad} is outside the vocabulary (expected 0..{vocab_size - 1})"
        )
