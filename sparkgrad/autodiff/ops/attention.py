"""Scaled dot-product attention as ONE op: scores, softmax, dropout and the value mix fused.

Written out as separate ops, attention would leave five nodes in the graph (matmul, scale,
mask, softmax, matmul) and keep each one's output alive for backward. Fused, the forward
keeps only ``Q, K, V`` and the probabilities ``P``, and the backward is five lines of
matrix algebra (derived step by step in ``tests/walkthroughs/test_08_1_attention_backward.py``)::

    forward                          backward (given dO = dL/dO)
    S = scale·Q Kᵀ + M               dV = Pᵀ dO
    P = softmax(S)   (rows)          dP = dO Vᵀ
    O = P V                          dS = P ∘ (dP − rowsum(dP ∘ P))     (softmax's backward)
                                     dQ = scale · dS K
                                     dK = scale · dSᵀ Q

Shapes: ``Q (..., L, E)``, ``K (..., S, E)``, ``V (..., S, Ev)``, ``O (..., L, Ev)``; the
leading dims broadcast as in ``matmul`` (each matmul runs over them with NumPy's batched
``@``, no loops and no copies to 3-D). The engine sums each gradient back to its input's
shape. ``M`` is the mask: a boolean one keeps the scores where it is True (elsewhere they
become -inf), a float one is added (and gets ``dM = dS`` if it requires grad).

Two details match PyTorch 2.13:

- **fully masked rows**: a row of scores that is all -inf has no softmax (0/0). PyTorch's
  CPU attention returns zeros there (its "safe softmax"), for boolean and for -inf float
  masks alike, and so do we: the row's probabilities are 0, so its output and all
  gradients through it are 0.
- **dropout** (``dropout_p > 0``) drops probabilities after the softmax:
  ``O = (P ∘ D/(1-p)) V`` with ``D ~ Bernoulli(1-p)``. Backward then reads
  ``dV = (P ∘ D/(1-p))ᵀ dO`` and ``dP = (dO Vᵀ) ∘ D/(1-p)`` before the softmax step, which
  still uses the undropped ``P``. Only the boolean ``D`` is kept, not a second float copy.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.backend import array_module, device_of, to_device
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.autodiff.ops import fused
from sparkgrad.autodiff.ops.fused import safe_softmax_  # noqa: F401 - the textbook softmax
from sparkgrad.autodiff.random import default_generator


def _t(a: Any) -> Any:
    """The last two dims swapped (a view): Kᵀ, Vᵀ, Pᵀ of a batch of matrices."""
    return a.swapaxes(-1, -2)


def scores(q: Any, k: Any, mask: Any, scale: float, is_causal: bool) -> Any:
    """S = scale·Q Kᵀ, then masked: -inf where a boolean mask is False, a float mask added.

    ``q`` here is already ``scale·Q`` (the forward scales the smaller array, Q, not S);
    ``scale`` is kept in the signature for the lesson's formula.
    """
    xp = array_module(q)
    s = q @ _t(k)  # a fresh array, so the updates below may be in place
    if is_causal:  # query i sees keys 0..i (top-left aligned when L != S, as PyTorch)
        causal = xp.tri(q.shape[-2], k.shape[-2], 0, dtype=bool)
        s += xp.where(causal, 0, -xp.inf).astype(s.dtype)  # (L, S) 0/-inf, added: no branch
        return s
    if mask is None:
        return s
    if mask.dtype == bool:
        xp.copyto(s, -xp.inf, where=~mask)  # in place; the mask broadcasts (checked by caller)
    else:
        s += mask
    return s


class ScaledDotProductAttention(Function):
    """O = softmax(scale·QKᵀ + M) V;  dV = Pᵀ dO, dS = P∘(dP − rowsum(dP∘P)) with dP = dO Vᵀ,
    dQ = scale·dS K, dK = scale·dSᵀ Q (see the module docstring)"""

    @staticmethod
    def forward(
        ctx: Context,
        q: Any,
        k: Any,
        v: Any,
        mask: Any = None,
        scale: float = 1.0,
        dropout_p: float = 0.0,
        is_causal: bool = False,
    ) -> Any:
        xp = array_module(q)
        # contiguous (L, E) matrices per head: a strided view of the packed projection makes
        # every batched product ~2x slower; Q is scaled while it is copied (S = (scale·Q) Kᵀ)
        q = xp.multiply(q, q.dtype.type(scale))
        k, v = xp.ascontiguousarray(k), xp.ascontiguousarray(v)
        p = fused.softmax_lastdim(scores(q, k, mask, scale, is_causal))  # = safe_softmax_(S)
        keep, factor = None, 1.0
        if dropout_p > 0:
            keep = default_generator().random(p.shape) >= dropout_p
            keep = to_device(keep, device_of(p))
            factor = 0.0 if dropout_p >= 1 else 1.0 / (1.0 - dropout_p)
            out = (p * keep) @ v
            out *= factor
        else:
            out = p @ v
        ctx.save_for_backward(q, k, v, p, keep)  # q is scale·Q
        ctx.scale, ctx.factor = scale, factor
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        q, k, v, p, keep = ctx.saved_tensors  # q is scale·Q
        need_q, need_k, need_v, need_m = (tuple(ctx.needs_input_grad) + (False,) * 4)[:4]
        scale, factor = ctx.scale, ctx.factor
        grad = array_module(grad).ascontiguousarray(grad)  # often a permuted view
        dq = dk = dv = ds = None
        if need_v:
            dropped = p if keep is None else (p * keep) * factor
            dv = _t(dropped) @ grad
        if need_q or need_k or need_m:
            dp = grad @ _t(v)  # fresh: the in-place steps below touch nothing shared
            if keep is not None:
                dp *= keep
                dp *= factor
            ds = fused.softmax_backward_(dp, p)  # dS = P ∘ (dP − rowsum(dP ∘ P)), in place
            if need_q:
                dq = ds @ k
                dq *= scale
            if need_k:
                dk = _t(ds) @ q  # scale · dSᵀ Q, as q holds scale·Q
        return dq, dk, dv, ds if need_m else None
