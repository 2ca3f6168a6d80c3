"""Loss layers, as in ``torch.nn``: classification (``CrossEntropyLoss``, ``NLLLoss``),
binary (``BCELoss``, ``BCEWithLogitsLoss``) and regression (``MSELoss``, ``L1Loss``,
``SmoothL1Loss``, ``HuberLoss``).

Each is a thin module around its functional op (``F.cross_entropy`` ...), which holds
the maths. The arguments keep PyTorch's order so positional calls port unchanged;
``reduction`` is ``'mean'`` (default), ``'sum'`` or ``'none'``. Class or element weights
(``weight=``, ``pos_weight=``) are *buffers*, as in PyTorch: they follow ``.to(device)``
and appear in ``state_dict()`` under the same names.

The long-deprecated ``size_average``/``reduce`` arguments are accepted only as ``None``:
sparkgrad raises a clear error instead of guessing what they meant.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError

__all__ = [
    "CrossEntropyLoss",
    "NLLLoss",
    "MSELoss",
    "L1Loss",
    "SmoothL1Loss",
    "HuberLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
]

_REDUCTIONS = ("mean", "sum", "none")


class _Loss(Module):
    """Checks the arguments shared by every loss once, at construction."""

    def __init__(self, size_average: Any = None, reduce: Any = None, reduction: str = "mean"):
        super().__init__()
        if size_average is not None or reduce is not None:
            raise ConfigError(
                "size_average and reduce are deprecated; use reduction='mean'|'sum'|'none'"
            )
        if reduction not in _REDUCTIONS:
            raise ConfigError(f"reduction must be one of {_REDUCTIONS}, found {reduction!r}")
        self.reduction = reduction


class _WeightedLoss(_Loss):
    """A loss with an optional ``weight`` buffer (per class, or per element)."""

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: Any = None,
        reduce: Any = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """Cross-entropy of raw logits ``(N, C)`` (or ``(N, C, d1, ...)``) against class ids.

    Fused with log-softmax (stable for large logits). ``weight`` (one per class) scales
    each target's term and the mean divides by the sum of the targets' weights;
    ``ignore_index`` targets count neither in the loss nor in the mean;
    ``label_smoothing`` ε mixes the one-hot target with the uniform distribution:
    q = (1-ε)·onehot + ε/C.
    """

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ConfigError(
                f"label_smoothing must be between 0.0 and 1.0, found {label_smoothing}"
            )
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        return F.cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities ``(N, C)`` (e.g. after ``LogSoftmax``)."""

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        return F.nll_loss(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


class MSELoss(_Loss):
    """Mean squared error between ``input`` and ``target`` (same shape, or broadcast)."""

    def __init__(
        self, size_average: Any = None, reduce: Any = None, reduction: str = "mean"
    ) -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error ``|input - target|``."""

    def __init__(
        self, size_average: Any = None, reduce: Any = None, reduction: str = "mean"
    ) -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """Quadratic for ``|z| < beta`` (z²/2β), linear beyond (|z| - β/2); ``beta=0`` is L1."""

    def __init__(
        self,
        size_average: Any = None,
        reduce: Any = None,
        reduction: str = "mean",
        beta: float = 1.0,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """Quadratic for ``|z| < delta`` (z²/2), linear beyond (δ(|z| - δ/2)).

    Note PyTorch's argument order: ``HuberLoss(reduction='mean', delta=1.0)``.
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy of probabilities in [0, 1] (e.g. after ``Sigmoid``).

    ``weight`` rescales each element (it broadcasts to the input's shape). For raw scores
    use :class:`BCEWithLogitsLoss`, which is stable where a sigmoid saturates.
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid and binary cross-entropy in one numerically stable op, on raw logits.

    ``weight`` rescales each element; ``pos_weight`` rescales the positive term, one value
    per class along the last dimension (e.g. #negatives / #positives for rare classes).
    """

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: Any = None,
        reduce: Any = None,
        reduction: str = "mean",
        pos_weight: Tensor | None = None,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        return F.binary_cross_entropy_with_logits(
            input,
            target,
            weight=self.weight,
            reduction=self.reduction,
            pos_weight=self.pos_weight,
        )
