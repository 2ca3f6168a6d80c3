"""``shard_gpt``: Megatron-LM's tensor (and sequence) parallelism on the GPT, in place.

Every rank builds the whole :class:`~sparkgrad.models.gpt.GPT` from the seed; ``shard_gpt``
swaps its submodules for split ones that keep this rank's slice, under the same names, so
the ``state_dict`` keys stay the plain model's. One pre-norm block on rank ``r`` of ``tp``::

    x ── LN1 ─f─ [Wq Wk Wv: rows of heads r] ─ attention(heads r) ─ [Wo: cols r] ─g─ + ─┐
    ┌────────────────────────────────────────────────────────────────────────────────┘
    └─ LN2 ─f─ [W1: rows r] ─ GELU ─ [W2: cols r] ─g─ + ──> next block

Attention splits by heads: a head needs only its own ``head_dim`` rows of ``Wq``, ``Wk``
and ``Wv`` (column parallel) and produces its own ``head_dim`` inputs of ``Wo`` (row
parallel), so softmax and dropout run on whole heads with no communication. Each half of
the block costs one all-reduce forward (``g``) and one backward (``f``). Around the blocks:
the vocab-parallel embedding and head, and the vocab-parallel loss
(:mod:`~sparkgrad.parallel.tensor.vocab`); LayerNorms and the position embedding are
replicated, and every rank computes them on the same numbers.

**Sequence parallelism** (``sequence_parallel=True``, Korthikanti et al. 2022): the
replicated regions (LayerNorm, dropout, residual adds) are where most activation memory
sits, and every rank held the same copy. Split along the sequence instead::

    x(N,T/tp,d) ─ LN1 ─AG─ [QKV rows r] ─ attention ─ [Wo cols r] ─RS─ + ─ LN2 ─AG─ ... ─RS─ +

``AG`` (all-gather along T; backward: reduce-scatter) replaces ``f``, ``RS``
(reduce-scatter along T; backward: all-gather) replaces ``g``: the same bytes, but each rank
holds ``T/tp`` positions between the split layers. The embedding reduce-scatters, each rank
adds the position rows of *its* positions, and the head all-gathers before its matmul. The
replicated parameters (LayerNorms, position embedding, the row layers' biases) now see only
this rank's positions, so their gradients are partial sums:
:func:`sync_sequence_parallel_grads` adds them over the group after backward.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.checkpoint import checkpoint
from sparkgrad.autodiff.nn.attention import MultiheadAttention
from sparkgrad.autodiff.nn.attention_masks import canonical_mask
from sparkgrad.autodiff.nn.embedding import Embedding
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.nn.parameter import Parameter
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.tensor.layers import (
    ColumnParallelDense,
    RowParallelDense,
    column_parallel_linear,
)
from sparkgrad.parallel.tensor.splits import Split, split_specs
from sparkgrad.parallel.tensor.vocab import VocabParallelEmbedding, vocab_sizes

__all__ = [
    "SequenceShardPositions",
    "TensorParallelAttention",
    "check_sequence_length",
    "shard_gpt",
    "sync_sequence_parallel_grads",
]


def check_sequence_length(length: int, group: Any) -> None:
    """Sequence parallelism cuts the sequence into ``tp`` equal shards."""
    if length % group.size():
        raise ConfigError(
            f"sequence parallelism over {group.size()} ranks splits the sequence into equal "
            f"shards: expected a length divisible by {group.size()}, found {length}"
        )


class TensorParallelAttention(Module):
    """Attention with this rank's ``num_heads / tp`` heads (``nn.MultiheadAttention``'s
    parameter names, so the keys stay ``in_proj_weight``, ``out_proj.weight``...).

    ``in_proj_weight`` keeps rows ``[b·E + r·E/tp, b·E + (r+1)·E/tp)`` for ``b`` = Q, K, V
    (``Split(0, blocks=3)``); ``out_proj`` is a :class:`RowParallelDense`. The attention
    itself is ``self.attention_kernel(q, k, v, attn_mask=, dropout_p=, is_causal=)`` on
    ``(N, heads_local, L, head_dim)``, the fused SDPA unless someone (ring attention) sets
    another. Accepts the calls ``TransformerEncoderLayer._sa_block`` and
    ``TransformerDecoderLayer._mha_block`` make.

    **Cross-attention** (``query`` from the decoder ``(N, L, E)``, ``key is value`` the
    encoder's memory ``(N, S, E)``): as ``MultiheadAttention``, ``Q = f(query) Wq_rᵀ`` and
    ``K, V = f(memory) [Wk_r; Wv_r]ᵀ`` as two matmuls, each behind its own ``f`` (the memory
    is replicated, and every rank's heads add to its gradient). ``key_padding_mask`` is
    ``(N, S)``, an ``attn_mask`` ``(L, S)`` or ``(N·H, L, S)`` (this rank's heads are kept).
    """

    shard_dims = {"in_proj_weight": Split(0, blocks=3), "in_proj_bias": Split(0, blocks=3)}
    regather_input = True  # sequence parallel: keep the input shard (see SequenceGatherLinear)

    @classmethod
    def from_attention(
        cls, mha: MultiheadAttention, group: Any, sequence_parallel: bool = False
    ) -> TensorParallelAttention:
        """Keep this rank's heads of ``mha`` (batch-first, packed: kdim = vdim = embed_dim)."""
        n, r = group.size(), group.rank()
        if mha.num_heads % n:
            raise ConfigError(
                f"tensor parallelism over {n} ranks gives every rank whole attention heads: "
                f"expected a number of heads divisible by {n}, found {mha.num_heads}"
            )
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise ConfigError(
                "TensorParallelAttention splits packed attention (kdim = vdim = "
                "embed_dim, no bias_k/bias_v, no add_zero_attn)"
            )
        if not mha.batch_first:
            raise ConfigError("TensorParallelAttention expects batch_first=True, as the models'")
        layer, E, width = cls(), mha.embed_dim, mha.embed_dim // n
        rows = [i for b in range(3) for i in range(b * E + r * width, b * E + (r + 1) * width)]
        xp = array_module(mha.in_proj_weight.array)
        take = xp.asarray(rows)
        layer.in_proj_weight = Parameter(xp.ascontiguousarray(mha.in_proj_weight.array[take]))
        if mha.in_proj_bias is None:
            layer.register_parameter("in_proj_bias", None)
        else:
            layer.in_proj_bias = Parameter(mha.in_proj_bias.array[take].copy())
        layer.out_proj = RowParallelDense.from_dense(mha.out_proj, group, sequence_parallel)
        layer.embed_dim, layer.num_heads, layer.head_dim = E, mha.num_heads, mha.head_dim
        layer.local_heads, layer.dropout, layer.batch_first = mha.num_heads // n, mha.dropout, True
        layer.group, layer.sequence_parallel = group, sequence_parallel
        layer.selective_recompute = mha.selective_recompute
        layer.attention_kernel = getattr(mha, "attention_kernel", F.scaled_dot_product_attention)
        return layer

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, None]:
        if key is not value or need_weights or query.ndim != 3:
            raise ConfigError(
                "TensorParallelAttention runs batched self- or cross-attention without "
                "weights: expected key is value (N, S, E) and need_weights=False"
            )
        q, k, v = self._project(query, key)
        n, length = query.shape[0], q.shape[2]
        mask, is_causal = self._mask(attn_mask, key_padding_mask, is_causal, n, length, k.shape[2])
        dropout_p = self.dropout if self.training else 0.0

        def attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            return self.attention_kernel(
                q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal
            )

        if self.selective_recompute:  # keep Q, K, V; recompute P and its dropout mask
            out = checkpoint(attend, q, k, v, use_reentrant=False)
        else:
            out = attend(q, k, v)
        out = out.permute(0, 2, 1, 3).reshape(n, length, self.local_heads * self.head_dim)
        return self.out_proj(out), None  # row parallel: g (or reduce-scatter along L)

    def _project(self, query: Tensor, memory: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """This rank's heads of Q, K, V, each ``(N, heads_local, L or S, head_dim)`` (views)."""
        w, b, sp = self.in_proj_weight, self.in_proj_bias, self.sequence_parallel
        if query is memory:  # self-attention: f (or all-gather the (N, L/tp, E) shards) once
            qkv = column_parallel_linear(query, w, b, self.group, sp, self.regather_input)
            q, k, v = F.chunk(qkv, 3, -1)
        else:
            if sp:
                raise ConfigError(
                    "sequence parallelism shards one sequence; cross-attention reads two: "
                    "expected sequence_parallel=False for a TensorParallelAttention over memory"
                )
            width = w.shape[0] // 3  # heads_local · head_dim: [Wq_r; Wk_r; Wv_r]
            bq, bkv = (None, None) if b is None else (b[:width], b[width:])
            q = column_parallel_linear(query, w[:width], bq, self.group, False)
            k, v = F.chunk(column_parallel_linear(memory, w[width:], bkv, self.group, False), 2, -1)
        return tuple(  # (N, len, heads_local·hd) -> (N, heads_local, len, hd), views
            t.reshape(t.shape[0], t.shape[1], self.local_heads, self.head_dim).permute(0, 2, 1, 3)
            for t in (q, k, v)
        )

    def _mask(
        self, attn_mask: Any, padding: Any, is_causal: bool, n: int, length: int, keys: int
    ) -> Any:
        """MultiheadAttention's mask rules, restricted to this rank's heads (``keys``: S)."""
        if is_causal and attn_mask is None:
            raise ConfigError("Need attn_mask if specifying the is_causal hint")
        if is_causal and padding is None:
            return None, True  # the fused kernel builds the causal mask itself
        dtype = self.in_proj_weight.dtype
        mask = canonical_mask(attn_mask, "attn_mask", None, "", dtype, False)
        if mask is not None and mask.ndim == 3:  # (N·H, L, S) -> this rank's heads
            lo = self.group.rank() * self.local_heads
            mask = mask.reshape(n, self.num_heads, length, keys)[:, lo : lo + self.local_heads]
        padding = canonical_mask(padding, "key_padding_mask", None, "", dtype)
        if padding is not None:
            padding = padding.reshape(n, 1, 1, keys)
            mask = padding if mask is None else mask + padding
        return mask, False

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, heads={self.local_heads} of {self.num_heads}, "
            f"tp={self.group.size()}, sequence_parallel={self.sequence_parallel}"
        )


class SequenceShardPositions(Module):
    """The position embedding under sequence parallelism: the rows of *this rank's* positions.

    ``positions`` is the whole sequence's ``arange(T)`` (what ``GPT.forward`` passes); rank
    ``r`` looks up ``positions[r·T/tp : (r+1)·T/tp]``, matching its shard of the token
    embedding. The weight is whole on every rank (``position.weight``, replicated); its
    gradient here covers this rank's positions only, summed over the ranks after backward.
    """

    def __init__(self, embedding: Embedding, group: Any) -> None:
        super().__init__()
        self.weight, self.group = embedding.weight, group  # the same Parameter, not a copy
        self.padding_idx = embedding.padding_idx

    def forward(self, positions: Tensor) -> Tensor:
        check_sequence_length(positions.shape[0], self.group)
        shard = positions.shape[0] // self.group.size()
        lo = self.group.rank() * shard
        return F.embedding(positions[lo : lo + shard], self.weight, self.padding_idx)


def shard_gpt(model: Any, tp_group: Any, sequence_parallel: bool = False) -> Any:
    """Split ``model`` (a :class:`~sparkgrad.models.gpt.GPT`) over ``tp_group``, in place.

    Token embedding and head split by vocabulary slice (any vocabulary size: the slices
    may differ by one row), each block's attention by heads and its MLP column-then-row;
    the rest replicated. A tied head (``tie_weights=True``) shares the embedding's slice.
    Returns ``model``; the loss to use is
    :class:`~sparkgrad.parallel.tensor.vocab.VocabParallelCrossEntropy`.
    """
    sp, n = sequence_parallel, tp_group.size()
    for name in ("token", "position", "blocks", "norm", "head"):
        if not hasattr(model, name):
            raise ConfigError(f"shard_gpt expects a GPT (token ... head), found no {name!r}")
    if sp:
        check_sequence_length(model.context, tp_group)
    tied = model.head.weight is model.token.weight
    model.token = VocabParallelEmbedding.from_embedding(model.token, tp_group, sp)
    if sp:
        model.position = SequenceShardPositions(model.position, tp_group)
    for layer in model.blocks.layers:
        layer.self_attn = TensorParallelAttention.from_attention(layer.self_attn, tp_group, sp)
        layer.linear1 = ColumnParallelDense.from_dense(
            layer.linear1, tp_group, sequence_parallel=sp
        )
        layer.linear2 = RowParallelDense.from_dense(layer.linear2, tp_group, sp)
    sizes = vocab_sizes(model.head.out_features, n)
    model.head = ColumnParallelDense.from_dense(
        model.head, tp_group, sequence_parallel=sp, sizes=sizes
    )
    if tied:  # the same (V_r, d) rows read tokens in and write them out
        model.head.weight = model.token.weight
    return model


def sync_sequence_parallel_grads(model: Module, group: Any) -> None:
    """Sum over ``group`` the gradients of every replicated parameter (one flat all_reduce).

    Under sequence parallelism each rank's replicated parameters (LayerNorms, position
    embedding, row-parallel biases) saw only its ``T/tp`` positions: the full gradient is
    the sum of the ranks' partial ones. Call it after backward, before the step.
    """
    if group.size() == 1:
        return
    specs = split_specs(model)
    params = dict(model.named_parameters())
    grads = [params[k].grad for k in params if specs[k] is None and params[k].grad is not None]
    if not grads:
        return
    xp = array_module(grads[0].array)
    flat = xp.concatenate([g.array.reshape(-1) for g in grads])
    group.pg.all_reduce(flat)
    offset = 0
    for g in grads:  # views of the summed buffer (backward's arrays are not written)
        g.array = flat[offset : offset + g.array.size].reshape(g.array.shape)
        offset += g.array.size
