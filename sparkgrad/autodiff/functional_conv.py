"""The convolution part of the functional API: conv2d and 2-D pooling, as ``torch.nn.functional``.

Re-exported by :mod:`sparkgrad.autodiff.functional` (``sparkgrad.nn.functional`` / ``F``).
This module turns PyTorch's flexible arguments (an int or a pair, ``padding="same"``,
``stride=None``) into the plain tuples the ops in :mod:`.ops.conv` and :mod:`.ops.pooling`
take, and raises PyTorch's errors for arguments that cannot work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sparkgrad.autodiff.ops import conv as conv_ops
from sparkgrad.autodiff.ops import pooling as pool_ops
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError, ShapeError

__all__ = ["adaptive_avg_pool2d", "avg_pool2d", "conv2d", "max_pool2d"]

IntPair = int | Sequence[int]


def pair(value: IntPair, name: str) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``(2, 3)`` stays; anything else is an error naming the argument."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        items = tuple(value)
        if len(items) == 1:
            items = items * 2
        if len(items) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items
        ):
            return int(items[0]), int(items[1])
    raise ConfigError(f"{name} must be a single int or a tuple of two ints, but got {value!r}")


def _positive(values: tuple[int, ...], message: str) -> None:
    if any(v <= 0 for v in values):
        raise ConfigError(f"{message}, but got {values}")


def conv_padding(
    padding: str | IntPair,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zero rows/columns for PyTorch's ``padding`` argument.

    ``"same"`` pads ``d·(k-1)`` in total per axis so the output keeps the input's size;
    for an even kernel that total is odd and, as in PyTorch, the extra row and column go
    at the bottom and right: ``left = total // 2``, ``right = total - left``.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ConfigError("padding='same' is not supported for strided convolutions")
            pads: list[int] = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
            return tuple(pads)  # type: ignore[return-value]
        raise ConfigError(
            f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}"
        )
    ph, pw = pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ConfigError(f"negative padding is not supported, but got padding={(ph, pw)}")
    return (ph, ph, pw, pw)


def conv2d(
    input: Tensor,  # noqa: A002 - PyTorch's name
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: str | IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution of (N, C, H, W) or (C, H, W) with a weight (O, C/groups, kH, kW).

    Computed as one matmul of the unfolded patches (see :mod:`sparkgrad.autodiff.ops.conv`).
    ``padding`` is an int, a pair, ``"valid"`` (none) or ``"same"`` (output size = input
    size; stride 1 only).
    """
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    _positive(stride, "non-positive stride is not supported")
    _positive(dilation, "dilation should be greater than zero")
    if not isinstance(groups, (int, np.integer)) or groups <= 0:
        raise ConfigError(f"non-positive groups is not supported, but got groups={groups!r}")
    kernel = tuple(weight.shape[-2:]) if weight.ndim >= 2 else (1, 1)
    pads = conv_padding(padding, kernel, stride, dilation)  # type: ignore[arg-type]
    return conv_ops.Conv2d.apply(
        input, weight, bias, stride=stride, padding=pads, dilation=dilation, groups=int(groups)
    )


def _pool_args(
    kernel_size: IntPair, stride: IntPair | None, padding: IntPair, dilation: IntPair = 1
) -> tuple[tuple[int, int], ...]:
    kernel = pair(kernel_size, "kernel_size")
    # stride=None (or an empty list, as torch also accepts) means stride = kernel_size
    step = kernel if stride is None or (isinstance(stride, Sequence) and not stride) else stride
    strides = pair(step, "stride")
    pads, dils = pair(padding, "padding"), pair(dilation, "dilation")
    _positive(kernel, "kernel size should be greater than zero")
    _positive(strides, "stride should be greater than zero")
    _positive(dils, "dilation should be greater than zero")
    if min(pads) < 0:
        raise ConfigError(f"pad must be non-negative, but got padding={pads}")
    return kernel, strides, pads, dils


def max_pool2d(
    input: Tensor,  # noqa: A002 - PyTorch's name
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """The maximum of each (dilated) window; the gradient flows to the window's first maximum.

    ``stride`` defaults to ``kernel_size``; ``padding`` (at most half the kernel) is
    ``-inf``; ``return_indices=True`` also returns each maximum's flat index into H·W
    (int64), as PyTorch's.
    """
    kernel, strides, pads, dils = _pool_args(kernel_size, stride, padding, dilation)
    sink: list | None = [] if return_indices else None
    out = pool_ops.MaxPool2d.apply(
        input,
        kernel=kernel,
        stride=strides,
        padding=pads,
        dilation=dils,
        ceil_mode=bool(ceil_mode),
        indices=sink,
    )
    return (out, Tensor._wrap(sink[0])) if sink is not None else out


def avg_pool2d(
    input: Tensor,  # noqa: A002 - PyTorch's name
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """The mean of each window (zero padding counted unless ``count_include_pad=False``).

    ``divisor_override`` replaces the window size as the divisor.
    """
    kernel, strides, pads, _ = _pool_args(kernel_size, stride, padding)
    if divisor_override is not None and divisor_override == 0:
        raise ConfigError("divisor must be not zero")
    return pool_ops.AvgPool2d.apply(
        input,
        kernel=kernel,
        stride=strides,
        padding=pads,
        ceil_mode=bool(ceil_mode),
        count_include_pad=bool(count_include_pad),
        divisor_override=divisor_override,
    )


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:  # noqa: A002
    """Average pooling to a fixed output size (an int, or a pair whose ``None`` keeps that size).

    Output cell i averages input rows ``floor(i·H/OH)`` to ``ceil((i+1)·H/OH)``, as PyTorch.
    """
    if input.ndim not in (3, 4):
        raise ShapeError(
            f"adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got {list(input.shape)}"
        )
    if isinstance(output_size, (int, np.integer)) and not isinstance(output_size, bool):
        sizes: tuple = (int(output_size),) * 2
    elif isinstance(output_size, Sequence) and len(output_size) == 2:
        sizes = tuple(output_size)
    else:
        raise ShapeError(f"adaptive_avg_pool2d: output_size must be 2, but got {output_size!r}")
    sizes = tuple(int(n) if s is None else int(s) for s, n in zip(sizes, input.shape[-2:]))
    if min(sizes) < 0:
        raise ConfigError(f"adaptive_avg_pool2d: output_size must be non-negative, got {sizes}")
    return pool_ops.AdaptiveAvgPool2d.apply(input, output_size=sizes)
