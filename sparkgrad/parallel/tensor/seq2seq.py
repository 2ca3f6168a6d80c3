"""``shard_seq2seq``: Megatron-LM's tensor parallelism on the encoder-decoder, in place.

Every rank builds the whole :class:`~sparkgrad.models.seq2seq.Seq2SeqTransformer` from the
seed; ``shard_seq2seq`` swaps every attention and feed-forward for split ones that keep this
rank's slice, under the same names, so the ``state_dict`` keys stay the plain model's. The
post-norm layers on rank ``r`` of ``tp``::

    encoder   x ─f─ [Wqkv: heads r] ─ attention(heads r, src padding) ─ [Wo: cols r] ─g─ + ─ LN
              ─f─ [W1: rows r] ─ ReLU ─ [W2: cols r] ─g─ + ─ LN                  ──> memory

    decoder   y ─f─ [Wqkv: heads r] ─ causal attention(heads r) ─ [Wo: cols r] ─g─ + ─ LN
              ─f─ [Wq: heads r] ─┐
    memory ───f─ [Wk Wv: heads r] ┴ attention(heads r, src padding) ─ [Wo: cols r] ─g─ + ─ LN
              ─f─ [W1: rows r] ─ ReLU ─ [W2: cols r] ─g─ + ─ LN                  ──> head

A head needs only its own ``head_dim`` rows of ``Wq``, ``Wk``, ``Wv`` and its own
``head_dim`` columns of ``Wo``, so softmax, the padding and causal masks run on whole heads
with no communication; each attention and each feed-forward costs one all-reduce forward
(``g``) and one backward (``f``; cross-attention's memory has its own ``f``: every rank's
heads add to the memory's gradient, in every decoder layer).

**Replicated**: the token embedding, the head, every LayerNorm (and the fixed sinusoidal
positions). The vocabulary is 13 tokens (PAD, BOS, EOS, ten digits;
:mod:`sparkgrad.dataset.reversal`): a ``13 x d`` embedding and head are a few hundred
numbers, not worth a vocab-parallel split (13 is prime, the slices would be uneven) or its
extra collectives; every rank computes them on the same numbers, so the plain
``TokenCrossEntropy`` on the full logits is the loss and ``predict`` needs no gather.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.errors import ConfigError
from sparkgrad.parallel.tensor.layers import ColumnParallelDense, RowParallelDense
from sparkgrad.parallel.tensor.transformer import TensorParallelAttention

__all__ = ["shard_seq2seq"]


def shard_seq2seq(model: Any, tp_group: Any) -> Any:
    """Split ``model`` (a :class:`~sparkgrad.models.seq2seq.Seq2SeqTransformer`) over
    ``tp_group``, in place: encoder self-attention, decoder self- and cross-attention by
    heads, every feed-forward column-then-row; the rest replicated. Returns ``model``."""
    for name in ("embed", "transformer", "head"):
        if not hasattr(model, name):
            raise ConfigError(
                f"shard_seq2seq expects a Seq2SeqTransformer (embed, transformer, head), "
                f"found no {name!r}"
            )
    for layer in model.transformer.encoder.layers:
        layer.self_attn = TensorParallelAttention.from_attention(layer.self_attn, tp_group)
        _shard_feed_forward(layer, tp_group)
    for layer in model.transformer.decoder.layers:
        layer.self_attn = TensorParallelAttention.from_attention(layer.self_attn, tp_group)
        layer.multihead_attn = TensorParallelAttention.from_attention(
            layer.multihead_attn, tp_group
        )
        _shard_feed_forward(layer, tp_group)
    return model


def _shard_feed_forward(layer: Any, group: Any) -> None:
    """``linear1`` column parallel (rows of ``W1``), ``linear2`` row parallel (its columns)."""
    layer.linear1 = ColumnParallelDense.from_dense(layer.linear1, group)
    layer.linear2 = RowParallelDense.from_dense(layer.linear2, group)
