"""Ring attention: attention over a context no rank holds whole, as ONE autograd op.

Context parallelism splits the *sequence* over ``cp`` ranks. Each rank keeps its query
block ``Q_r`` (``(batch, heads, L/cp, E)``) and the K/V blocks travel round the ring: at
step ``t`` rank ``r`` holds the block of rank ``j = r - t (mod cp)``, then sends it to
``r+1`` and receives the next one from ``r-1`` (``cp-1`` hops; even ranks send first, odd
ranks receive first, so no two neighbours both wait)::

    step 0        step 1        step 2          (cp = 3: which K/V block each rank holds)
    r0: KV0       r0: KV2       r0: KV1
    r1: KV1       r1: KV0       r1: KV2
    r2: KV2       r2: KV1       r2: KV0

**Forward, the online softmax.** No rank sees a whole row of scores, so softmax is merged
block by block, keeping per query row the running max ``m``, the running sum ``l`` and the
unnormalised output ``O`` (as FlashAttention does within one device)::

    S_j = scale·Q K_jᵀ (+ mask)         m' = max(m, rowmax S_j)
    P_j = exp(S_j − m')                 l  ← l·exp(m − m') + rowsum P_j
    O   ← O·exp(m − m') + P_j V_j       m  ← m'
    at the end:  O ← O / l,   LSE = m + log l      (the row's log-sum-exp, kept for backward)

**Backward, recomputed per block** (FlashAttention-2). With ``Δ = rowsum(dO ∘ O)`` (one
number per row, local), every block's probabilities come back exactly from the saved LSE::

    P_j  = exp(S_j − LSE)               dV_j += P_jᵀ dO
    dP_j = dO V_jᵀ                      dS_j  = P_j ∘ (dP_j − Δ)
    dQ  += scale · dS_j K_j             dK_j += scale · dS_jᵀ Q

``dQ`` stays home; the accumulators ``dK_j, dV_j`` travel round the ring *with* their
``K_j, V_j`` (``cp-1`` hops), and one last hop brings each block's finished ``dK, dV`` back
to its owner. No rank ever forms an ``L × L`` matrix: the largest is one block of scores,
``(L/cp)²`` (or ``(L/2cp)²`` with balanced causal chunks).

**Causal masking** uses the balanced split of :mod:`.chunks` (rank ``r`` holds chunks
``r`` and ``2cp-1-r`` of ``2cp``): every (query chunk, key chunk) pair is all visible, the
diagonal triangle, or invisible -- and invisible blocks are skipped (their K/V still pass
on). ``q``, ``k``, ``v`` must then be in that layout (:func:`.chunks.split_sequence`).
Without ``is_causal`` the split is the plain contiguous one. Dropout and explicit masks
are not supported (give either ``is_causal`` or nothing).

Use in a GPT block (each rank holds its piece of the sequence; everything outside
attention is per position and needs no communication)::

    from sparkgrad.parallel.context import ring_attention, split_sequence  # see also .gpt

    x = split_sequence(tokens_embedded, rank, cp, balanced=True, dim=1)   # (B, L/cp, D)
    q, k, v = (t.reshape(B, -1, H, D // H).transpose(1, 2) for t in qkv(ln1(x)).chunk(3, -1))
    y = ring_attention(q, k, v, cp_group, is_causal=True)                  # (B, H, L/cp, D/H)
    x = x + proj(y.transpose(1, 2).reshape(B, -1, D))
    x = x + mlp(ln2(x))
    # the positional embedding must use split_sequence's positions, and the loss's
    # targets the same split; the gradients of shared weights are all-reduced over cp.
"""

from __future__ import annotations

import math
from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ShapeError
from sparkgrad.parallel.context.chunks import block_mask, check_divisible, rank_chunks


def _t(a: Any) -> Any:
    """The last two dims swapped (a view): Kᵀ, Pᵀ of a batch of matrices."""
    return a.swapaxes(-1, -2)


def _ring(group: Any) -> tuple[Any, int, int]:
    """``(process group, rank, size)`` of a group, a ProcessGroup, or ``None`` (one rank)."""
    if group is None:
        return None, 0, 1
    pg = getattr(group, "pg", group)
    return pg, int(pg.rank), int(pg.size)


def block_scores(q: Any, k: Any, scale: float, kind: str) -> Any:
    """One block of scores ``scale·Q Kᵀ`` (a fresh array); the diagonal block masked causally."""
    s = q @ _t(k)
    s *= scale
    if kind == "causal":  # query chunk == key chunk: query i sees keys 0..i of the chunk
        xp = array_module(s)
        xp.copyto(s, -xp.inf, where=~xp.tri(s.shape[-2], s.shape[-1], 0, dtype=bool))
    return s


def _blocks(rank: int, src: int, cp: int, causal: bool):
    """``(query chunk slot, key chunk slot, mask)`` for every block rank ``rank`` computes
    against the K/V of rank ``src``; invisible blocks ("none") are left out."""
    for a, qc in enumerate(rank_chunks(rank, cp, causal)):
        for b, kc in enumerate(rank_chunks(src, cp, causal)):
            kind = block_mask(qc, kc) if causal else "full"
            if kind != "none":
                yield a, b, kind


def _pass_on(arrays: tuple[Any, ...], pg: Any, rank: int, cp: int) -> tuple[Any, ...]:
    """One ring hop: send ``arrays`` (packed into one buffer) to ``rank+1``, return the ones
    received from ``rank-1``. Even ranks send first, odd ranks receive first."""
    xp = array_module(arrays[0])
    out = xp.concatenate([a.reshape(-1) for a in arrays])
    buf = xp.empty_like(out)
    if rank % 2 == 0:
        pg.send(out, (rank + 1) % cp)
        pg.recv(buf, (rank - 1) % cp)
    else:
        pg.recv(buf, (rank - 1) % cp)
        pg.send(out, (rank + 1) % cp)
    got, at = [], 0
    for a in arrays:
        got.append(buf[at : at + a.size].reshape(a.shape))
        at += a.size
    return tuple(got)


def _rows(a: Any, slot: int, c: int) -> Any:
    """Chunk ``slot`` (length ``c``) of the sequence dim (-2): a view."""
    return a[..., slot * c : (slot + 1) * c, :]


class RingAttention(Function):
    """O = softmax(scale·QKᵀ) V with K, V passed round the ring and the softmax merged online;
    dS_j = P_j∘(dO V_jᵀ − rowsum(dO∘O)), dQ = scale·Σ_j dS_j K_j stays, dK_j, dV_j travel home"""

    @staticmethod
    def forward(
        ctx: Context, q: Any, k: Any, v: Any, group: Any = None, scale: float = 1.0,
        is_causal: bool = False,
    ) -> Any:  # fmt: skip
        xp = array_module(q)
        pg, rank, cp = _ring(group)
        c = q.shape[-2] // len(rank_chunks(rank, cp, is_causal))
        out = xp.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
        m = xp.full(q.shape[:-1] + (1,), -xp.inf, dtype=q.dtype)  # running row max
        l = xp.zeros_like(m)  # running row sum  # noqa: E741
        kv = (k, v)
        for step in range(cp):
            src = (rank - step) % cp  # whose K/V block this rank holds now
            for a, b, kind in _blocks(rank, src, cp, is_causal):
                s = block_scores(_rows(q, a, c), _rows(kv[0], b, c), scale, kind)
                o_a, m_a, l_a = _rows(out, a, c), _rows(m, a, c), _rows(l, a, c)
                m_new = xp.maximum(m_a, s.max(axis=-1, keepdims=True))
                shift = xp.where(xp.isneginf(m_new), 0, m_new)  # a row with no key yet: 0
                s -= shift
                p = xp.exp(s, out=s)  # P_j = exp(S_j - m'), masked entries 0
                alpha = xp.exp(m_a - shift)  # rescales what was merged so far
                l_a *= alpha
                l_a += p.sum(axis=-1, keepdims=True)
                o_a *= alpha
                o_a += p @ _rows(kv[1], b, c)
                m_a[...] = m_new
            if step < cp - 1:
                kv = _pass_on(kv, pg, rank, cp)
        dead = l == 0  # rows that saw no key: output 0 (PyTorch's safe softmax)
        l[dead] = 1
        out /= l
        lse = m + xp.log(l)
        lse[dead] = xp.inf  # exp(S - inf) = 0: backward gives such rows no gradient
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.group, ctx.scale, ctx.is_causal = group, scale, is_causal
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        q, k, v, out, lse = ctx.saved_tensors
        xp = array_module(q)
        pg, rank, cp = _ring(ctx.group)
        scale, causal = ctx.scale, ctx.is_causal
        c = q.shape[-2] // len(rank_chunks(rank, cp, causal))
        delta = (grad * out).sum(axis=-1, keepdims=True)  # Δ = rowsum(dO ∘ O)
        dq = xp.zeros_like(q)
        blk = (k, v, xp.zeros_like(k), xp.zeros_like(v))  # K_j, V_j, dK_j, dV_j travel together
        for step in range(cp):
            src = (rank - step) % cp
            kb, vb, dkb, dvb = blk
            for a, b, kind in _blocks(rank, src, cp, causal):
                q_a, g_a = _rows(q, a, c), _rows(grad, a, c)
                k_b, v_b = _rows(kb, b, c), _rows(vb, b, c)
                s = block_scores(q_a, k_b, scale, kind)
                s -= _rows(lse, a, c)
                p = xp.exp(s, out=s)  # P_j = exp(S_j - LSE): the forward's probabilities
                _rows(dvb, b, c)[...] += _t(p) @ g_a
                ds = g_a @ _t(v_b)  # dP_j
                ds -= _rows(delta, a, c)
                ds *= p  # dS_j = P_j ∘ (dP_j - Δ)
                _rows(dq, a, c)[...] += scale * (ds @ k_b)
                _rows(dkb, b, c)[...] += scale * (_t(ds) @ q_a)
            if step < cp - 1:
                blk = _pass_on(blk, pg, rank, cp)
        dk, dv = blk[2], blk[3]
        if cp > 1:  # this rank holds block rank+1's finished dK, dV: one hop takes them home
            dk, dv = _pass_on((dk, dv), pg, rank, cp)
        return dq, dk, dv


def _check(q: Tensor, k: Tensor, v: Tensor, cp: int, causal: bool) -> None:
    """Shapes that fit: same leading dims and local length for Q, K, V; E shared by Q and K."""
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ShapeError(
            f"ring_attention: expected q, k, v of equal rank >= 2 (..., L/cp, E), found "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[:-1] != k.shape[:-1] or k.shape[:-1] != v.shape[:-1]:
        raise ShapeError(
            "ring_attention: expected q, k, v with the same leading dims and local sequence "
            f"length (..., L/cp, ·), found {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ShapeError(
            f"ring_attention: expected q and k with the same head dim E, found "
            f"{q.shape[-1]} and {k.shape[-1]}"
        )
    if causal:  # the local piece is two balanced chunks: L = cp·local must divide by 2·cp
        check_divisible(cp * q.shape[-2], cp, balanced=True)


def ring_attention(
    q: Tensor, k: Tensor, v: Tensor, group: Any = None, is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:  # fmt: skip
    """Attention of this rank's queries over the whole sequence, K/V passed round ``group``.

    ``q, k, v``: this rank's pieces ``(..., L/cp, E)`` (``(..., L/cp, Ev)`` for ``v``), in
    the contiguous layout, or, with ``is_causal``, the balanced layout of
    :func:`~sparkgrad.parallel.context.chunks.split_sequence`. Returns this rank's piece of
    ``F.scaled_dot_product_attention(Q, K, V, is_causal=is_causal, scale=scale)`` over the
    full sequence. ``scale`` defaults to ``1/sqrt(E)``; ``group=None`` is one rank.
    Forward and backward: :class:`RingAttention`.
    """
    _, _, cp = _ring(group)
    _check(q, k, v, cp, is_causal)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    return RingAttention.apply(q, k, v, group=group, scale=scale, is_causal=bool(is_causal))
