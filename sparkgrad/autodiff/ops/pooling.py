"""Pooling: max, average and adaptive average over 2-D windows, built on im2col.

Pooling reads the same windows a convolution does, so it reuses the unfolded view of
:mod:`.conv` (``unfold_view``: (N, C, Hp, Wp) -> (N, C, kh, kw, OH, OW), no copy) and
its adjoint ``fold_add`` (col2im) for the backward. There is no matmul: each channel is
pooled on its own.

- **max**: padding is ``-inf`` (it never wins); the output is the window's maximum and
  the gradient goes to the *first* position holding it (PyTorch's rule), so
  ``dL/dx = col2im(onehot(argmax) · g)``. Overlapping windows (kernel 3, stride 2) may
  pick the same pixel twice: col2im adds both gradients. Both directions run as a loop
  over the kh·kw kernel offsets, each a strided slab of the whole batch.
- **average**: padding is 0; ``out = Σ window / divisor`` and ``dL/dx = col2im(g / divisor)``
  with the same ``g / divisor`` for every position of a window.
- **adaptive average**: output cell i averages input rows ``floor(i·H/OH)`` up to
  ``ceil((i+1)·H/OH)`` (windows of varying size). An average over a rectangle is an
  average over rows then over columns, so the op is two matrix products with fixed
  averaging matrices: ``out = A_h @ x @ A_wᵀ`` and ``dL/dx = A_hᵀ @ g @ A_w``.

Output size (PyTorch's ``pooling_output_shape``)::

    out = (H + 2p - d·(k-1) - 1 + (s-1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1)·s >= H + p:  out -= 1   # the last window must start
                                                         # inside the input or left padding

With ``ceil_mode`` the last window may hang over the right edge: the extra cells are
padded like the rest (``-inf`` or 0) and, for averages, not counted in the divisor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.autodiff.ops.conv import Pair, crop, fold_add, pad2d, unfold_view, window_slices
from sparkgrad.errors import ShapeError


def pool_out_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil: bool) -> int:
    """PyTorch's pooling output size along one axis (see the module docstring)."""
    out = (size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil else 0)) // stride
    out += 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _geometry(
    x: Any, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil: bool, name: str
) -> tuple[Pair, tuple[int, int, int, int], Pair]:
    """Output size, the pads that cover every window (top, bottom, left, right), padded size."""
    if x.ndim not in (3, 4) or 0 in x.shape[-3:]:
        raise ShapeError(
            f"{name}: non-empty 3D or 4D (batch mode) tensor expected for input, "
            f"but got input of size {list(x.shape)}"
        )
    for k, p in zip(kernel, padding):
        if p > k // 2:
            raise ShapeError(
                f"{name}: pad should be at most half of kernel size, but got pad={p}, "
                f"kernel_size={k}"
            )
    h, w = x.shape[-2:]
    out = tuple(
        pool_out_size(size, k, s, p, d, ceil)
        for size, k, s, p, d in zip((h, w), kernel, stride, padding, dilation)
    )
    if out[0] < 1 or out[1] < 1:
        c = x.shape[-3]
        raise ShapeError(
            f"Given input size: ({c}x{h}x{w}). Calculated output size: "
            f"({c}x{out[0]}x{out[1]}). Output size is too small"
        )
    # the windows reach up to (out-1)·s + d·(k-1) + 1 padded cells; pad the right to there
    reach = [(o - 1) * s + d * (k - 1) + 1 for o, s, d, k in zip(out, stride, dilation, kernel)]
    pads = (
        padding[0],
        max(0, reach[0] - h - padding[0]),
        padding[1],
        max(0, reach[1] - w - padding[1]),
    )
    padded = (h + pads[0] + pads[1], w + pads[2] + pads[3])
    return out, pads, padded


def _batched(x: Any) -> tuple[Any, bool]:
    return (x[None], True) if x.ndim == 3 else (x, False)


class MaxPool2d(Function):
    """z = max of each window;  dL/dx = col2im(onehot(first argmax) · g)"""

    @staticmethod
    def forward(
        ctx: Context,
        x: Any,
        kernel: Pair,
        stride: Pair,
        padding: Pair = (0, 0),
        dilation: Pair = (1, 1),
        ceil_mode: bool = False,
        indices: list | None = None,
    ) -> Any:
        """``indices``: a list the flat argmax indices (into H·W, as PyTorch's) are appended to."""
        out_hw, pads, padded = _geometry(
            x, kernel, stride, padding, dilation, ceil_mode, "max_pool2d"
        )
        x4, unbatched = _batched(x)
        xp = array_module(x4)
        h, w = x4.shape[-2:]
        kh, kw = kernel
        low = -xp.inf if x4.dtype.kind == "f" else xp.iinfo(x4.dtype).min
        windows = unfold_view(pad2d(x4, pads, low), kernel, stride, dilation, out_hw)
        # A running maximum over the kh·kw kernel offsets, each a strided slab of the whole
        # batch (cheaper than copying the windows out to take an argmax along them).
        # PyTorch's rule: a later value wins only if it is larger (so the first maximum
        # keeps a tie) or NaN (so a NaN anywhere in the window comes out). The updates are
        # arithmetic, not masked copies: random masks make selecting copies several times
        # slower. (xp.maximum propagates NaN, as the rule wants.)
        best = windows[:, :, 0, 0].copy()
        arg = xp.zeros(best.shape, dtype=np.int32)
        for t in range(1, kh * kw):
            value = windows[:, :, t // kw, t % kw]
            wins = value > best
            if x4.dtype.kind == "f":
                wins |= xp.isnan(value)
            xp.maximum(best, value, out=best)
            arg += wins * (np.int32(t) - arg)  # arg = t where the value wins
        if indices is not None:
            rows = xp.arange(out_hw[0]).reshape(-1, 1) * stride[0] - pads[0]
            cols = xp.arange(out_hw[1]) * stride[1] - pads[2]
            ih = rows + (arg // kw) * dilation[0]
            iw = cols + (arg % kw) * dilation[1]
            flat_index = (ih * w + iw).astype(np.int64)
            indices.append(flat_index[0] if unbatched else flat_index)
        ctx.save_for_backward(arg)
        ctx.meta = (unbatched, (h, w), kernel, stride, dilation, pads, padded)
        return best[0] if unbatched else best

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (arg,) = ctx.saved_tensors
        unbatched, hw, (kh, kw), stride, dilation, pads, padded = ctx.meta
        xp = array_module(grad)
        g = grad[None] if unbatched else grad
        n, c, oh, ow = g.shape
        # col2im of onehot(argmax)·g, one kernel offset at a time (no (kh·kw)-times copy).
        # When windows cannot overlap (stride ≥ dilated kernel, e.g. the usual 2x2 / 2), every
        # pixel is reached by at most one offset: write instead of add.
        disjoint = all(s >= d * (k - 1) + 1 for s, d, k in zip(stride, dilation, (kh, kw)))
        gpad = xp.zeros((n, c) + tuple(padded), dtype=g.dtype)
        for t in range(kh * kw):
            rows, cols = window_slices(t // kw, t % kw, (oh, ow), stride, dilation)
            if disjoint:
                xp.multiply(g, arg == t, out=gpad[:, :, rows, cols])
            else:
                gpad[:, :, rows, cols] += g * (arg == t)
        gx = crop(gpad, pads, hw)
        return gx[0] if unbatched else gx


def _window_counts(
    size: int, out: int, kernel: int, stride: int, pad: int, include_pad: bool
) -> np.ndarray:
    """How many cells each window along one axis averages (PyTorch's avg_pool2d rule).

    A window starts at ``o·s - p`` and ends at ``min(start + k, size + p)``: the regular
    padding counts when ``count_include_pad``, the ceil-mode overhang never does.
    """
    start = np.arange(out) * stride - pad
    end = np.minimum(start + kernel, size + pad)
    if include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


class AvgPool2d(Function):
    """z = Σ window / divisor;  dL/dx = col2im(g / divisor, spread over each window)"""

    @staticmethod
    def forward(
        ctx: Context,
        x: Any,
        kernel: Pair,
        stride: Pair,
        padding: Pair = (0, 0),
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> Any:
        ones = (1, 1)
        out_hw, pads, padded = _geometry(x, kernel, stride, padding, ones, ceil_mode, "avg_pool2d")
        x4, unbatched = _batched(x)
        xp = array_module(x4)
        h, w = x4.shape[-2:]
        windows = unfold_view(pad2d(x4, pads), kernel, stride, ones, out_hw)
        if divisor_override is not None:
            divisor = np.full(out_hw, float(divisor_override))
        else:
            per_axis = [
                _window_counts(size, o, k, s, p, count_include_pad)
                for size, o, k, s, p in zip((h, w), out_hw, kernel, stride, padding)
            ]
            divisor = np.outer(per_axis[0], per_axis[1])
        inv = xp.asarray((1.0 / divisor).astype(x4.dtype))
        out = windows.sum(axis=(2, 3)) * inv
        ctx.save_for_backward(inv)
        ctx.meta = (unbatched, (h, w), kernel, stride, pads, padded)
        return out[0] if unbatched else out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (inv,) = ctx.saved_tensors
        unbatched, hw, (kh, kw), stride, pads, padded = ctx.meta
        xp = array_module(grad)
        g = (grad[None] if unbatched else grad) * inv
        n, c, oh, ow = g.shape
        dcols = xp.broadcast_to(g[:, :, None, None], (n, c, kh, kw, oh, ow))  # no copy
        gx = crop(fold_add(dcols, padded, stride, (1, 1)), pads, hw)
        return gx[0] if unbatched else gx


def averaging_matrix(size: int, out: int) -> np.ndarray:
    """(out, size): row i averages input cells floor(i·size/out) .. ceil((i+1)·size/out) - 1."""
    a = np.zeros((out, size))
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        a[i, start:end] = 1.0 / (end - start)
    return a


class AdaptiveAvgPool2d(Function):
    """z = A_h @ x @ A_wᵀ (averaging matrices);  dL/dx = A_hᵀ @ g @ A_w"""

    @staticmethod
    def forward(ctx: Context, x: Any, output_size: Pair) -> Any:
        if x.ndim not in (3, 4):
            raise ShapeError(
                f"adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got {list(x.shape)}"
            )
        xp = array_module(x)
        h, w = x.shape[-2:]
        a_h = xp.asarray(averaging_matrix(h, output_size[0]).astype(x.dtype))
        a_w = xp.asarray(averaging_matrix(w, output_size[1]).astype(x.dtype))
        ctx.save_for_backward(a_h, a_w)
        return a_h @ x @ a_w.T

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        a_h, a_w = ctx.saved_tensors
        return a_h.T @ grad @ a_w
