"""Convolution as one matrix product: im2col, col2im and the ``Conv2d`` op.

A 2-D convolution (PyTorch's: strictly a cross-correlation, the kernel is not flipped)
slides a kernel ``W`` of shape (O, C, kh, kw) over a zero-padded image ``xpad`` of shape
(N, C, Hp, Wp), stride (sh, sw) and dilation (dh, dw)::

    y[n, o, p, q] = b[o] + Σ_c Σ_i Σ_j  W[o, c, i, j] · xpad[n, c, p·sh + i·dh, q·sw + j·dw]

    OH = (Hp - dh·(kh - 1) - 1) // sh + 1        (OW alike)

**1. Unfolding (im2col).** Gather the kh·kw·C values that one output position reads::

    cols[n, c, i, j, p, q] = xpad[n, c, p·sh + i·dh, q·sw + j·dw]

This costs nothing: it is the same memory read with other strides. In ``xpad`` one step
down a row is ``sH`` bytes; in ``cols`` a step of ``i`` is ``dh·sH`` bytes and a step of
``p`` is ``sh·sH`` bytes. ``as_strided`` builds that view (:func:`unfold_view`): a
pixel used by nine output positions of a 3x3 kernel is still stored once.

**2. Convolution = one matmul.** Flatten (c, i, j) into one index k (K = C·kh·kw) and
(p, q) into l (L = OH·OW). The triple sum becomes a plain matrix product, per image::

    Y[n] = Wmat @ X[n] + b        Wmat = W.reshape(O, K)    X[n] = cols[n].reshape(K, L)

    (O, L) = (O, K) @ (K, L)

Reshaping the strided view to (K, L) is where the values are finally copied (kh·kw
times the input), because BLAS needs a plain matrix; that copy is the price of turning
every convolution into one fast GEMM. With ``groups = G`` the channels split into G
independent convolutions (a block-diagonal ``Wmat``): ``W.reshape(G, O/G, K/G)`` times
``X`` as (N, G, K/G, L), one batched matmul. The result (N, G, O/G, L) *is* already
(N, O, OH, OW) in memory: no transpose after the product.

**3. Backward.** ``Y = Wmat @ X + b`` is walkthrough 1.3's matmul, so with g = dL/dY as (O, L)::

    dL/dWmat = Σ_n g[n] @ X[n]ᵀ           (O, K)  -> reshaped to W's (O, C/G, kh, kw)
    dL/db    = Σ_{n, p, q} g[n, o, p, q]   (O,)
    dL/dX[n] = Wmatᵀ @ g[n]                (K, L)  the gradient of every column entry

Each column entry was a *copy* of one input pixel, and a pixel used several times gets
the sum of the gradients of its copies (walkthrough 1.2). **col2im** (:func:`fold_add`) does
that sum: for every kernel offset (i, j) the slab ``dX[:, :, i, j]`` (N, C, OH, OW) is
added onto ``dxpad[:, :, i·dh :: sh, j·dw :: sw]``, kh·kw strided additions in all.
Cropping the padding gives ``dL/dx = dxpad[:, :, pt:pt+H, pl:pl+W]``.

col2im is the *adjoint* (transpose) of im2col: ``<im2col(x), c> = <x, col2im(c)>`` for
every x and c, the statement "the backward of a linear map is its transpose"
(``tests/walkthroughs/test_02_5_convolution_as_matmul.py`` checks it).

Memory: the op keeps the copied columns for dL/dW (kh·kw times the input), not the input;
a convolution whose weight needs no gradient keeps only the weight.

CuPy: ``cupy.lib.stride_tricks.as_strided`` (without numpy's ``writeable`` flag),
``cupy.pad``, batched ``matmul`` and strided slice ``+=`` behave as in NumPy, so the same
code runs on the GPU; nothing else is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.errors import ShapeError

Pair = tuple[int, int]
Pads = tuple[int, int, int, int]  # (top, bottom, left, right)


def pad2d(x: Any, pads: Pads, value: float = 0.0) -> Any:
    """``x`` (N, C, H, W) with ``pads = (top, bottom, left, right)`` rows/columns of ``value``."""
    if not any(pads):
        return x
    xp = array_module(x)
    top, bottom, left, right = pads
    return xp.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def unfold_view(xpad: Any, kernel: Pair, stride: Pair, dilation: Pair, out: Pair) -> Any:
    """im2col as a view: ``cols[n, c, i, j, p, q] = xpad[n, c, p·sh + i·dh, q·sw + j·dw]``.

    (N, C, Hp, Wp) -> (N, C, kh, kw, OH, OW), no copy: only the strides are new. Read-only,
    since one pixel appears in several places.
    """
    xp = array_module(xpad)
    n, c = xpad.shape[:2]
    s_n, s_c, s_h, s_w = xpad.strides
    shape = (n, c, kernel[0], kernel[1], out[0], out[1])
    strides = (
        s_n,
        s_c,
        dilation[0] * s_h,
        dilation[1] * s_w,
        stride[0] * s_h,
        stride[1] * s_w,
    )
    if xp is np:
        return np.lib.stride_tricks.as_strided(xpad, shape, strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(xpad, shape, strides)  # CuPy: no writeable flag


def window_slices(i: int, j: int, out: Pair, stride: Pair, dilation: Pair) -> tuple[slice, slice]:
    """Where kernel offset (i, j) reads in the padded image, for every output position at once.

    ``xpad[:, :, rows, cols]`` is ``cols[:, :, i, j]`` of the unfolded view: rows
    ``i·dh, i·dh + sh, ..., i·dh + sh·(OH-1)`` (columns alike).
    """
    rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (out[0] - 1) + 1, stride[0])
    cols = slice(j * dilation[1], j * dilation[1] + stride[1] * (out[1] - 1) + 1, stride[1])
    return rows, cols


def fold_add(cols: Any, padded_hw: Pair, stride: Pair, dilation: Pair) -> Any:
    """col2im, the adjoint of :func:`unfold_view`: add every column entry back to its pixel.

    (N, C, kh, kw, OH, OW) -> (N, C, Hp, Wp). Entries that came from the same pixel are
    summed; pixels no window read get 0. One strided addition per kernel offset.
    """
    xp = array_module(cols)
    n, c, kh, kw, oh, ow = cols.shape
    out = xp.zeros((n, c) + tuple(padded_hw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = window_slices(i, j, (oh, ow), stride, dilation)
            out[:, :, rows, columns] += cols[:, :, i, j]
    return out


def out_size(padded: int, kernel: int, stride: int, dilation: int) -> int:
    """Positions a dilated kernel fits into ``padded`` values at steps of ``stride``."""
    return (padded - dilation * (kernel - 1) - 1) // stride + 1


def crop(xpad: Any, pads: Pads, hw: Pair) -> Any:
    """Undo :func:`pad2d`: the (H, W) interior of a padded (N, C, Hp, Wp) array."""
    top, _, left, _ = pads
    return xpad[:, :, top : top + hw[0], left : left + hw[1]]


def _check(x: Any, weight: Any, bias: Any, groups: int) -> None:
    """PyTorch's shape checks, with its messages."""
    if x.ndim not in (3, 4):
        raise ShapeError(
            "Expected 3D (unbatched) or 4D (batched) input to conv2d, "
            f"but got input of size: {list(x.shape)}"
        )
    if weight.ndim != 4:
        raise ShapeError(
            "conv2d expects a 4-D weight (out_channels, in_channels/groups, kH, kW), "
            f"but got weight of size {list(weight.shape)}"
        )
    if weight.shape[0] % groups:
        raise ShapeError(
            f"Given groups={groups}, expected weight to be divisible by {groups} at dimension "
            f"0, but got weight of size {list(weight.shape)} instead"
        )
    channels = x.shape[-3]
    if channels != weight.shape[1] * groups:
        batched = list(x.shape) if x.ndim == 4 else [1, *x.shape]
        raise ShapeError(
            f"Given groups={groups}, weight of size {list(weight.shape)}, expected "
            f"input{batched} to have {weight.shape[1] * groups} channels, "
            f"but got {channels} channels instead"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ShapeError(
            f"Given weight of size {list(weight.shape)}, expected bias to be 1-dimensional "
            f"with {weight.shape[0]} elements, but got bias of size {list(bias.shape)} instead"
        )


class Conv2d(Function):
    """y = Wmat @ im2col(x) + b;  dL/dW = Σ_n g·colsᵀ, dL/db = Σ g, dL/dx = col2im(Wmatᵀ @ g)"""

    @staticmethod
    def forward(
        ctx: Context,
        x: Any,
        weight: Any,
        bias: Any = None,
        stride: Pair = (1, 1),
        padding: Pads = (0, 0, 0, 0),
        dilation: Pair = (1, 1),
        groups: int = 1,
    ) -> Any:
        _check(x, weight, bias, groups)
        unbatched = x.ndim == 3
        if unbatched:
            x = x[None]
        n, c, h, w = x.shape
        o, c_g, kh, kw = weight.shape
        top, bottom, left, right = padding
        hp, wp = h + top + bottom, w + left + right
        if hp < dilation[0] * (kh - 1) + 1 or wp < dilation[1] * (kw - 1) + 1:
            raise ShapeError(
                f"Calculated padded input size per channel: ({hp} x {wp}). Kernel size: "
                f"({dilation[0] * (kh - 1) + 1} x {dilation[1] * (kw - 1) + 1}). "
                "Kernel size can't be greater than actual input size"
            )
        oh, ow = out_size(hp, kh, stride[0], dilation[0]), out_size(wp, kw, stride[1], dilation[1])
        k = c_g * kh * kw
        # im2col: a strided view, then the one copy BLAS needs: (N, G, K/G, L)
        view = unfold_view(pad2d(x, padding), (kh, kw), stride, dilation, (oh, ow))
        cols = view.reshape(n, groups, k, oh * ow)
        wmat = weight.reshape(groups, o // groups, k)
        out = (wmat @ cols).reshape(n, o, oh, ow)  # (N, G, O/G, L) is (N, O, OH, OW)
        if bias is not None:
            out += bias.reshape(o, 1, 1)  # out is fresh: add in place
        need_x, need_w = (ctx.needs_input_grad + (False, False))[:2]
        if need_x or need_w:
            ctx.save_for_backward(cols if need_w else None, wmat if need_x else None)
        ctx.meta = (unbatched, (h, w), weight.shape, stride, padding, dilation, groups)
        return out[0] if unbatched else out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        cols, wmat = ctx.saved_tensors or (None, None)
        unbatched, (h, w), w_shape, stride, padding, dilation, groups = ctx.meta
        need_x, need_w, need_b = (ctx.needs_input_grad + (False,) * 3)[:3]
        g = grad[None] if unbatched else grad
        n, o, oh, ow = g.shape
        _, c_g, kh, kw = w_shape
        g4 = g.reshape(n, groups, o // groups, oh * ow)
        gw = gb = gx = None
        if need_w:  # Σ_n g[n] @ X[n]ᵀ, one batched matmul, then the sum over images
            gw = (g4 @ cols.swapaxes(-1, -2)).sum(axis=0).reshape(w_shape)
        if need_b:
            gb = g.sum(axis=(0, 2, 3))
        if need_x:  # Wmatᵀ @ g: the gradient of every column entry, then col2im
            dcols = (wmat.swapaxes(-1, -2) @ g4).reshape(n, groups * c_g, kh, kw, oh, ow)
            top, bottom, left, right = padding
            padded = (h + top + bottom, w + left + right)
            gx = crop(fold_add(dcols, padded, stride, dilation), padding, (h, w))
            if unbatched:
                gx = gx[0]
        return gx, gw, gb
