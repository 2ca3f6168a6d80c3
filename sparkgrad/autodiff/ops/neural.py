"""The ops of neural networks, fused where fusing is both faster and more stable.

The classification losses (cross-entropy, nll) live here, next to the log-softmax they
fuse with; the other losses are in :mod:`.losses`.
"""

from __future__ import annotations

import math
from typing import Any

from sparkgrad.autodiff.backend import array_module, device_of, to_device
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.autodiff.ops import fused
from sparkgrad.autodiff.random import default_generator
from sparkgrad.errors import ShapeError


class Linear(Function):
    """z = x @ Wᵀ + b;  dL/dx = g @ W, dL/dW = gᵀ @ x, dL/db = Σ g over the batch"""

    @staticmethod
    def forward(ctx: Context, x: Any, weight: Any, bias: Any = None) -> Any:
        if x.shape[-1] != weight.shape[1]:
            raise ShapeError(
                f"linear: input of shape {tuple(x.shape)} has {x.shape[-1]} features, "
                f"weight of shape {tuple(weight.shape)} expects {weight.shape[1]}"
            )
        ctx.save_for_backward(x, weight)
        out = rows(x) @ weight.T  # (..., in) as one (rows, in) matrix: a single BLAS call
        if bias is not None:
            out += bias  # out is fresh, so adding in place saves one temporary
        return out.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = (ctx.needs_input_grad + (False,))[:3]
        g2 = rows(grad)
        gx = (g2 @ weight).reshape(x.shape) if need_x else None
        gw = g2.T @ rows(x) if need_w else None
        gb = g2.sum(axis=0) if need_b else None
        return gx, gw, gb


def rows(a: Any) -> Any:
    """``a`` of shape (..., n) viewed as a (rows, n) matrix (NumPy's stacked matmul of a 3-D
    array by a transposed 2-D one loops over the stack instead of making one BLAS call)."""
    return a.reshape(-1, a.shape[-1]) if a.ndim != 2 else a


def _log_softmax(a: Any, axis: int) -> Any:
    xp = array_module(a)
    shifted = a - a.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    """z = a - log Σ eᵃ (max subtracted first, so no overflow);  dL/da = g - softmax(a)·Σ g"""

    @staticmethod
    def forward(ctx: Context, a: Any, axis: int = -1) -> Any:
        out = _log_softmax(a, axis)
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (out,) = ctx.saved_tensors
        xp = array_module(out)
        return grad - xp.exp(out) * grad.sum(axis=ctx.axis, keepdims=True)


class Softmax(Function):
    """z = eᵃ / Σ eᵃ;  dL/da = z·(g - Σ g·z)"""

    @staticmethod
    def forward(ctx: Context, a: Any, axis: int = -1) -> Any:
        xp = array_module(a)
        e = xp.exp(a - a.max(axis=axis, keepdims=True))
        out = e / e.sum(axis=axis, keepdims=True)
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (out,) = ctx.saved_tensors
        return out * (grad - (grad * out).sum(axis=ctx.axis, keepdims=True))


def _classes_last(logits: Any, target: Any) -> tuple[Any, Any]:
    """(N, C, d1, ...) logits and (N, d1, ...) targets -> (M, C) and (M,), as PyTorch accepts."""
    if logits.ndim == 1:
        return logits[None, :], target.reshape(1)
    if logits.ndim > 2:
        xp = array_module(logits)
        logits = xp.moveaxis(logits, 1, -1).reshape(-1, logits.shape[1])
    return logits, target.reshape(-1)


def _check_targets(logits: Any, target: Any, ignore_index: int) -> Any:
    expected = (logits.shape[0],) + tuple(logits.shape[2:]) if logits.ndim > 1 else ()
    if tuple(target.shape) != expected:
        raise ShapeError(
            f"cross_entropy: targets of shape {tuple(target.shape)} do not match logits of shape "
            f"{tuple(logits.shape)} (expected targets of shape {expected})"
        )
    if target.dtype.kind not in "iu":
        raise TypeError(f"class targets must be integers, found dtype {target.dtype}")
    n_classes = logits.shape[1] if logits.ndim > 1 else logits.shape[0]
    bad = (target != ignore_index) & ((target < 0) | (target >= n_classes))
    if bad.any():
        raise IndexError(
            f"target {int(target[bad].reshape(-1)[0])} is out of bounds for {n_classes} classes"
        )


def _check_weight(weight: Any, n_classes: int) -> None:
    """Class weights: one per class, as PyTorch's message says."""
    if weight is not None and tuple(weight.shape) != (n_classes,):
        raise RuntimeError(
            f"weight tensor should be defined either for all {n_classes} classes or no "
            f"classes but got weight tensor of shape: {list(weight.shape)}"
        )


def _reduce_rows(loss: Any, row_weight: Any, reduction: str, target_shape: Any) -> Any:
    """Per-row losses reduced as PyTorch's nll_loss: a mean divides by Σ of the rows' weights."""
    if reduction == "none":
        return loss.reshape(target_shape)
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / row_weight.sum()
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', found {reduction!r}")


class CrossEntropy(Function):
    """L = -Σ q·log_softmax(a) with q = (1-ε)·w_y·onehot + (ε/C)·w;  dL/da = softmax(a)·Σq - q

    Fused with log_softmax: one pass computes the loss, the backward needs no extra exp of
    the logits' raw values, and nothing overflows for large logits. Without class weights
    (w = 1) Σq = 1. With them, PyTorch's weighted mean divides by Σ w_y over the counted
    targets, not by their number.
    """

    @staticmethod
    def forward(
        ctx: Context,
        logits: Any,
        target: Any,
        weight: Any = None,
        reduction: str = "mean",
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
    ) -> Any:
        _check_targets(logits, target, ignore_index)
        xp = array_module(logits)
        shape_in, target_shape = logits.shape, target.shape
        flat, tgt = _classes_last(logits, target)
        _check_weight(weight, flat.shape[1])
        logp = _log_softmax(flat, axis=1)
        valid = tgt != ignore_index
        safe = xp.where(valid, tgt, 0)
        rows = xp.arange(flat.shape[0])
        eps, n_classes = float(label_smoothing), flat.shape[1]
        row_weight = valid.astype(logp.dtype) if weight is None else weight[safe] * valid
        loss = -logp[rows, safe] * row_weight
        if eps:
            smooth = (logp.sum(axis=1) if weight is None else logp @ weight) * valid
            loss = (1 - eps) * loss - (eps / n_classes) * smooth
        ctx.save_for_backward(logp, safe, valid, row_weight, weight)
        ctx.meta = (reduction, eps, shape_in)
        return _reduce_rows(loss, row_weight, reduction, target_shape)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        logp, safe, valid, row_weight, weight = ctx.saved_tensors
        reduction, eps, shape_in = ctx.meta
        xp = array_module(logp)
        d = xp.exp(logp)  # softmax
        rows = xp.arange(d.shape[0])
        n_classes = d.shape[1]
        if weight is None:  # Σq = 1 for every counted row
            d[rows, safe] -= 1 - eps
            if eps:
                d -= eps / n_classes
            d *= valid[:, None]
        else:
            total = (1 - eps) * row_weight + (eps / n_classes) * weight.sum() * valid
            d *= total[:, None]
            d[rows, safe] -= (1 - eps) * row_weight
            if eps:
                d -= (eps / n_classes) * weight[None, :] * valid[:, None]
        if reduction == "none":
            d *= grad.reshape(-1, 1)
        else:
            d *= grad / row_weight.sum() if reduction == "mean" else grad
        if len(shape_in) == 1:
            d = d.reshape(shape_in)
        elif len(shape_in) > 2:
            moved = (shape_in[0],) + tuple(shape_in[2:]) + (shape_in[1],)
            d = xp.moveaxis(d.reshape(moved), -1, 1)
        return d, None, None


class NLLLoss(Function):
    """L = -w_y·logp[y], a mean divides by Σ w_y;  dL/dlogp = -w_y (/Σ w_y) at y, 0 elsewhere"""

    @staticmethod
    def forward(
        ctx: Context,
        logp: Any,
        target: Any,
        weight: Any = None,
        reduction: str = "mean",
        ignore_index: int = -100,
    ) -> Any:
        _check_targets(logp, target, ignore_index)
        xp = array_module(logp)
        flat, tgt = _classes_last(logp, target)
        _check_weight(weight, flat.shape[1])
        valid = tgt != ignore_index
        safe = xp.where(valid, tgt, 0)
        row_weight = valid.astype(flat.dtype) if weight is None else weight[safe] * valid
        loss = -flat[xp.arange(flat.shape[0]), safe] * row_weight
        ctx.save_for_backward(safe, row_weight)
        ctx.meta = (reduction, logp.shape, flat.shape)
        return _reduce_rows(loss, row_weight, reduction, target.shape)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        safe, row_weight = ctx.saved_tensors
        reduction, shape_in, flat_shape = ctx.meta
        xp = array_module(grad)
        d = xp.zeros(flat_shape, dtype=grad.dtype)
        if reduction == "none":
            per_row = grad.reshape(-1)
        else:
            per_row = grad / row_weight.sum() if reduction == "mean" else grad
        d[xp.arange(flat_shape[0]), safe] = -per_row * row_weight
        if len(shape_in) == 1:
            d = d.reshape(shape_in)
        elif len(shape_in) > 2:
            moved = (shape_in[0],) + tuple(shape_in[2:]) + (shape_in[1],)
            d = xp.moveaxis(d.reshape(moved), -1, 1)
        return d, None, None


class Dropout(Function):
    """z = a·m/(1-p) with m ~ Bernoulli(1-p);  dL/da = g·m/(1-p)

    ``mask_shape`` (broadcastable to ``a``) draws one coin per mask entry: ``(N, C, 1, 1)``
    keeps or drops whole channels (``dropout2d``).
    """

    @staticmethod
    def forward(ctx: Context, a: Any, p: float = 0.5, mask_shape: tuple | None = None) -> Any:
        keep = default_generator().random(a.shape if mask_shape is None else mask_shape) >= p
        mask = to_device(keep.astype(a.dtype) / (1 - p), device_of(a))
        ctx.save_for_backward(mask)
        return a * mask

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (mask,) = ctx.saved_tensors
        return grad * mask


class LayerNorm(Function):
    """z = (a - μ)/σ · w + b over the last dims;  dL/da = (g·w - mean(g·w) - x̂·mean(g·w·x̂))/σ

    Forward and backward run on ``a`` viewed as (rows, features) through the in-place
    helpers of :mod:`.fused` (row means as matrix-vector products, one buffer reused);
    written as plain NumPy the same formulas read::

        μ = a.mean(axes);  x̂ = (a − μ)/√(((a − μ)²).mean(axes) + eps);  z = x̂·w + b
        ĝ = g·w;  dL/da = (ĝ − ĝ.mean(axes) − x̂·(ĝ·x̂).mean(axes))/σ
        dL/dw = Σ_rows g·x̂;  dL/db = Σ_rows g
    """

    @staticmethod
    def forward(ctx: Context, a: Any, weight: Any, bias: Any, n_dims: int, eps: float) -> Any:
        n = math.prod(a.shape[a.ndim - n_dims :])
        w, b = (None if t is None else t.reshape(-1) for t in (weight, bias))  # (n,) each
        out, xhat, inv_std = fused.layer_norm_forward(a.reshape(-1, n), w, b, eps)
        ctx.save_for_backward(xhat, inv_std, weight)
        ctx.shapes = a.shape, a.shape[a.ndim - n_dims :]
        return out.reshape(a.shape)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        xhat, inv_std, weight = ctx.saved_tensors
        need_w, need_b = (tuple(ctx.needs_input_grad) + (False, False))[1:3]
        w = None if weight is None else weight.reshape(-1)
        gx, gw, gb = fused.layer_norm_backward(
            grad.reshape(xhat.shape), xhat, inv_std, w, need_w and weight is not None, need_b
        )
        shape, normalized = ctx.shapes
        gw = None if gw is None else gw.reshape(normalized)
        gb = None if gb is None else gb.reshape(normalized)
        return gx.reshape(shape), gw, gb


class Embedding(Function):
    """z = W[idx];  dL/dW = g added into the rows named by idx (0 for padding_idx)"""

    @staticmethod
    def forward(ctx: Context, weight: Any, indices: Any, padding_idx: int | None = None) -> Any:
        if indices.dtype.kind not in "iu":
            raise TypeError(f"embedding indices must be integers, found dtype {indices.dtype}")
        outside = (indices < 0) | (indices >= weight.shape[0])
        if indices.size and outside.any():  # one scalar to the host (a GPU sync), not two
            raise IndexError(f"embedding index out of range for {weight.shape[0]} rows")
        ctx.save_for_backward(indices)
        ctx.shape, ctx.padding_idx = weight.shape, padding_idx
        return weight[indices]

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (indices,) = ctx.saved_tensors
        # gw = zeros, then gw[idx[i]] += g[i] (add.at's result, in fewer passes on the CPU)
        gw = fused.index_add_rows(ctx.shape[0], indices.reshape(-1), grad.reshape(-1, ctx.shape[1]))
        if ctx.padding_idx is not None:
            gw[ctx.padding_idx] = 0
        return gw, None
