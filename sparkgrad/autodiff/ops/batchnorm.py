"""Batch normalisation: normalise every channel over the batch (and spatial) positions.

For an input (N, C, *) and each channel c, with m = N·prod(*) values per channel::

    μ = mean(x_c)      σ² = mean((x_c - μ)²)   (biased)      x̂ = (x_c - μ) / sqrt(σ² + ε)
    y_c = w_c · x̂ + b_c

**Training** normalises with the batch's own μ and σ², and, when running buffers are
given, moves them towards the batch (PyTorch's exponential average with ``momentum``)::

    running_mean ← (1 - momentum)·running_mean + momentum·μ
    running_var  ← (1 - momentum)·running_var  + momentum·σ²·m/(m - 1)   (unbiased)

The buffers are updated in place, outside the graph: they are state, not a result.
**Evaluation** uses the running statistics as constants.

Backward. In evaluation μ and σ are constants, so ``dL/dx = g·w/σ``. In training they
depend on x too; with ĝ = g·w and means over the m positions of a channel::

    dL/dx = (ĝ - mean(ĝ) - x̂·mean(ĝ·x̂)) / sqrt(σ² + ε)
    dL/dw = Σ g·x̂        dL/db = Σ g

The two subtracted terms are the paths through μ and σ²: shifting every x of a channel by
the same amount changes nothing after normalising, and neither does scaling it, so the
gradient has no component along 1 or along x̂ (the same formula as layer norm,
with the mean taken over the batch instead of the features).
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Context, Function


class BatchNorm(Function):
    """z = (x - μ)/sqrt(σ² + ε)·w + b per channel;  dL/dx = (ĝ - mean ĝ - x̂·mean(ĝx̂))/σ (train)"""

    @staticmethod
    def forward(
        ctx: Context,
        x: Any,
        weight: Any,
        bias: Any,
        running_mean: Any,
        running_var: Any,
        training: bool = False,
        momentum: float = 0.1,
        eps: float = 1e-5,
    ) -> Any:
        xp = array_module(x)
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        if training:
            mean = x.mean(axis=axes)
            centered = x - mean.reshape(shape)
            var = (centered * centered).mean(axis=axes)
            if running_mean is not None:  # in place, no graph
                m = x.size // x.shape[1]
                running_mean[...] = (1 - momentum) * running_mean + momentum * mean
                running_var[...] = (1 - momentum) * running_var + momentum * var * (m / (m - 1))
        else:
            centered = x - running_mean.reshape(shape).astype(x.dtype, copy=False)
            var = running_var.astype(x.dtype, copy=False)
        inv_std = (1 / xp.sqrt(var + eps)).astype(x.dtype, copy=False).reshape(shape)
        xhat = centered * inv_std
        out = xhat * weight.reshape(shape) if weight is not None else xhat
        if bias is not None:
            out = out + bias.reshape(shape)
        ctx.save_for_backward(xhat, inv_std, weight)
        ctx.meta = (training, axes, shape)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        xhat, inv_std, weight = ctx.saved_tensors
        training, axes, shape = ctx.meta
        need_x, need_w, need_b = (ctx.needs_input_grad + (False,) * 3)[:3]
        gx = gw = gb = None
        if need_x:
            ghat = grad * weight.reshape(shape) if weight is not None else grad
            if training:
                gx = inv_std * (
                    ghat
                    - ghat.mean(axis=axes, keepdims=True)
                    - xhat * (ghat * xhat).mean(axis=axes, keepdims=True)
                )
            else:
                gx = ghat * inv_std
        if need_w:
            gw = (grad * xhat).sum(axis=axes)
        if need_b:
            gb = grad.sum(axis=axes)
        return gx, gw, gb, None, None
