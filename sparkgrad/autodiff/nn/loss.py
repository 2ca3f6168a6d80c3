"""Loss layers: ``CrossEntropyLoss``, ``NLLLoss``, ``MSELoss``, as in ``torch.nn``.

Each is a thin module around its functional op (``F.cross_entropy`` ...), which holds
the maths. The arguments keep PyTorch's order so positional calls port unchanged;
``reduction`` is ``'mean'`` (default), ``'sum'`` or ``'none'``.

Per-class ``weight`` and the long-deprecated ``size_average``/``reduce`` arguments are
accepted only as ``None``: sparkgrad raises a clear error instead of silently ignoring them.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss"]

_REDUCTIONS = ("mean", "sum", "none")


class _Loss(Module):
    """Checks the arguments shared by every loss once, at construction."""

    def __init__(
        self,
        size_average: Any = None,
        reduce: Any = None,
        reduction: str = "mean",
        weight: Any = None,
    ) -> None:
        super().__init__()
        if size_average is not None or reduce is not None:
            raise ConfigError(
                "size_average and reduce are deprecated; use reduction='mean'|'sum'|'none'"
            )
        if weight is not None:
            raise ConfigError(
                f"per-class weights are not supported by {type(self).__name__}; pass weight=None"
            )
        if reduction not in _REDUCTIONS:
            raise ConfigError(f"reduction must be one of {_REDUCTIONS}, found {reduction!r}")
        self.reduction = reduction


class CrossEntropyLoss(_Loss):
    """Cross-entropy of raw logits ``(N, C)`` (or ``(N, C, d1, ...)``) against class ids.

    Fused with log-softmax (stable for large logits). ``ignore_index`` targets count
    neither in the loss nor in the mean; ``label_smoothing`` ε mixes the one-hot target
    with the uniform distribution: q = (1-ε)·onehot + ε/C.
    """

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(size_average, reduce, reduction, weight)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ConfigError(
                f"label_smoothing must be between 0.0 and 1.0, found {label_smoothing}"
            )
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        return F.cross_entropy(
            input, target, self.reduction, self.ignore_index, self.label_smoothing
        )


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities ``(N, C)`` (e.g. after ``LogSoftmax``)."""

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction, weight)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        return F.nll_loss(input, target, self.reduction, self.ignore_index)


class MSELoss(_Loss):
    """Mean squared error between ``input`` and a ``target`` of the same shape."""

    def __init__(
        self, size_average: Any = None, reduce: Any = None, reduction: str = "mean"
    ) -> None:
        super().__init__(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        return F.mse_loss(input, target, self.reduction)
