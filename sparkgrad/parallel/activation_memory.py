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

**Under autocast** (``--precision fp16|bf16``, :mod:`sparkgrad.engine.precision`; the op
lists in :mod:`sparkgrad.autodiff.amp.op_lists`) the ops save other dtypes, and the table is
derived again from what each op gets and keeps, with four widths
(:class:`~sparkgrad.parallel.activation_widths.Widths`): ``σ`` the residual stream's (the
parameters' dtype: the embeddings, ``x + ...``, LayerNorm, the embedding's dropout), ``λ``
a lowered op's 16-bit output and what the unlisted ops fed by it save, ``κ`` what a lowered
op saves of its inputs and ``ω`` per element of its weight (its cast copy: not a parameter,
so an activation). On the CPU the lowering is emulated: a lowered op saves float32 copies
holding 16-bit values (``κ = ω = 4``) and answers 16-bit (``λ = 2``); float32 parameters
keep ``σ = 4`` (x + a 16-bit value is float32), ZeRO's 16-bit ones make it ``σ = 2``::

    op (pre-norm block)   gets                       saves                     bytes
    LayerNorm 1 and 2     the residual stream (σ)    x̂, 1/σ in σ (unlisted)    2σ·(rh + r)
    in_proj, linear1      LN's output                its cast copy             2κ·rh
    (lowered Linear)      their weights              their cast copies         ω·7h²/t
    SDPA (lowered)        16-bit Q, K, V (views)     float32 copies, P, mask   3κ·nh/t +
                                                                               (κ+[p])·(a/t)·s²·b
    out_proj, linear2     16-bit heads, dropout out  cast copies               5κ·nh/t
    (lowered Linear)      their weights              their cast copies         ω·5h²/t
    dropout after both    their 16-bit outputs       masks in λ                [p]·2λ·rh
    GELU, its dropout     linear1's 16-bit output    input, tanh, mask in λ    (8 + 4[p])·λ·nh/t
    cross-entropy (fp32)  16-bit logits              a float32 copy, ...       4nV + 13n

    one layer = s·b·h·(64 + 12·[p]) + 8·s·b + (4 + [p])·a·s²·b + 48h²     (CPU; fp32 params)
    ZeRO fp16/bf16 (σ = 2): s·b·h·(60 + 12·[p]) + 4·s·b + (4 + [p])·a·s²·b + 48h²

With ``σ = λ = κ = 4, ω = 0`` it is the float32 table. The weights' copies are made once
per step (the region's cast cache) and shared by every micro-batch of a pipeline stage:
they count once, not per micro-batch in flight. The shares and modes change: under
**tensor parallelism** a row layer adds its float32 bias after the sum, so the dropout
after out_proj and linear2 keeps float32 masks (``[p]·2σ·rh``); under **sequence
parallelism** the column layers are the fused all-gather + matmul
(``SequenceGatherLinear``, unlisted): they run in float32, keep their input shard in
``σ`` and no weight copy, and so GELU and its dropout are float32 too -- the layer is the
float32 one plus the row layers' copies ``20h²/t``; **ring attention** (unlisted) keeps
16-bit views of in_proj's output, its 16-bit output and log-sum-exp (``λ`` instead of 4);
**selective** recompute checkpoints the attention core, which keeps Q, K, V as in_proj
made them (``3λ·nh/t``) instead of SDPA's copies; **blocks** keep each input in ``σ``.
**ZeRO-3**'s GatheredLinear keeps no weight; its attention keeps the cast copies
(``ω·4h²``) rather than the gathered buffer, its LayerNorms their 16-bit gathered buffers.

**The MLP** under autocast: the first Linear keeps a rounded copy of the batch (``κ·b·784``
per micro-batch: no longer a view of the batch), each later one a cast copy of its input
beside the ReLU's 16-bit output (``(λ + κ)·b·i``, where float32 shares one array), the ReLU
after a tensor-parallel row layer is float32 (its bias), a stage's first Linear copies the
float32 activation it received, and every Linear keeps its weight's copy, ``ω·o·i``. On
cuda (CuPy lowers natively: 2-byte copies, LayerNorm and softmax on the float32 list) the
table is not derived here: :func:`widths_of` refuses.

**Recompute** (``--recompute``; :meth:`MemoryLedger.expected_activations` has the
identical-blocks version): ``selective`` drops the score terms ``(4 + [p])·(a/t)·s²·b``
(the kernel runs again in backward); ``blocks`` keeps only each block's input ``4·r·h``
until backward, which then recomputes one block at a time: the peak is ``L`` inputs plus
one block's activations, ``L·4rh + A``. On the MLP ``blocks`` saves nothing here: each
block's input *is* what its ``Linear`` keeps anyway. ``sequential`` (not a ``--recompute``
mode: ``python -m sparkgrad.benchmark.recompute --sweep`` runs it) is
``checkpoint_sequential(blocks, S = ceil(sqrt(L)), x)``: ``S − 1`` segments of ``k = L // S``
blocks keep their input, the last one (``L − (S − 1)·k`` blocks) runs plain, and the peak
is the end of forward, ``(S − 1)·4rh + (L − (S − 1)·k)·A``: O(sqrt(L)) for ``L = S²``.

**Pipeline** stages hold their units' activations for every micro-batch in flight (``k``:
GPipe ``m``, 1F1B ``min(p − stage, m)``); the peak is ``k`` forwards, or ``k − 1`` of them
plus the backward peak of one (a recomputed block). **ZeRO-3** gathers each layer's
weights for its forward; the generic units (attention, LayerNorms) keep them in the graph
until backward (:mod:`sparkgrad.parallel.zero.stage3`), their padded flat buffers count too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sparkgrad.parallel.activation_widths import F32, FP32, Widths, widths_of
from sparkgrad.parallel.memory_shapes import ModelShape

I64 = 8
__all__ = ["ActivationShare", "Widths", "activation_bytes", "widths_of"]


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
    context parallelism's token weight): the op keeps it, 4 bytes; ``widths``: the bytes
    of each kind of saved element (:func:`widths_of`: fp32, or autocast).
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
    widths: Widths = field(default=FP32)


@dataclass(frozen=True)
class _Parts:
    """One micro-batch: its ``forward`` bytes, its ``backward`` peak (0: none beyond the
    forward), bytes held ``once`` per stage, and the weights' cast copies (shared by every
    micro-batch of the step: autocast casts a weight once per region) alive at the end of
    its forward (``w_forward``), at its backward peak (``w_backward``) and at that peak
    while other micro-batches' forwards are alive too (``w_both``)."""

    forward: int
    backward: int = 0
    once: int = 0
    w_forward: int = 0
    w_backward: int = 0
    w_both: int = 0


def activation_bytes(shape: ModelShape, share: ActivationShare) -> dict[str, int]:
    """``forward`` (the largest end of a forward) and ``peak`` bytes of one step, and one
    micro-batch's ``micro_batch`` / ``micro_batch_peak`` (see the module docstring)."""
    last = shape.units if share.last_unit is None else share.last_unit
    units = range(share.first_unit, last)
    parts = _mlp(shape, share, units) if shape.kind == "mlp" else _gpt(shape, share, units)
    k, f = share.in_flight, parts.forward
    at_forward = k * f + parts.w_forward
    peak = at_forward
    if parts.backward:  # one micro-batch's backward peak, k - 1 others still alive
        shared = parts.w_both if k > 1 else parts.w_backward
        peak = max(peak, (k - 1) * f + parts.backward + shared)
    return {
        "forward": at_forward + parts.once,
        "peak": peak + parts.once,
        "micro_batch": f + parts.w_forward,
        "micro_batch_peak": max(f + parts.w_forward, parts.backward + parts.w_backward),
    }


# -- the MLP -------------------------------------------------------------------------------
def _mlp(shape: ModelShape, share: ActivationShare, units: range) -> _Parts:
    widths, b, t, w = shape.widths, share.rows, share.tp, share.widths
    n = len(widths) - 1

    def row_parallel(i: int) -> bool:
        return t > 1 and i < n - n % 2 and i % 2 == 1

    def relu(i: int) -> int:  # the ReLU after Linear i: 16-bit, unless a row-parallel
        return w.stream if row_parallel(i) else w.low  # layer added its bias after the sum

    total, once, copies = 0, 0, 0
    for i in units:
        width = widths[i] // t if row_parallel(i) else widths[i]
        copies += width * (widths[i + 1] // t if row_parallel(i + 1) else widths[i + 1])
        if i == 0 and not w.autocast:  # the first Linear keeps the batch (a view of it, per
            once = F32 * b * share.micro_batches * widths[0]  # micro-batch): counted once
        elif i == units.start or not w.autocast:  # its input: the batch's rounded copy, a
            total += w.copy * b * width  # received float32 leaf's copy, or (fp32) the ReLU's
        else:  # output; under autocast the ReLU keeps its output, the Linear its cast copy
            total += (relu(i - 1) + w.copy) * b * width
    if units.stop < n:  # the stage ends in a ReLU, which keeps its output
        total += relu(units.stop - 1) * b * widths[units.stop]
    if units.stop == n:  # cross-entropy: logits, and per row target, mask, softmax sum
        total += F32 * b * widths[-1] + 13 * b + F32 * share.scaled_loss
    weights = 0 if share.zero3_world else w.weights * copies  # GatheredLinear keeps no weight
    return _Parts(total, once=once, w_forward=weights)


# -- the GPT -------------------------------------------------------------------------------
def _gpt(shape: ModelShape, share: ActivationShare, units: range) -> _Parts:
    """One micro-batch's parts (:class:`_Parts`) on this rank's units."""
    h, a, p, w = shape.d_model, shape.heads, int(shape.dropout > 0), share.widths
    t, cp, sp = share.tp, share.cp, share.sequence_parallel
    s = shape.context // cp  # positions of each sequence on this rank
    n = share.rows * s  # tokens
    r = n // t if sp else n  # tokens of the LayerNorm/dropout regions
    ring = cp > 1
    zero3 = share.zero3_world > 0
    # the column layers (in_proj, linear1, head) are lowered Linears, unless sequence
    # parallelism fuses them with the all-gather (SequenceGatherLinear: unlisted, float32)
    column = w.low if not sp else F32  # the dtype of their outputs
    column_in = (w.stream if sp else w.copy) * r * h  # what they keep of their input
    # one layer, by part (module docstring)
    norm1 = w.stream * (r * h + r)
    qkv_in = column_in
    if ring:  # ring attention (unlisted) keeps views of in_proj's output, its output, lse
        qkv = 3 * column * n * h // t
        scores = column * n * h // t + column * share.rows * (a // t) * s
    else:  # SDPA (lowered) keeps its copies of Q, K, V, and P and the mask
        qkv = 3 * w.copy * n * h // t
        scores = (w.copy + p) * share.rows * (a // t) * s * s
    # the row layers (out_proj, linear2) are lowered too, but under tensor parallelism they
    # add their float32 bias after the sum: the dropout after them runs in float32
    row = w.low if t == 1 else w.stream
    after_core = w.copy * n * h // t + p * row * r * h  # out_proj input, dropout mask
    mlp = w.stream * (r * h + r) + column_in + 2 * column * 4 * n * h // t  # LN2, GELU
    mlp += p * column * 4 * n * h // t + w.copy * 4 * n * h // t  # its dropout, linear2 input
    mlp += p * row * r * h  # the dropout after the MLP
    layer = norm1 + qkv_in + qkv + scores + after_core + mlp
    mode = shape.recompute
    # the weights' cast copies under autocast (ZeRO-3: in _zero3_gathered)
    cast = 0 if zero3 else w.weights
    cols, rows_w = (0 if sp else 7 * h * h // t), 5 * h * h // t  # in_proj + linear1; rest
    w_layer = cast * (cols + rows_w)
    w_late = cast * (5 * h * h // t + (0 if sp else 4 * h * h // t))  # out_proj, linear1, 2

    blocks = [u for u in units if 1 <= u <= shape.layers]
    embedding, head = 0 in units, shape.layers + 1 in units
    once = 0
    emb = 0
    if embedding:
        emb = p * w.stream * r * h  # the dropout mask
        if t > 1:  # the vocabulary-parallel lookup keeps local ids and a mask, per micro-batch
            emb += (I64 + 1) * n
        else:  # the embedding keeps the ids: views of the rank's whole batch
            once += I64 * n * share.micro_batches
        if ring:
            emb += I64 * s  # this rank's positions, made per forward
        else:
            once += I64 * shape.context  # the GPT's cached arange (a view of it under SP)
    tail, w_head = 0, 0
    if head:
        head_in = (w.stream * r if sp else w.copy * n) * h
        vocab = shape.vocab
        if t > 1:  # vocab-parallel loss: exp of this rank's logits, per token 8 + 1 + 1 bytes
            vocab = shape.vocab // t + (share.tp_rank < shape.vocab % t)
            loss = F32 * n * vocab + 10 * n
        else:  # cross-entropy: logits, target (int64), mask (bool), softmax sum (fp32)
            loss = F32 * n * shape.vocab + 13 * n
        tail = w.stream * (r * h + r) + head_in + loss + F32 * share.scaled_loss
        w_head = 0 if sp else cast * vocab * h
    gathered_layer, gathered_once = _zero3_gathered(shape, share, head)

    if mode == "blocks":
        kept = w.stream * r * h  # a checkpoint keeps the block's input
        forward = len(blocks) * kept + emb + tail + gathered_once
        backward = len(blocks) * kept + layer + gathered_layer + emb if blocks else 0
        w_block = w_layer if blocks else 0
        return _Parts(forward, backward, once, w_head, w_block, w_head + w_block)
    if mode == "sequential" and blocks:  # checkpoint_sequential(blocks, ceil(sqrt(L)))
        segments, kept = math.isqrt(len(blocks) - 1) + 1, w.stream * r * h
        size = len(blocks) // segments  # blocks per segment; the last runs plain, with the
        plain = len(blocks) - (segments - 1) * size  # rest, and keeps its activations
        one = layer + gathered_layer
        forward = (segments - 1) * kept + plain * one + emb + tail + gathered_once
        backward = (segments - 1) * kept + size * one + emb  # a segment recomputed, all the
        w_plain, w_seg = plain * w_layer + w_head, size * w_layer  # earlier inputs still kept
        return _Parts(forward, backward, once, w_plain, w_seg, w_plain + w_seg)
    per_layer = layer
    if mode == "selective":  # the attention core is checkpointed: it keeps its inputs
        per_layer += (0 if ring else 3 * column * n * h // t - qkv) - scores  # (not copies)
    forward = len(blocks) * (per_layer + gathered_layer) + emb + tail + gathered_once
    w_all = len(blocks) * w_layer + w_head
    if mode == "selective" and blocks:  # the last layer's attention runs again: its core
        freed = tail + gathered_once + mlp + after_core  # (SDPA's copies and P, or the ring's
        backward = forward - freed + scores + (0 if ring else qkv)  # output) is back
        return _Parts(forward, backward, once, w_all, w_all - w_head - w_late, w_all)
    return _Parts(forward, 0, once, w_all)


def _zero3_gathered(shape: ModelShape, share: ActivationShare, head: bool) -> tuple[int, int]:
    """ZeRO-3: bytes of gathered flat buffers a GPT keeps in the graph (per layer, once).

    Its attention (in_proj, out_proj) and LayerNorms are generic units: their ops keep the
    gathered weights until backward. Linears gather again in backward (nothing kept), the
    embeddings' backward needs no weight. A tied head reads the token table: kept too.
    Under autocast the LayerNorms keep their 16-bit buffers and attention's Linears the
    weights' cast copies (``widths.weights`` per element), not its buffer.
    """
    world, w = share.zero3_world, share.widths
    if not world or shape.kind != "gpt":
        return 0, 0
    h = shape.d_model

    def padded(numel: int) -> int:
        return w.stream * -(-numel // world) * world

    attention = w.weights * 4 * h * h if w.autocast else padded(4 * h * h + 4 * h)
    layer = attention + 2 * padded(2 * h)
    once = padded(2 * h) if head else 0
    if head and shape.tie_weights:
        once += w.weights * shape.vocab * h if w.autocast else padded(shape.vocab * h)
    return layer, once
