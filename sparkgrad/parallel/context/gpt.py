"""``context_parallel_gpt``: a GPT whose sequence is split over the ranks of a group.

With ``cp`` ranks and balanced causal chunks (:mod:`.chunks`), a window of ``T`` tokens is
cut into ``2·cp`` chunks and rank ``r`` keeps chunks ``r`` and ``2cp-1-r`` (cp = 2, T = 8)::

    positions  0 1 | 2 3 | 4 5 | 6 7          rank 0 holds 0 1 6 7  (chunks 0 and 3)
    chunks      0     1     2     3           rank 1 holds 2 3 4 5  (chunks 1 and 2)

Everything in a GPT except attention works position by position (embeddings, LayerNorm,
the MLP, the head, the loss), so it runs on the local ``T/cp`` tokens unchanged. Two
things must know about the split, and two swaps make them know:

- **attention**: every block's attention calls its ``attention_kernel``
  (``nn.MultiheadAttention`` and the tensor-parallel attention both have one); here it
  becomes :class:`RingKernel`: ring attention over the group, causal on the balanced
  chunks. Queries stay home; K/V blocks travel (:mod:`.ring_attention`).
- **positions**: ``GPT.forward`` looks up ``position(arange(T/cp))``; the swapped
  :class:`ContextPositions` shares the embedding's matrix (the key stays
  ``position.weight``) and looks up this rank's *global* positions instead.

The causal mask ``GPT.forward`` builds for its local length is ignored by the ring kernel
(``is_causal`` says what it means on the chunks). Dropout inside attention has no ring
version here: :class:`RingKernel` refuses ``dropout_p > 0``.
"""

from __future__ import annotations

from typing import Any

import sparkgrad as sg
from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff.nn.embedding import Embedding
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.context.chunks import positions
from sparkgrad.parallel.context.ring_attention import ring_attention


class RingKernel:
    """An ``attention_kernel``: this rank's queries against the whole sequence's keys."""

    def __init__(self, group: Any) -> None:
        self.group = group

    def __call__(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        attn_mask: Tensor | None = None,
        dropout_p: float = 0.0,
        is_causal: bool = False,
    ) -> Tensor:
        if dropout_p > 0:
            raise ConfigError(
                f"context parallelism: ring attention has no dropout, found dropout_p="
                f"{dropout_p}; train with --dropout 0"
            )
        if attn_mask is not None and not is_causal:
            raise ConfigError(
                "context parallelism: ring attention takes is_causal or no mask, found an "
                "explicit attn_mask"
            )
        return ring_attention(q, k, v, self.group, is_causal=is_causal)


class ContextPositions(Embedding):
    """The position embedding at this rank's global positions (the same weight Parameter)."""

    def __init__(self, position: Embedding, rank: int, cp: int) -> None:
        Module.__init__(self)
        self.num_embeddings, self.embedding_dim = position.num_embeddings, position.embedding_dim
        self.padding_idx, self.max_norm = position.padding_idx, None
        self.weight = position.weight  # shared: the key stays "position.weight"
        self.rank, self.cp = rank, cp

    def forward(self, local: Tensor) -> Tensor:
        """``local`` is ``arange(T/cp)``; look up this rank's positions of ``T`` instead."""
        mine = positions(self.rank, self.cp, self.cp * local.shape[0], balanced=True)
        return F.embedding(sg.tensor(mine, device=local.device), self.weight)


def attention_modules(model: Module) -> list[Module]:
    """Every module with an ``attention_kernel`` (one per block)."""
    return [m for m in model.modules() if hasattr(m, "attention_kernel")]


def context_parallel_gpt(model: Module, group: Any) -> Module:
    """Make ``model`` (a GPT, whole or tensor-parallel) run on this rank's sequence chunks."""
    pg = getattr(group, "pg", group)
    rank, cp = int(pg.rank), int(pg.size)
    kernel = RingKernel(group)
    for attention in attention_modules(model):
        attention.attention_kernel = kernel
    model.position = ContextPositions(model.position, rank, cp)
    return model
