"""Activation memory from shapes: what this engine's ops keep for backward, per rank.

The Megatron papers count the bytes one Transformer layer keeps for backward (Korthikanti et
al. 2022, "Reducing Activation Recomputation in Large Transformer Models", section 4.1), in
fp16 with 1-byte dropout masks, for ``s`` positions, micro-batch ``b``, width ``h``, ``a``
heads::

    one layer ≈ s·b·h·(34 + 5·a·s/h)           tensor parallel t:   s·b·h·(10 + 24/t + 5as/(ht))
                                               + sequence parallel: s·b·h·(34 + 5as/h) / t

The coefficients depend on which tensors the ops save, so sparkgrad's are derived by listing
what *its* ops save (``ctx.save_for_backward``, measured by
:class:`~sparkgrad.autodiff.saved_memory.ActivationTracker`), in float32, for ``n = s·b``
tokens and dropout ``p`` (``[p]`` = 1 when ``p > 0``)::

    op (pre-norm GPT block)           saves                            bytes
    LayerNorm 1 and 2                 x̂ (n, h) and 1/σ (n,)            2 · (4nh + 4n)
    in_proj (Linear)                  its input, LN1's output          4nh
    attention (fused SDPA)            Q, K, V copies, P (b, a, s, s),  12nh + 4·a·s²·b
                                      dropout mask (bool)              + [p]·a·s²·b
    out_proj (Linear)                 its input (the heads, merged)    4nh
    dropout after attention, MLP      float32 masks (n, h)             [p] · 2 · 4nh
    linear1 (Linear)                  its input, LN2's output          4nh
    GELU (tanh form)                  its input and tanh(·) (n, 4h)    32nh
    dropout inside the MLP            float32 mask (n, 4h)             [p] · 16nh
    linear2 (Linear)                  its input (n, 4h)                16nh

    one layer = s·b·h·(80 + 24·[p] + (4 + [p])·a·s/h) + 8·s·b  bytes      (fp32)

How it maps to Megatron's ``34 + 5as/h`` (fp16): at 2 bytes per value Megatron's terms are
``2·(34 − 2) + 2 = 66`` (its two ``sbh`` masks stay 1-byte) and ``9·as/h`` in fp32. Ours has
``+6`` from float32 masks (4 bytes, not 1), ``+16`` from GELU's saved ``tanh`` (Megatron keeps
its input only), ``+16`` from the dropout *inside* the MLP (``torch.nn.TransformerEncoderLayer``
has one; Megatron's block does not): ``66 + 6 + 16 + 16 = 104``; and ``5`` instead of ``9``
on ``as/h``: the fused attention keeps ``P`` and the mask but not the dropped probabilities
(it multiplies again in backward). Without dropout: ``80 + 4as/h``.

**Tensor parallelism** ``t`` splits heads and the MLP's width; the LayerNorm regions stay
whole (``r = n``); **sequence parallelism** keeps ``r = n/t`` positions there, and the
column layers keep their input *shard* (they all-gather it again in backward)::

    one layer = r·h·(16 + 8·[p]) + 8r + n·h·(64 + 16·[p])/t + (4 + [p])·(a/t)·s²·b

``t = 1, r = n`` is the table above; ``r = n/t`` is Megatron's "everything divided by t".
**Context parallelism** ``cp`` gives a rank ``n = b·s/cp`` tokens, and ring attention keeps
no ``P``: it saves Q, K, V (views of the in_proj output, ``12nh/t``), its output ``4nh/t``
and one log-sum-exp per row, ``4·b·(a/t)·(s/cp)``.

Around the blocks: the embedding keeps the ids (int64; vocabulary-parallel: the local ids
and a bool mask), the position ids (the GPT's cached ``arange``, one per stage) and
``[p]``·its dropout mask; the head its input ``4nh`` (sequence parallel: the shard) after
the final LayerNorm; the loss the logits ``4·n·V`` (vocabulary-parallel: ``exp`` of this
rank's slice) and per token its target, masks and softmax sums.

**The MLP** keeps each ``Linear``'s input ``4·b·i`` (a row-parallel layer's ``i/t``), a
``ReLU`` ending a pipeline stage its output, and the loss ``4·b·10 + 13b``.

**Recompute** (``--recompute``; :meth:`MemoryLedger.expected_activations` has the
identical-blocks version): ``selective`` drops the score terms ``(4 + [p])·(a/t)·s²·b``
(the kernel runs again in backward); ``blocks`` keeps only each block's input ``4·r·h``
until backward, which then recomputes one block at a time: the peak is ``L`` inputs plus
one block's activations, ``L·4rh + A``. On the MLP ``blocks`` saves nothing here: each
block's input *is* what its ``Linear`` keeps anyway.

**Pipeline** stages hold their units' activations for every micro-batch in flight (``k``:
GPipe ``m``, 1F1B ``min(p − stage, m)``); the peak is ``k`` forwards, or ``k − 1`` of them
plus the backward peak of one (a recomputed block). **ZeRO-3** gathers each layer's
weights for its forward; the generic units (attention, LayerNorms) keep them in the graph
until backward (:mod:`sparkgrad.parallel.zero.stage3`), their padded flat buffers count too.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparkgrad.parallel.memory_shapes import ModelShape

F32, I64 = 4, 8


@dataclass(frozen=True)
class ActivationShare:
    """What of a step's activations one rank holds.

    ``rows``: sequences (GPT) or samples (MLP) of one micro-batch on this rank, one of
    ``micro_batches`` (the first stage's micro-batches are views of the rank's whole batch,
    whose memory stays alive, whole, while any of them is: counted once); ``tp``
    (with ``tp_rank``, for the vocabulary slice) and ``sequence_parallel``; ``cp``; the
    pipeline units ``[first_unit, last_unit)`` (None: to the end); ``in_flight``
    micro-batches held at once; ``zero3_world``: ZeRO-3's ``N`` (0: no ZeRO-3);
    ``scaled_loss``: the loss is scaled by a number before backward (the pipeline's ``1/m``,
    context parallelism's token weight): the op keeps it, 4 bytes.
    """

    rows: int
    micro_batches: int = 1
    tp: int = 1
    tp_rank: int = 0
    sequence_parallel: bool = False
    cp: int = 1
    first_unit: int = 0
    last_unit: int | None = None
    in_flight: int = 1
    zero3_world: int = 0
    scaled_loss: bool = False


def activation_bytes(shape: ModelShape, share: ActivationShare) -> dict[str, int]:
    """``forward`` (the largest end of a forward) and ``peak`` bytes of one step, and one
    micro-batch's ``micro_batch`` / ``micro_batch_peak`` (see the module docstring)."""
    last = shape.units if share.last_unit is None else share.last_unit
    units = range(share.first_unit, last)
    if shape.kind == "mlp":
        forward, backward, once = _mlp(shape, share, units), 0, 0
        if 0 in units:  # the first Linear keeps the batch (a view of it, per micro-batch)
            once = F32 * share.rows * share.micro_batches * shape.widths[0]
    else:
        forward, backward, once = _gpt(shape, share, units)
    k = share.in_flight
    peak_one = max(forward, backward)
    return {
        "forward": k * forward + once,
        "peak": (k - 1) * forward + peak_one + once,
        "micro_batch": forward,
        "micro_batch_peak": peak_one,
    }


# -- the MLP -------------------------------------------------------------------------------
def _mlp(shape: ModelShape, share: ActivationShare, units: range) -> int:
    widths, b, t = shape.widths, share.rows, share.tp
    n = len(widths) - 1
    total = 0
    for i in units:
        if i == 0:
            continue  # the batch itself: counted once (activation_bytes)
        row_parallel = t > 1 and i < n - n % 2 and i % 2 == 1
        total += F32 * b * (widths[i] // t if row_parallel else widths[i])
    if units.stop < n:  # the stage ends in a ReLU, which keeps its output
        total += F32 * b * widths[units.stop]
    if units.stop == n:  # cross-entropy: logits, and per row target, mask, softmax sum
        total += F32 * b * widths[-1] + 13 * b + F32 * share.scaled_loss
    return total


# -- the GPT -------------------------------------------------------------------------------
def _gpt(shape: ModelShape, share: ActivationShare, units: range) -> tuple[int, int, int]:
    """(one micro-batch's forward bytes, its backward peak, bytes held once per stage)."""
    h, a, p = shape.d_model, shape.heads, int(shape.dropout > 0)
    t, cp = share.tp, share.cp
    s = shape.context // cp  # positions of each sequence on this rank
    n = share.rows * s  # tokens
    r = n // t if share.sequence_parallel else n  # tokens of the LayerNorm/dropout regions
    ring = cp > 1
    # one layer, by part (module docstring)
    norm1 = F32 * r * h + F32 * r
    qkv_in = F32 * r * h
    qkv = 12 * n * h // t  # Q, K, V: SDPA's copies, or views of in_proj's output
    if ring:
        scores = F32 * n * h // t + F32 * share.rows * (a // t) * s  # output, log-sum-exp
    else:
        scores = (F32 + p) * share.rows * (a // t) * s * s  # P, the dropout mask
    after_core = F32 * n * h // t + p * F32 * r * h  # out_proj input, dropout mask
    mlp = (F32 * r * h + F32 * r) + F32 * r * h + 32 * n * h // t + p * 16 * n * h // t
    mlp += 16 * n * h // t + p * F32 * r * h  # linear2 input, dropout mask
    layer = norm1 + qkv_in + qkv + scores + after_core + mlp
    mode = shape.recompute

    blocks = [u for u in units if 1 <= u <= shape.layers]
    embedding, head = 0 in units, shape.layers + 1 in units
    once = 0
    emb = 0
    if embedding:
        emb = p * F32 * r * h  # the dropout mask
        if t > 1:  # the vocabulary-parallel lookup keeps local ids and a mask, per micro-batch
            emb += (I64 + 1) * n
        else:  # the embedding keeps the ids: views of the rank's whole batch
            once += I64 * n * share.micro_batches
        if ring:
            emb += I64 * s  # this rank's positions, made per forward
        else:
            once += I64 * shape.context  # the GPT's cached arange (a view of it under SP)
    tail = 0
    if head:
        head_in = F32 * (r if share.sequence_parallel else n) * h
        if t > 1:  # vocab-parallel loss: exp of this rank's logits, per token 8 + 1 + 1 bytes
            rows = shape.vocab // t + (share.tp_rank < shape.vocab % t)
            loss = F32 * n * rows + 10 * n
        else:  # cross-entropy: logits, target (int64), mask (bool), softmax sum (fp32)
            loss = F32 * n * shape.vocab + 13 * n
        tail = (F32 * r * h + F32 * r) + head_in + loss + F32 * share.scaled_loss
    gathered_layer, gathered_once = _zero3_gathered(shape, share.zero3_world, head)

    if mode == "blocks":
        kept = F32 * r * h  # a checkpoint keeps the block's input
        forward = len(blocks) * kept + emb + tail + gathered_once
        backward = len(blocks) * kept + layer + gathered_layer + emb if blocks else 0
        return forward, backward, once
    per_layer = layer - (scores if mode == "selective" else 0)
    forward = len(blocks) * (per_layer + gathered_layer) + emb + tail + gathered_once
    backward = 0
    if mode == "selective" and blocks:  # the last layer's attention runs again: its core
        freed = tail + gathered_once + mlp + after_core  # (SDPA's copies and P, or the ring's
        backward = forward - freed + scores + (0 if ring else qkv)  # output) is back
    return forward, backward, once


def _zero3_gathered(shape: ModelShape, world: int, head: bool) -> tuple[int, int]:
    """ZeRO-3: bytes of gathered flat buffers a GPT keeps in the graph (per layer, once).

    Its attention (in_proj, out_proj) and LayerNorms are generic units: their ops keep the
    gathered weights until backward. Linears gather again in backward (nothing kept), the
    embeddings' backward needs no weight. A tied head reads the token table: kept too.
    """
    if not world or shape.kind != "gpt":
        return 0, 0
    h = shape.d_model

    def padded(numel: int) -> int:
        return F32 * -(-numel // world) * world

    layer = padded(4 * h * h + 4 * h) + 2 * padded(2 * h)
    once = padded(2 * h) if head else 0
    if head and shape.tie_weights:
        once += padded(shape.vocab * h)
    return layer, once
