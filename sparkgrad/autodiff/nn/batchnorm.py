"""``BatchNorm1d`` and ``BatchNorm2d``: normalise each channel over the batch, as ``torch.nn``.

In training mode a layer normalises with the statistics of the current batch and keeps
exponential running averages of them (``running_mean``, ``running_var``); in evaluation
mode (``model.eval()``) it normalises with those running averages, so one sample's
output no longer depends on the rest of its batch. ``momentum=None`` makes the running
statistics the plain (cumulative) average of every batch seen so far.

The running statistics are *buffers* (state saved in ``state_dict`` but not trained):
``running_mean``, ``running_var`` and ``num_batches_tracked`` (an int64 0-d count), with
PyTorch's names, so a state dict moves between sparkgrad and ``torch.nn.BatchNorm2d``
both ways. The maths and the backward live in :mod:`sparkgrad.autodiff.ops.batchnorm`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff.backend import DEFAULT_DTYPE, get_array_module, normalize_device
from sparkgrad.autodiff.nn import init
from sparkgrad.autodiff.nn.linear import empty_parameter
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ShapeError

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Module):
    """What BatchNorm1d and BatchNorm2d share; they differ only in the input ranks accepted."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = empty_parameter(num_features, device=device, dtype=dtype)
            if bias:
                self.bias = empty_parameter(num_features, device=device, dtype=dtype)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            xp = get_array_module(normalize_device(device))
            dt = dtype or DEFAULT_DTYPE
            self.register_buffer("running_mean", Tensor(xp.zeros(num_features, dtype=dt)))
            self.register_buffer("running_var", Tensor(xp.ones(num_features, dtype=dt)))
            self.register_buffer("num_batches_tracked", Tensor(xp.zeros((), dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """running_mean = 0, running_var = 1, num_batches_tracked = 0 (in place)."""
        if self.track_running_stats:
            self.running_mean.array.fill(0)
            self.running_var.array.fill(1)
            self.num_batches_tracked.array.fill(0)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, x: Tensor) -> None:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if x.shape[1] != self.num_features:
            raise ShapeError(
                f"{self._get_name()}({self.num_features}) expects {self.num_features} "
                f"channels on dim 1, but got input of shape {x.shape}"
            )
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.array += 1  # in place: the buffer stays the same tensor
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.array)
        # batch statistics while training, and in eval when there are no running buffers
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        # the buffers are updated only while training with track_running_stats
        keep = not self.training or self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean if keep else None,
            self.running_var if keep else None,
            self._parameters["weight"],
            self._parameters["bias"],
            use_batch,
            factor,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs: statistics per C over N (and L)."""

    def _check_input_dim(self, x: Tensor) -> None:
        if x.ndim not in (2, 3):
            raise ShapeError(f"expected 2D or 3D input (got {x.ndim}D input)")


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs: statistics per C over N, H and W."""

    def _check_input_dim(self, x: Tensor) -> None:
        if x.ndim != 4:
            raise ShapeError(f"expected 4D input (got {x.ndim}D input)")
