"""``Conv2d``: a 2-D convolution layer, as ``torch.nn.Conv2d``.

The weight has PyTorch's layout ``(out_channels, in_channels / groups, kH, kW)`` and the
bias ``(out_channels,)``, so state dicts move between sparkgrad and PyTorch unchanged.
The forward is :func:`sparkgrad.nn.functional.conv2d`: the input's patches unfolded
(im2col) and multiplied by the weight in one matmul (:mod:`sparkgrad.autodiff.ops.conv`).

Default initialisation is PyTorch's, from sparkgrad's seeded generator:
``kaiming_uniform_(weight, a=sqrt(5))`` (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
``fan_in = in_channels / groups · kH · kW``), then the bias from the same interval.

``padding_mode`` other than ``"zeros"`` (``"reflect"``, ``"replicate"``, ``"circular"``)
pads by gathering edge pixels (a differentiable indexing op) and then convolves without
padding, exactly what PyTorch does with ``F.pad``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff.backend import to_device
from sparkgrad.autodiff.functional_conv import conv_padding, pair
from sparkgrad.autodiff.nn import init
from sparkgrad.autodiff.nn.linear import empty_parameter
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError, ShapeError

__all__ = ["Conv2d"]

_PADDING_MODES = {"zeros": None, "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pad_index(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """Which input row each padded row reads: e.g. reflect of 4 rows by 2 -> 2 1 0 1 2 3 ..."""
    if mode == "reflect" and max(before, after) >= size:
        raise ShapeError(
            "Padding size should be less than the corresponding input dimension, but got: "
            f"padding ({before}, {after}) for a dimension of size {size}"
        )
    if mode == "circular" and max(before, after) > size:
        raise ShapeError(
            f"Padding value causes wrapping around more than once: padding ({before}, {after}) "
            f"for a dimension of size {size}"
        )
    return np.pad(np.arange(size), (before, after), mode=_PADDING_MODES[mode])


def pad_by_mode(x: Tensor, pads: tuple[int, int, int, int], mode: str) -> Tensor:
    """Pad the last two dims by (top, bottom, left, right) as ``F.pad(..., mode=mode)``."""
    top, bottom, left, right = pads
    rows = _pad_index(x.shape[-2], top, bottom, mode)[:, None]
    cols = _pad_index(x.shape[-1], left, right, mode)[None, :]
    return F.getitem(x, (Ellipsis, to_device(rows, x.device), to_device(cols, x.device)))


class Conv2d(Module):
    """2-D convolution over (N, C_in, H, W) or (C_in, H, W) inputs."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: str | int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if not isinstance(groups, int) or groups <= 0:
            raise ConfigError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ConfigError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ConfigError("out_channels must be divisible by groups")
        if padding_mode not in _PADDING_MODES:
            raise ConfigError(
                "padding_mode must be one of {'zeros', 'reflect', 'replicate', 'circular'}, "
                f"but got padding_mode={padding_mode!r}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.dilation = pair(dilation, "dilation")
        # checks "same"/"valid" and strides now, as PyTorch's constructor does
        pads = conv_padding(padding, self.kernel_size, self.stride, self.dilation)
        self.padding = padding if isinstance(padding, str) else pair(padding, "padding")
        self._pads = pads  # (top, bottom, left, right)
        self.transposed = False
        self.output_padding = (0, 0)
        self.groups = groups
        self.padding_mode = padding_mode
        self.weight = empty_parameter(
            out_channels, in_channels // groups, *self.kernel_size, device=device, dtype=dtype
        )
        if bias:
            self.bias = empty_parameter(out_channels, device=device, dtype=dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        weight, bias = self._parameters["weight"], self._parameters["bias"]
        if self.padding_mode == "zeros":
            return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        x = pad_by_mode(x, self._pads, self.padding_mode)
        return F.conv2d(x, weight, bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0,) * len(self.kernel_size):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * len(self.output_padding):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s
