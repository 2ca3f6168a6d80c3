"""The losses of the functional API, with PyTorch's signatures and argument order.

``weight`` comes before the deprecated ``size_average``/``reduce`` (which sparkgrad refuses)
and ``reduction``, so positional calls port unchanged; ``reduction`` is ``'mean'``
(default), ``'sum'`` or ``'none'``. Each loss is one op in :mod:`sparkgrad.autodiff.ops.losses`
(or :mod:`~sparkgrad.autodiff.ops.neural` for the fused cross-entropy), with its backward.

Re-exported by :mod:`sparkgrad.autodiff.functional` (``sparkgrad.nn.functional`` / ``F``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from sparkgrad.autodiff.ops import losses as loss_ops
from sparkgrad.autodiff.ops import neural as nn_ops
from sparkgrad.autodiff.ops.promotion import promote
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError, GradError

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "huber_loss",
    "l1_loss",
    "mse_loss",
    "nll_loss",
    "smooth_l1_loss",
]


def _raw(x: Any) -> Any:
    return x.array if isinstance(x, Tensor) else np.asarray(x)


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
