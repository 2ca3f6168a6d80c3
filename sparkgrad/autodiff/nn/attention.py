"""``MultiheadAttention``: ``num_heads`` attentions side by side, as in ``torch.nn``.

Each head ``h`` projects the inputs into its own ``head_dim = embed_dim / num_heads``
features and attends there; the heads' outputs are concatenated and mixed by ``out_proj``::

    Q = query Wqᵀ + bq,  K = key Wkᵀ + bk,  V = value Wvᵀ + bv     (embed_dim features each)
    head_h = softmax(Q_h K_hᵀ / sqrt(head_dim) + mask) V_h          (head_dim features each)
    out    = concat(head_1 .. head_H) Woᵀ + bo

The parameters are PyTorch's, with PyTorch's names and initialisation, so state dicts move
both ways unchanged: ``in_proj_weight`` ``(3E, E)`` is ``Wq; Wk; Wv`` stacked (xavier
uniform), ``in_proj_bias`` ``(3E,)`` (zeros), ``out_proj`` a ``Linear(E, E)`` (its default
weight, zero bias). With ``kdim``/``vdim`` other than ``embed_dim`` the three weights are
separate: ``q_proj_weight (E, E)``, ``k_proj_weight (E, kdim)``, ``v_proj_weight (E, vdim)``.

Layout: sequence first, ``(L, N, E)``, unless ``batch_first=True`` (``(N, L, E)``); a 2-D
input is one unbatched sequence. Inside, the heads become a batch dim, ``(N, H, L, hd)``,
made from the projections by reshape and permute (views, no copies).

Two paths, as PyTorch's:

- ``need_weights=False`` (what the Transformer layers use) runs the fused
  :func:`~sparkgrad.autodiff.functional.scaled_dot_product_attention`: one node, softmax
  backward fused, a fully masked row gives zeros.
- ``need_weights=True`` (the default) must hand the weights back, so it builds them from
  separate ops (scores, softmax, dropout, matmul), each differentiable. As in PyTorch, a
  fully masked row then gives NaN (softmax of all -inf), and with dropout the weights
  returned are the dropped ones.

Selective recompute (Megatron-LM's, sparkgrad's extension; ``--recompute selective``): with
``selective_recompute = True`` on the module, the fused attention runs under
:func:`~sparkgrad.autodiff.checkpoint.checkpoint`, so the graph keeps Q, K, V but not the
``(N, H, L, S)`` probabilities and dropout mask — the only activations that grow with the
square of the sequence length. Backward recomputes them (same dropout mask, the RNG state is
replayed), so the gradients are unchanged bit for bit.

The fused path calls the module's ``attention_kernel`` (sparkgrad's; by default
:func:`~sparkgrad.autodiff.functional.scaled_dot_product_attention`, same arguments):
context parallelism swaps in ring attention (:mod:`sparkgrad.parallel.context.gpt`).

Not here: PyTorch's inference "fast path" (``torch._native_multi_head_attention``, taken in
eval mode without grad for batch-first self-attention); it computes the same numbers on
the positions that are defined. ``add_bias_kv``/``add_zero_attn`` are supported.
"""

from __future__ import annotations

import math
from typing import Any

from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff.checkpoint import checkpoint
from sparkgrad.autodiff.factories import zeros
from sparkgrad.autodiff.nn import init
from sparkgrad.autodiff.nn.attention_masks import canonical_mask, dtype_or_none
from sparkgrad.autodiff.nn.linear import Linear, empty_parameter
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError, ShapeError

__all__ = ["MultiheadAttention", "NonDynamicallyQuantizableLinear", "multi_head_attention_forward"]


class NonDynamicallyQuantizableLinear(Linear):
    """``Linear`` under PyTorch's name for ``out_proj`` (a marker for its quantization tools)."""


class MultiheadAttention(Module):
    """Attention over ``num_heads`` subspaces of ``embed_dim`` (see the module docstring)."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if embed_dim <= 0 or num_heads <= 0:
            raise ConfigError(
                "embed_dim and num_heads must be greater than 0, got "
                f"embed_dim={embed_dim} and num_heads={num_heads} instead"
            )
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise ShapeError(
                f"embed_dim must be divisible by num_heads: embed_dim={embed_dim}, "
                f"num_heads={num_heads} leaves {embed_dim % num_heads} features over"
            )
        if not self._qkv_same_embed_dim:
            self.q_proj_weight = empty_parameter(embed_dim, embed_dim, **kw)
            self.k_proj_weight = empty_parameter(embed_dim, self.kdim, **kw)
            self.v_proj_weight = empty_parameter(embed_dim, self.vdim, **kw)
            self.register_parameter("in_proj_weight", None)
        else:
            self.in_proj_weight = empty_parameter(3 * embed_dim, embed_dim, **kw)
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        if bias:
            self.in_proj_bias = empty_parameter(3 * embed_dim, **kw)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, **kw)
        if add_bias_kv:
            self.bias_k = empty_parameter(1, 1, embed_dim, **kw)
            self.bias_v = empty_parameter(1, 1, embed_dim, **kw)
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self.selective_recompute = False  # sparkgrad: recompute softmax/dropout in backward
        # sparkgrad: the fused path's attention, (q, k, v, attn_mask, dropout_p, is_causal)
        # -> out on (N, H, L, head_dim); context parallelism swaps in ring attention
        self.attention_kernel = F.scaled_dot_product_attention
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """PyTorch's: xavier-uniform projections, zero biases, xavier-normal bias_k/bias_v."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

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
    ) -> tuple[Tensor, Tensor | None]:
        """``(output, weights)``; ``weights`` is None unless ``need_weights`` (then ``(N, L, S)``
        averaged over heads, or ``(N, H, L, S)``). Boolean masks: True = may not attend."""
        is_batched = query.ndim == 3
        key_padding_mask = canonical_mask(
            key_padding_mask, "key_padding_mask", dtype_or_none(attn_mask), "attn_mask",
            query.dtype,
        )  # fmt: skip
        attn_mask = canonical_mask(attn_mask, "attn_mask", None, "", query.dtype, False)
        if self.batch_first and is_batched:  # to (L, N, E), keeping "query is key" true
            if key is value:
                if query is key:
                    query = key = value = query.transpose(1, 0)
                else:
                    query, key = (x.transpose(1, 0) for x in (query, key))
                    value = key
            else:
                query, key, value = (x.transpose(1, 0) for x in (query, key, value))
        separate = not self._qkv_same_embed_dim
        out, weights = multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads,
            self.in_proj_weight, self.in_proj_bias, self.bias_k, self.bias_v,
            self.add_zero_attn, self.dropout, self.out_proj.weight, self.out_proj.bias,
            training=self.training, key_padding_mask=key_padding_mask,
            need_weights=need_weights, attn_mask=attn_mask,
            use_separate_proj_weight=separate, q_proj_weight=self.q_proj_weight,
            k_proj_weight=self.k_proj_weight, v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights, is_causal=is_causal,
            recompute_attention=self.selective_recompute,
            attention_kernel=self.attention_kernel,
        )  # fmt: skip
        if self.batch_first and is_batched:
            out = out.transpose(1, 0)
        return out, weights


def _check_shapes(
    query: Tensor, key: Tensor, value: Tensor, kpm: Any, mask: Any, heads: int
) -> bool:
    """Whether the input is batched; PyTorch's rank checks (ShapeError, shapes named)."""
    if query.ndim not in (2, 3):
        raise ShapeError(
            f"query should be unbatched 2D or batched 3D tensor but received {query.ndim}-D "
            f"query tensor of shape {query.shape}"
        )
    batched = query.ndim == 3
    kind, rank, kpm_rank = ("batched (3-D)", 3, 2) if batched else ("unbatched (2-D)", 2, 1)
    if key.ndim != rank or value.ndim != rank:
        raise ShapeError(
            f"For {kind} `query`, expected `key` and `value` to be {rank}-D but found "
            f"{key.ndim}-D and {value.ndim}-D tensors respectively"
        )
    if kpm is not None and kpm.ndim != kpm_rank:
        raise ShapeError(
            f"For {kind} `query`, expected `key_padding_mask` to be `None` or {kpm_rank}-D "
            f"but found {kpm.ndim}-D tensor of shape {kpm.shape} instead"
        )
    if mask is not None and mask.ndim not in (2, 3):
        raise ShapeError(
            f"For {kind} `query`, expected `attn_mask` to be `None`, 2-D or 3-D but found "
            f"{mask.ndim}-D tensor of shape {mask.shape} instead"
        )
    if not batched and mask is not None and mask.ndim == 3:
        expected = (heads, query.shape[0], key.shape[0])
        if tuple(mask.shape) != expected:
            raise ShapeError(f"Expected `attn_mask` shape to be {expected} but got {mask.shape}")
    return batched


def _in_projection(
    query: Tensor, key: Tensor, value: Tensor, w: Any, b: Any, separate: bool,
    wq: Any, wk: Any, wv: Any,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Q, K, V of shape (L|S, N, E): one matmul for self-attention, as PyTorch packs them."""
    E = query.shape[-1]
    if separate:
        bq, bk, bv = (None, None, None) if b is None else F.chunk(b, 3)
        return F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)
    if key is value:
        if query is key:  # self-attention: one (L, N, 3E) projection, three views of it
            return F.chunk(F.linear(query, w, b), 3, dim=-1)
        bq, bkv = (None, None) if b is None else (b[:E], b[E:])
        q = F.linear(query, w[:E], bq)
        k, v = F.chunk(F.linear(key, w[E:], bkv), 2, dim=-1)
        return q, k, v
    bq, bk, bv = (None, None, None) if b is None else F.chunk(b, 3)
    wq, wk, wv = F.chunk(w, 3)
    return F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)


def _pad_last(mask: Tensor | None) -> Tensor | None:
    """One more key column of 0 in a float mask (for bias_k / the zero attention key)."""
    if mask is None:
        return None
    return F.cat([mask, zeros(*mask.shape[:-1], 1, dtype=mask.dtype, device=mask.device)], -1)


def multi_head_attention_forward(
    query: Tensor, key: Tensor, value: Tensor, embed_dim_to_check: int, num_heads: int,
    in_proj_weight: Tensor | None, in_proj_bias: Tensor | None,
    bias_k: Tensor | None, bias_v: Tensor | None, add_zero_attn: bool, dropout_p: float,
    out_proj_weight: Tensor, out_proj_bias: Tensor | None, training: bool = True,
    key_padding_mask: Tensor | None = None, need_weights: bool = True,
    attn_mask: Tensor | None = None, use_separate_proj_weight: bool = False,
    q_proj_weight: Tensor | None = None, k_proj_weight: Tensor | None = None,
    v_proj_weight: Tensor | None = None, static_k: Tensor | None = None,
    static_v: Tensor | None = None, average_attn_weights: bool = True, is_causal: bool = False,
    recompute_attention: bool = False, attention_kernel: Any = None,
) -> tuple[Tensor, Tensor | None]:  # fmt: skip
    """PyTorch's ``F.multi_head_attention_forward`` on sequence-first ``(L, N, E)`` inputs.

    ``recompute_attention`` (sparkgrad's, not PyTorch's): checkpoint the fused attention, so
    its probabilities and dropout mask are recomputed in backward (selective recompute).
    ``attention_kernel`` (sparkgrad's): what the fused path calls instead of
    ``F.scaled_dot_product_attention`` (same arguments), e.g. ring attention."""
    batched = _check_shapes(query, key, value, key_padding_mask, attn_mask, num_heads)
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    key_padding_mask = canonical_mask(
        key_padding_mask, "key_padding_mask", dtype_or_none(attn_mask), "attn_mask", query.dtype
    )
    if is_causal and attn_mask is None:
        raise ConfigError(
            "Need attn_mask if specifying the is_causal hint. You may use the Transformer "
            "module method `generate_square_subsequent_mask` to create this mask."
        )
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None  # the fused op builds the causal mask itself
    else:
        attn_mask = canonical_mask(attn_mask, "attn_mask", None, "", query.dtype, False)
        if key_padding_mask is not None:
            is_causal = False  # merged with the padding, the mask is no longer causal
    if embed_dim != embed_dim_to_check:
        raise ShapeError(
            f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim} "
            f"(query of shape {query.shape})"
        )
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise ShapeError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if use_separate_proj_weight and key.shape[:2] != value.shape[:2]:
        raise ShapeError(
            f"key's sequence and batch dims {key.shape[:2]} do not match value's {value.shape[:2]}"
        )
    if not use_separate_proj_weight and key.shape != value.shape:
        raise ShapeError(f"key shape {key.shape} does not match value shape {value.shape}")
    q, k, v = _in_projection(
        query, key, value, in_proj_weight, in_proj_bias, use_separate_proj_weight,
        q_proj_weight, k_proj_weight, v_proj_weight,
    )  # fmt: skip
    if attn_mask is not None:
        if attn_mask.ndim == 2:
            expected: tuple[int, ...] = (tgt_len, src_len)
        else:
            expected = (bsz * num_heads, tgt_len, src_len)
        if tuple(attn_mask.shape) != expected:
            raise ShapeError(
                f"The shape of the {attn_mask.ndim}D attn_mask is {attn_mask.shape}, but "
                f"should be {expected}."
            )
    if bias_k is not None and bias_v is not None:
        if static_k is not None or static_v is not None:
            raise ConfigError("bias cannot be added to static key or value.")
        k = F.cat([k, bias_k.expand(1, bsz, embed_dim)])
        v = F.cat([v, bias_v.expand(1, bsz, embed_dim)])
        attn_mask, key_padding_mask = _pad_last(attn_mask), _pad_last(key_padding_mask)
    elif (bias_k is None) != (bias_v is None):
        raise ConfigError("bias_k and bias_v must be given together")

    # heads as a batch dim: (len, N, E) -> (N, H, len, head_dim), views only
    def heads(x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], bsz, num_heads, head_dim).permute(1, 2, 0, 3)

    q = heads(q)
    k = heads(k) if static_k is None else _static(static_k, "static_k", bsz, num_heads, head_dim)
    v = heads(v) if static_v is None else _static(static_v, "static_v", bsz, num_heads, head_dim)
    if add_zero_attn:
        k = F.cat([k, zeros(bsz, num_heads, 1, head_dim, dtype=k.dtype, device=k.device)], 2)
        v = F.cat([v, zeros(bsz, num_heads, 1, head_dim, dtype=v.dtype, device=v.device)], 2)
        attn_mask, key_padding_mask = _pad_last(attn_mask), _pad_last(key_padding_mask)
    src_len = k.shape[2]
    if attn_mask is not None and attn_mask.ndim == 3:  # (N·H, L, S) -> (N, H, L, S)
        attn_mask = attn_mask.reshape(bsz, num_heads, tgt_len, src_len)
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (bsz, src_len):
            raise ShapeError(
                f"Expected key_padding_mask of shape {(bsz, src_len)} (N, S), but got "
                f"{key_padding_mask.shape}"
            )
        padding = key_padding_mask.reshape(bsz, 1, 1, src_len)
        attn_mask = padding if attn_mask is None else attn_mask + padding
    if not training:
        dropout_p = 0.0

    if need_weights:  # PyTorch's explicit path: the weights are materialised
        weights = F.matmul(q * math.sqrt(1.0 / float(head_dim)), k.transpose(-2, -1))
        if attn_mask is not None:
            weights = weights + attn_mask
        weights = F.softmax(weights, dim=-1)
        if dropout_p > 0.0:
            weights = F.dropout(weights, p=dropout_p)
        out = F.matmul(weights, v)
    else:
        weights = None
        kernel = attention_kernel or F.scaled_dot_product_attention
        if recompute_attention:  # keep Q, K, V only; P and the dropout mask come back later
            out = checkpoint(
                kernel, q, k, v, attn_mask, dropout_p, is_causal, use_reentrant=False
            )  # fmt: skip
        else:
            out = kernel(q, k, v, attn_mask, dropout_p, is_causal)
    out = out.permute(2, 0, 1, 3).reshape(tgt_len * bsz, embed_dim)  # (L·N, E)
    out = F.linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, -1)
    if weights is not None and average_attn_weights:
        weights = weights.mean(dim=1)
    if not batched:
        out = out.squeeze(1)
        weights = weights.squeeze(0) if weights is not None else None
    return out, weights


def _static(t: Tensor, name: str, bsz: int, num_heads: int, head_dim: int) -> Tensor:
    """A given key/value of shape (N·H, S, head_dim), as (N, H, S, head_dim)."""
    if t.shape[0] != bsz * num_heads or t.shape[2] != head_dim:
        raise ShapeError(
            f"expecting {name} of shape ({bsz * num_heads}, S, {head_dim}), but got {t.shape}"
        )
    return t.reshape(bsz, num_heads, t.shape[1], head_dim)
