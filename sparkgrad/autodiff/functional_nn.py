"""The neural-network part of the functional API: linear, softmax, losses, dropout, norms.

Re-exported by :mod:`sparkgrad.autodiff.functional` (``sparkgrad.nn.functional`` / ``F``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from sparkgrad.autodiff.ops import arithmetic as ar
from sparkgrad.autodiff.ops import batchnorm as bn_ops
from sparkgrad.autodiff.ops import neural as nn_ops
from sparkgrad.autodiff.spelling import pick
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError, ShapeError

__all__ = [
    "batch_norm",
    "cross_entropy",
    "dropout",
    "dropout2d",
    "embedding",
    "layer_norm",
    "linear",
    "log_softmax",
    "mse_loss",
    "nll_loss",
    "softmax",
]


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` as one fused op (weight of shape ``(out, in)``)."""
    return nn_ops.Linear.apply(x, weight, bias)


def softmax(x: Tensor, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    return nn_ops.Softmax.apply(x, axis=pick(axis, dim, -1))


def log_softmax(x: Tensor, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    return nn_ops.LogSoftmax.apply(x, axis=pick(axis, dim, -1))


def cross_entropy(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Tensor,
    reduction: str = "mean",
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy of logits against integer class targets, fused with log_softmax."""
    return nn_ops.CrossEntropy.apply(
        input,
        _raw(target),
        reduction=reduction,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )


def nll_loss(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Tensor,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> Tensor:
    return nn_ops.NLLLoss.apply(input, _raw(target), reduction=reduction, ignore_index=ignore_index)


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:  # noqa: A002
    return nn_ops.MSELoss.apply(input, target, reduction=reduction)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p); identity in eval."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, found {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return ar.Mul.apply(x, 0.0)
    return nn_ops.Dropout.apply(x, p=p)


def dropout2d(
    input: Tensor,  # noqa: A002 - PyTorch's name
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
) -> Tensor:
    """Zero whole channels with probability ``p`` and scale the rest by 1/(1-p); eval: identity.

    One coin per (sample, channel) of an (N, C, H, W) input: neighbouring pixels of a
    feature map are strongly correlated, so dropping single pixels regularises little.
    As PyTorch (with its warnings), a 3-D input is read as (N, C, L) and other ranks drop
    single elements. ``inplace`` is accepted for PyTorch's signature; the result is a new
    tensor either way.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if input.ndim not in (3, 4):
        if input.ndim < 2:
            raise ShapeError(f"dropout2d needs at least 2 dimensions, found shape {input.shape}")
        warnings.warn(
            f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated "
            "(PyTorch); use dropout instead. dropout2d exists to provide channel-wise dropout "
            "on 3D or 4D inputs.",
            stacklevel=2,
        )
    if input.ndim == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D "
            "dropout behavior is desired - input is interpreted as shape (N, C, L), as "
            "PyTorch does; use dropout1d semantics knowingly.",
            stacklevel=2,
        )
    if not training or p == 0:
        return input
    if p == 1:
        return ar.Mul.apply(input, 0.0)
    mask_shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2)
    return nn_ops.Dropout.apply(input, p=p, mask_shape=mask_shape)


def batch_norm(
    input: Tensor,  # noqa: A002 - PyTorch's name
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel (dim 1) of (N, C, *) over the batch and spatial positions.

    ``training=True``: the batch's mean and biased variance, and ``running_mean`` /
    ``running_var`` (if given) updated in place with ``momentum`` (unbiased variance);
    ``training=False``: the running statistics. See :mod:`sparkgrad.autodiff.ops.batchnorm`.
    """
    if input.ndim < 2:
        raise ShapeError(f"batch_norm expects an input (N, C, *), found shape {input.shape}")
    channels = input.shape[1]
    if training and input.array.size // max(channels, 1) == 1:
        raise ShapeError(
            f"Expected more than 1 value per channel when training, got input size {input.shape}"
        )
    if training and eps <= 0:
        raise ConfigError(f"batch_norm eps must be positive during training, but got {eps}")
    if not training and (running_mean is None or running_var is None):
        raise ConfigError("running_mean and running_var must be defined in evaluation mode")
    for name, t in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if t is not None and t.shape != (channels,):
            raise ShapeError(
                f"{name} should contain {channels} elements not {t.array.size} "
                f"(input of shape {input.shape}, channels on dim 1)"
            )
    if (running_mean is None) != (running_var is None):
        raise ConfigError("running_mean and running_var must both be given or both be None")
    return bn_ops.BatchNorm.apply(
        input,
        weight,
        bias,
        running_mean,
        running_var,
        training=bool(training),
        momentum=float(momentum),
        eps=float(eps),
    )


def layer_norm(
    x: Tensor,
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.shape[-len(shape) :] != shape:
        raise ShapeError(f"layer_norm over {shape} needs an input ending in it, found {x.shape}")
    return nn_ops.LayerNorm.apply(x, weight, bias, n_dims=len(shape), eps=eps)


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:  # noqa: A002
    return nn_ops.Embedding.apply(weight, _raw(input), padding_idx=padding_idx)


def _raw(x: Any) -> Any:
    return x.array if isinstance(x, Tensor) else np.asarray(x)
