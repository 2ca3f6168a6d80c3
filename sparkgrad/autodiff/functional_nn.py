"""The neural-network part of the functional API: linear, softmax, losses, dropout, norms.

Losses keep PyTorch's signatures, argument order included (``weight`` comes before the
deprecated ``size_average``, which sparkgrad refuses, and ``reduction``), so positional
calls port unchanged; ``reduction`` is ``'mean'`` (default), ``'sum'`` or ``'none'``.

Re-exported by :mod:`sparkgrad.autodiff.functional` (``sparkgrad.nn.functional`` / ``F``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from sparkgrad.autodiff.grad_mode import is_grad_enabled
from sparkgrad.autodiff.ops import activation as act
from sparkgrad.autodiff.ops import arithmetic as ar
from sparkgrad.autodiff.ops import losses as loss_ops
from sparkgrad.autodiff.ops import neural as nn_ops
from sparkgrad.autodiff.ops.promotion import promote
from sparkgrad.autodiff.spelling import pick
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError, GradError, ShapeError

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "dropout",
    "elu",
    "embedding",
    "hardtanh",
    "huber_loss",
    "l1_loss",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "mse_loss",
    "nll_loss",
    "silu",
    "smooth_l1_loss",
    "softmax",
    "softplus",
]


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` as one fused op (weight of shape ``(out, in)``)."""
    return nn_ops.Linear.apply(x, weight, bias)


def softmax(x: Tensor, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    return nn_ops.Softmax.apply(x, axis=pick(axis, dim, -1))


def log_softmax(x: Tensor, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    return nn_ops.LogSoftmax.apply(x, axis=pick(axis, dim, -1))


# ---- activations (relu, gelu, sigmoid, tanh are in functional.py) ------------------------
def _activation(op: type, x: Tensor, inplace: bool, name: str, **kwargs: Any) -> Tensor:
    """Apply ``op``; with ``inplace=True`` write the result into ``x`` and return ``x``.

    In-place needs no graph: it is refused while ``x`` takes part in autograd (sparkgrad
    cannot yet record an in-place op), instead of silently returning a new tensor.
    """
    if x.dtype.kind not in "f":
        raise NotImplementedError(f"{name} is not implemented for {x.dtype} tensors (as torch)")
    out = op.apply(x, **kwargs)
    if not inplace:
        return out
    if is_grad_enabled() and (x.requires_grad or out.requires_grad):
        raise GradError(
            f"{name}(inplace=True) on a tensor that takes part in autograd is not supported; "
            f"use y = F.{name}(x) (the nn modules do that for you)"
        )
    x.array[...] = out.array
    return x


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:  # noqa: A002
    """``log(1 + exp(beta·x)) / beta``, the identity where ``beta·x > threshold``."""
    return _activation(act.Softplus, input, False, "softplus", beta=beta, threshold=threshold)


def silu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x · sigmoid(x)`` (swish)."""
    return _activation(act.SiLU, input, inplace, "silu")


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x`` where positive, ``negative_slope · x`` elsewhere."""
    return _activation(act.LeakyReLU, input, inplace, "leaky_relu", negative_slope=negative_slope)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x`` where positive, ``alpha · (exp(x) - 1)`` elsewhere."""
    return _activation(act.ELU, input, inplace, "elu", alpha=alpha)


def hardtanh(
    input: Tensor,  # noqa: A002
    min_val: float = -1.0,
    max_val: float = 1.0,
    inplace: bool = False,
) -> Tensor:
    """``x`` clamped to ``[min_val, max_val]``; gradient 0 at and beyond the bounds."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    if input.dtype.kind in "iu":  # torch accepts integers here (no gradient to take)
        return Tensor._wrap(input.array.clip(min_val, max_val).astype(input.dtype))
    return _activation(act.Hardtanh, input, inplace, "hardtanh", min_val=min_val, max_val=max_val)


def cross_entropy(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Tensor,
    weight: Tensor | None = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,  # noqa: A002 - PyTorch's name
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy of logits ``(N, C)`` (or ``(N, C, d1, ...)``, or ``(C,)``) against
    integer class targets, fused with log_softmax.

    ``weight`` (one per class) scales each target's term; the weighted mean divides by
    the sum of the counted targets' weights, as PyTorch's. Targets equal to
    ``ignore_index`` count nowhere; ``label_smoothing`` ε mixes the one-hot target with
    the uniform distribution.
    """
    reduction = _reduction(size_average, reduce, reduction)
    return nn_ops.CrossEntropy.apply(
        input,
        _raw(target),
        _class_weight(weight, input, "cross_entropy"),
        reduction=reduction,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )


def nll_loss(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Tensor,
    weight: Tensor | None = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,  # noqa: A002 - PyTorch's name
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of log-probabilities, with optional class ``weight``."""
    reduction = _reduction(size_average, reduce, reduction)
    return nn_ops.NLLLoss.apply(
        input,
        _raw(target),
        _class_weight(weight, input, "nll_loss"),
        reduction=reduction,
        ignore_index=ignore_index,
    )


def mse_loss(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Tensor,
    size_average: Any = None,
    reduce: Any = None,  # noqa: A002 - PyTorch's name
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Squared error ``(input - target)²``; a weighted mean divides by ``weight.sum()``."""
    reduction = _reduction(size_average, reduce, reduction)
    target = _regression_target(input, target)
    if weight is None:
        return loss_ops.MSELoss.apply(input, target, reduction=reduction)
    loss = loss_ops.MSELoss.apply(input, target, reduction="none")
    return _weighted(loss, weight, input, reduction, mean_over_weights=True)


def l1_loss(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Tensor,
    size_average: Any = None,
    reduce: Any = None,  # noqa: A002 - PyTorch's name
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Absolute error ``|input - target|``; a weighted mean divides by ``weight.sum()``."""
    reduction = _reduction(size_average, reduce, reduction)
    target = _regression_target(input, target)
    if weight is None:
        return loss_ops.L1Loss.apply(input, target, reduction=reduction)
    loss = loss_ops.L1Loss.apply(input, target, reduction="none")
    return _weighted(loss, weight, input, reduction, mean_over_weights=True)


def smooth_l1_loss(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Tensor,
    size_average: Any = None,
    reduce: Any = None,  # noqa: A002 - PyTorch's name
    reduction: str = "mean",
    beta: float = 1.0,
) -> Tensor:
    """``z²/(2β)`` for ``|z| < β``, ``|z| - β/2`` beyond (z = input - target).

    ``beta = 0`` is the L1 loss (PyTorch sends it to ``l1_loss`` too, whose gradient at
    z = 0 is 0); a negative ``beta`` is an error.
    """
    reduction = _reduction(size_average, reduce, reduction)
    if beta < 0:
        raise RuntimeError(
            f"smooth_l1_loss does not support negative values for beta, found {beta}"
        )
    target = _regression_target(input, target)
    if beta == 0:
        return loss_ops.L1Loss.apply(input, target, reduction=reduction)
    return loss_ops.SmoothL1Loss.apply(input, target, reduction=reduction, beta=float(beta))


def huber_loss(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Tensor,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: Tensor | None = None,
) -> Tensor:
    """``z²/2`` for ``|z| < δ``, ``δ(|z| - δ/2)`` beyond: δ times ``smooth_l1_loss(β=δ)``.

    With ``weight``, the mean is ``(weight * loss).mean()`` (not divided by the weights'
    sum, unlike ``l1_loss``/``mse_loss``: PyTorch's choice, kept).
    """
    loss_ops.check_reduction(reduction)
    if not delta > 0:
        raise RuntimeError(
            f"huber_loss does not support non-positive values for delta, found {delta}"
        )
    target = _regression_target(input, target)
    if weight is None:
        return loss_ops.HuberLoss.apply(input, target, reduction=reduction, delta=float(delta))
    loss = loss_ops.HuberLoss.apply(input, target, reduction="none", delta=float(delta))
    return _weighted(loss, weight, input, reduction, mean_over_weights=False)


def binary_cross_entropy(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Tensor,
    weight: Tensor | None = None,
    size_average: Any = None,
    reduce: Any = None,  # noqa: A002 - PyTorch's name
    reduction: str = "mean",
) -> Tensor:
    """``-w·[y·log p + (1-y)·log(1-p)]`` of probabilities ``p`` in [0, 1] (after a sigmoid).

    Each log is clamped to >= -100, as in PyTorch, so p = 0 or 1 gives a finite loss.
    Inputs or targets outside [0, 1] (or NaN) raise a RuntimeError. ``weight`` broadcasts
    to the input's shape. Prefer :func:`binary_cross_entropy_with_logits` on raw scores:
    it is stable where ``sigmoid`` rounds to 0 or 1.
    """
    reduction = _reduction(size_average, reduce, reduction)
    target = _like(target, input)
    w = _plain_weight(weight, input, "binary_cross_entropy", "weight")
    return loss_ops.BinaryCrossEntropy.apply(input, target, w, reduction=reduction)


def binary_cross_entropy_with_logits(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Tensor,
    weight: Tensor | None = None,
    size_average: Any = None,
    reduce: Any = None,  # noqa: A002 - PyTorch's name
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """Binary cross-entropy of logits ``x``: ``sigmoid`` and the loss in one stable op.

    Computed in the numerically stable form ``(1-y)·x - (1 + (pw-1)·y)·log σ(x)`` with
    ``log σ(x) = min(x, 0) - log(1 + e^(-|x|))``: no exponential of a positive number,
    so logits of ±100 and beyond give exact, finite losses and gradients. ``weight``
    scales each element; ``pos_weight`` (pw, e.g. one per class, broadcast along the last
    dimension) scales the positive term.
    """
    reduction = _reduction(size_average, reduce, reduction)
    target = _like(target, input)
    name = "binary_cross_entropy_with_logits"
    w = _plain_weight(weight, input, name, "weight")
    pw = _plain_weight(pos_weight, input, name, "pos_weight")
    return loss_ops.BinaryCrossEntropyWithLogits.apply(input, target, w, pw, reduction=reduction)


def _reduction(size_average: Any, reduce: Any, reduction: str) -> str:
    """The deprecated ``size_average``/``reduce`` are refused; ``reduction`` is checked."""
    if size_average is not None or reduce is not None:
        raise ConfigError(
            "size_average and reduce are deprecated; use reduction='mean'|'sum'|'none'"
        )
    loss_ops.check_reduction(reduction)
    return reduction


def _like(target: Any, input: Tensor) -> Any:  # noqa: A002
    """A target as a Tensor that computes in the input's dtype (PyTorch's promotion)."""
    if not isinstance(target, Tensor):
        target = Tensor(target, dtype=input.dtype, device=input.device)
    _, target = promote(input, target)
    return target


def _regression_target(input: Tensor, target: Any) -> Any:  # noqa: A002
    """PyTorch's rule: a target of another shape is broadcast, with a warning (one that
    cannot broadcast is left to the op, whose ShapeError names both shapes)."""
    target = _like(target, input)
    if tuple(target.shape) != tuple(input.shape):
        try:
            np.broadcast_shapes(target.shape, input.shape)
        except ValueError:
            return target
        warnings.warn(
            f"Using a target size ({tuple(target.shape)}) that is different to the input size "
            f"({tuple(input.shape)}). This will likely lead to incorrect results due to "
            "broadcasting. Please ensure they have the same size.",
            stacklevel=3,
        )
    return target


def _weighted(
    loss: Tensor,
    weight: Any,
    input: Tensor,  # noqa: A002
    reduction: str,
    mean_over_weights: bool,
) -> Tensor:
    """Element weights on a 'none' loss, reduced as PyTorch's composite code reduces them:
    a mean is Σ w·l / Σ w (``mean_over_weights``, l1 and mse) or Σ w·l / n (huber)."""
    if not isinstance(weight, Tensor) or tuple(weight.shape) != tuple(input.shape):
        raise ValueError(
            "Weights and input must have the same size: "
            f"input {tuple(input.shape)}, weight {tuple(getattr(weight, 'shape', ()))}"
        )
    weighted = loss * weight
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    return weighted.sum() / weight.sum() if mean_over_weights else weighted.mean()


def _not_differentiable(weight: Tensor, fn: str, name: str) -> None:
    if weight.requires_grad:
        raise GradError(
            f"{fn} is not differentiable with respect to argument '{name}'; "
            f"pass {name}.detach() (it cannot have requires_grad=True)"
        )


def _class_weight(weight: Any, input: Tensor, fn: str) -> Any:  # noqa: A002
    """Per-class weights as a raw array of the input's dtype (the op checks their shape)."""
    if weight is None:
        return None
    if not isinstance(weight, Tensor):
        raise TypeError(
            f"{fn}: weight must be a Tensor of one weight per class, found {type(weight).__name__}"
        )
    _not_differentiable(weight, fn, "weight")
    return weight.array.astype(input.dtype, copy=False)


def _plain_weight(weight: Any, input: Tensor, fn: str, name: str) -> Any:  # noqa: A002
    """A weight as a raw array of the input's dtype (the op checks that it broadcasts)."""
    if weight is None:
        return None
    if not isinstance(weight, Tensor):
        raise TypeError(f"{fn}: {name} must be a Tensor, found {type(weight).__name__}")
    _not_differentiable(weight, fn, name)
    return weight.array.astype(input.dtype, copy=False)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p); identity in eval."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, found {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return ar.Mul.apply(x, 0.0)
    return nn_ops.Dropout.apply(x, p=p)


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
