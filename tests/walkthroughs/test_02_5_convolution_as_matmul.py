"""Walkthrough 2.5 — a convolution is one matrix product of unfolded patches (im2col), and its
backward is that product's backward followed by folding the patches back (col2im).

A 2-D convolution slides a small kernel over an image; at every position it multiplies
the kernel with the patch under it and adds up. Written as loops that is six nested
``for`` statements — slow in Python and not what any fast library does. The trick:

1. **Unfold** (im2col): lay every patch out as one column of a matrix ``X``. For a 4x4
   image and a 3x3 kernel there are 2·2 = 4 positions, so ``X`` is (9, 4): column l holds
   the 9 pixels that output position l reads. No pixel is copied to do it — ``X`` is the
   same memory read with other strides (``as_strided``); only handing it to BLAS copies.
2. **Multiply**: with the kernel flattened into a row (``Wmat``, one row per output
   channel) the whole convolution is ``Wmat @ X + b``: one matmul, walkthrough 1.3.
3. **Backward**: walkthrough 1.3 again gives ``dWmat = g @ Xᵀ`` and ``dX = Wmatᵀ @ g``. But ``X``
   was made of *copies* of pixels, and a pixel copied into several columns gets the sum of
   the gradients of its copies (walkthrough 1.2): **col2im** folds the columns back, adding
   every entry onto the pixel it came from. col2im is the adjoint (transpose) of im2col:
   ``<im2col(x), c> = <x, col2im(c)>`` for every x and c.

The independent truths: the six loops written out, PyTorch's ``F.unfold`` / ``F.fold``
(its own im2col and col2im) and ``F.conv2d``.
"""

import numpy as np
import torch
import torch.nn.functional as TF

import sparkgrad as sg
from sparkgrad.autodiff.ops.conv import fold_add, unfold_view


def im2col(x: np.ndarray, k: int, stride: int = 1, dilation: int = 1) -> np.ndarray:
    """The walkthrough's X: (N, C, H, W) -> (N, C·k·k, L), through sparkgrad's strided view."""
    n, c, h, w = x.shape
    oh = (h - dilation * (k - 1) - 1) // stride + 1
    ow = (w - dilation * (k - 1) - 1) // stride + 1
    view = unfold_view(x, (k, k), (stride, stride), (dilation, dilation), (oh, ow))
    return view.reshape(n, c * k * k, oh * ow)


def col2im(cols: np.ndarray, c: int, hw: tuple, k: int, stride: int = 1, dilation: int = 1):
    """The adjoint: (N, C·k·k, L) -> (N, C, H, W), every entry added back onto its pixel."""
    n = cols.shape[0]
    oh = (hw[0] - dilation * (k - 1) - 1) // stride + 1
    ow = (hw[1] - dilation * (k - 1) - 1) // stride + 1
    return fold_add(cols.reshape(n, c, k, k, oh, ow), hw, (stride, stride), (dilation, dilation))


def test_unfold_a_tiny_image_by_hand():
    """A 4x4 image numbered 0..15 and a 3x3 kernel: four patches, one per column of X."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    #   0  1  2  3
    #   4  5  6  7        the top-left patch is 0 1 2 / 4 5 6 / 8 9 10,
    #   8  9 10 11        the one to its right starts at 1, the two below at 4 and 5
    #  12 13 14 15
    by_hand = np.array(
        [
            [0, 1, 4, 5],
            [1, 2, 5, 6],
            [2, 3, 6, 7],
            [4, 5, 8, 9],
            [5, 6, 9, 10],
            [6, 7, 10, 11],
            [8, 9, 12, 13],
            [9, 10, 13, 14],
            [10, 11, 14, 15],
        ],
        dtype=float,
    )  # row k = kernel offset (i, j) = divmod(k, 3); column l = output position (p, q)
    np.testing.assert_array_equal(im2col(x, 3)[0], by_hand)
    np.testing.assert_array_equal(TF.unfold(torch.tensor(x), 3)[0].numpy(), by_hand)  # torch


def test_the_unfolded_patches_are_a_view_with_new_strides():
    """No pixel is copied: the (C, kh, kw, OH, OW) view reads the image's own memory.

    Stepping the kernel offset i moves one row down (4 floats of 8 bytes = 32 bytes), and
    so does stepping the output row p (stride 1): both strides are 32 bytes.
    """
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    view = unfold_view(x, (3, 3), (1, 1), (1, 1), (2, 2))
    assert view.shape == (1, 1, 3, 3, 2, 2)
    assert np.shares_memory(view, x)
    assert view.strides[2:] == (32, 8, 32, 8)
    assert view[0, 0, 1, 1, 0, 0] == view[0, 0, 0, 0, 1, 1] == 5  # pixel 5, seen twice


def test_convolution_is_one_matmul():
    """Wmat @ X + b, reshaped to (O, OH, OW), equals the six loops and torch's conv2d."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 5, 6))
    w, b = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    out_h, out_w = 3, 4

    loops = np.zeros((1, 3, out_h, out_w))
    for o in range(3):
        for p in range(out_h):
            for q in range(out_w):
                for c in range(2):
                    for i in range(3):
                        for j in range(3):
                            loops[0, o, p, q] += w[o, c, i, j] * x[0, c, p + i, q + j]
    loops += b.reshape(1, 3, 1, 1)  # one bias per output channel

    matmul = (w.reshape(3, -1) @ im2col(x, 3)[0] + b[:, None]).reshape(1, 3, out_h, out_w)
    np.testing.assert_allclose(matmul, loops, rtol=1e-12)
    conv = sg.nn.functional.conv2d(*(sg.tensor(a, dtype=sg.float64) for a in (x, w, b)))
    np.testing.assert_allclose(conv.numpy(), loops, rtol=1e-12)
    t_conv = TF.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b))
    np.testing.assert_allclose(t_conv.numpy(), loops, rtol=1e-12)


def test_stride_dilation_and_padding_only_change_the_strides():
    """The same view with steps of ``stride`` between patches and ``dilation`` inside one;
    padding is zeros around the image first. PyTorch's unfold agrees in every case."""
    x = np.random.default_rng(1).standard_normal((2, 3, 9, 8))
    for stride, dilation, pad in ((2, 1, 0), (1, 2, 0), (3, 2, 1)):
        padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        expected = TF.unfold(torch.tensor(x), 3, dilation=dilation, padding=pad, stride=stride)
        np.testing.assert_array_equal(im2col(padded, 3, stride, dilation), expected.numpy())


def test_col2im_is_the_adjoint_of_im2col():
    """<im2col(x), c> = <x, col2im(c)> for random x and c: folding is unfolding transposed.

    And col2im equals PyTorch's own ``F.fold``.
    """
    rng = np.random.default_rng(2)
    for stride, dilation in ((1, 1), (2, 1), (1, 2)):
        x = rng.standard_normal((2, 3, 7, 8))
        cols = im2col(x, 3, stride, dilation)
        c = rng.standard_normal(cols.shape)
        folded = col2im(c, 3, (7, 8), 3, stride, dilation)
        np.testing.assert_allclose(np.sum(cols * c), np.sum(x * folded), rtol=1e-12)
        t_fold = TF.fold(torch.tensor(c), (7, 8), 3, dilation=dilation, stride=stride)
        np.testing.assert_allclose(folded, t_fold.numpy(), rtol=1e-12)


def test_col2im_of_ones_counts_how_often_each_pixel_is_used():
    """Folding all-ones columns gives each pixel's number of copies: 1 in the corners of a
    4x4 image under a 3x3 kernel, 4 in the middle — the weights a pixel's gradient sums."""
    counts = col2im(np.ones((1, 9, 4)), 1, (4, 4), 3)[0, 0]
    np.testing.assert_array_equal(counts, [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


def test_backward_is_the_matmul_backward_then_col2im():
    """dW = g @ Xᵀ, db = Σ g, dx = col2im(Wmatᵀ @ g): sparkgrad's backward and torch's."""
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 2, 6, 5)), rng.standard_normal((4, 2, 3, 3)), np.zeros(4)
    g = rng.standard_normal((2, 4, 4, 3))
    cols, g_mat, w_mat = im2col(x, 3), g.reshape(2, 4, 12), w.reshape(4, 18)

    d_w = sum(g_mat[n] @ cols[n].T for n in range(2)).reshape(w.shape)
    d_b = g.sum(axis=(0, 2, 3))
    d_x = col2im(np.stack([w_mat.T @ g_mat[n] for n in range(2)]), 2, (6, 5), 3)

    tx, tw, tb = (sg.tensor(a, dtype=sg.float64, requires_grad=True) for a in (x, w, b))
    sg.nn.functional.conv2d(tx, tw, tb).backward(sg.tensor(g, dtype=sg.float64))
    rx, rw, rb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    TF.conv2d(rx, rw, rb).backward(torch.tensor(g))
    for ours, theirs, formula in ((tx, rx, d_x), (tw, rw, d_w), (tb, rb, d_b)):
        np.testing.assert_allclose(ours.grad.numpy(), formula, rtol=1e-12)
        np.testing.assert_allclose(theirs.grad.numpy(), formula, rtol=1e-12)


def test_groups_are_independent_convolutions_side_by_side():
    """groups=2 = the first half of the channels convolved with the first half of the
    filters, next to the second half with the second: a block-diagonal Wmat."""
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((1, 4, 5, 5)), rng.standard_normal((6, 2, 3, 3))
    f = sg.nn.functional.conv2d
    grouped = f(sg.tensor(x), sg.tensor(w), groups=2).numpy()
    halves = [f(sg.tensor(x[:, :2]), sg.tensor(w[:3])), f(sg.tensor(x[:, 2:]), sg.tensor(w[3:]))]
    np.testing.assert_allclose(grouped, np.concatenate([h.numpy() for h in halves], axis=1))
