"""Loss ops beyond cross-entropy: regression (mse, l1, smooth L1, Huber) and binary
cross-entropy, on probabilities or, fused with the sigmoid, on logits.

Each op computes PyTorch's formula element-wise, then reduces: ``'none'`` keeps the
per-element losses, ``'sum'`` adds them, ``'mean'`` divides the sum by their number. So a
backward first turns the upstream gradient into a per-element one (the same value
everywhere after a reduction, ``/ n`` after a mean) and multiplies by the local derivative.

Where PyTorch's backward is not the exact derivative of its forward (binary
cross-entropy clamps its logarithms, but its gradient divides by ``max(p (1 - p), 1e-12)``
instead), we use PyTorch's formula: equal to torch is the spec.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.errors import ShapeError

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> None:
    """PyTorch's ValueError for anything but 'mean', 'sum' and 'none'."""
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"{reduction} is not a valid value for reduction: expected 'mean', 'sum' or 'none'"
        )


def _reduce(loss: Any, reduction: str) -> Any:
    check_reduction(reduction)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _per_element(grad: Any, reduction: str, n: int) -> Any:
    """d(reduced loss)/d(each element's loss) times the upstream gradient."""
    return grad / n if reduction == "mean" else grad


def _broadcast(name: str, a: Any, b: Any) -> tuple[int, ...]:
    """The shape input and target broadcast to, or a ShapeError naming both."""
    try:
        return tuple(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        raise ShapeError(
            f"{name}: input of shape {tuple(a.shape)} and target of shape {tuple(b.shape)} "
            "cannot be broadcast together"
        ) from None


def _weight_fits(name: str, what: str, weight: Any, shape: tuple[int, ...]) -> None:
    if weight is None:
        return
    try:
        fits = tuple(np.broadcast_shapes(weight.shape, shape)) == tuple(shape)
    except ValueError:
        fits = False
    if not fits:
        raise ShapeError(
            f"{name}: {what} of shape {tuple(weight.shape)} does not broadcast to the "
            f"input's shape {tuple(shape)}"
        )


# ---- regression ---------------------------------------------------------------------------
class MSELoss(Function):
    """l = (a - b)²;  dl/da = 2(a - b), dl/db = -2(a - b)"""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any, reduction: str = "mean") -> Any:
        _broadcast("mse_loss", a, b)
        diff = a - b
        ctx.save_for_backward(diff)
        ctx.reduction = reduction
        return _reduce(diff * diff, reduction)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (diff,) = ctx.saved_tensors
        ga = _per_element(grad, ctx.reduction, diff.size) * 2 * diff
        return ga, (-ga if ctx.needs_input_grad[1] else None)


class L1Loss(Function):
    """l = |a - b|;  dl/da = sign(a - b) (0 where a = b), dl/db = -sign(a - b)"""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any, reduction: str = "mean") -> Any:
        _broadcast("l1_loss", a, b)
        diff = a - b
        xp = array_module(diff)
        ctx.save_for_backward(xp.sign(diff))
        ctx.reduction = reduction
        return _reduce(xp.abs(diff), reduction)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (sign,) = ctx.saved_tensors
        ga = _per_element(grad, ctx.reduction, sign.size) * sign
        return ga, (-ga if ctx.needs_input_grad[1] else None)


class SmoothL1Loss(Function):
    """z = a - b;  l = z²/(2β) if |z| < β else |z| - β/2;  dl/da = clip(z/β, -1, 1)

    Quadratic near zero (a smooth minimum), linear further out (robust to outliers, as
    L1). ``beta`` must be > 0 here; ``F.smooth_l1_loss`` sends ``beta=0`` to L1, as torch.
    """

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any, reduction: str = "mean", beta: float = 1.0) -> Any:
        _broadcast("smooth_l1_loss", a, b)
        diff = a - b
        xp = array_module(diff)
        z = xp.abs(diff)
        loss = xp.where(z < beta, 0.5 * diff * diff / beta, z - 0.5 * beta)
        ctx.save_for_backward(diff)
        ctx.reduction, ctx.beta = reduction, beta
        return _reduce(loss.astype(diff.dtype, copy=False), reduction)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (diff,) = ctx.saved_tensors
        xp = array_module(diff)
        slope = xp.clip(diff / ctx.beta, -1, 1)  # torch: ±1 from |z| >= beta on
        ga = _per_element(grad, ctx.reduction, diff.size) * slope
        return ga, (-ga if ctx.needs_input_grad[1] else None)


class HuberLoss(Function):
    """z = a - b;  l = z²/2 if |z| < δ else δ(|z| - δ/2);  dl/da = clip(z, -δ, δ)

    Huber's loss is δ times the smooth L1 loss with β = δ: the same shape, but the linear
    part has slope δ instead of 1 (PyTorch computes both, each with its own formula).
    """

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any, reduction: str = "mean", delta: float = 1.0) -> Any:
        _broadcast("huber_loss", a, b)
        diff = a - b
        xp = array_module(diff)
        z = xp.abs(diff)
        loss = xp.where(z < delta, 0.5 * diff * diff, delta * (z - 0.5 * delta))
        ctx.save_for_backward(diff)
        ctx.reduction, ctx.delta = reduction, delta
        return _reduce(loss.astype(diff.dtype, copy=False), reduction)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (diff,) = ctx.saved_tensors
        xp = array_module(diff)
        slope = xp.clip(diff, -ctx.delta, ctx.delta)
        ga = _per_element(grad, ctx.reduction, diff.size) * slope
        return ga, (-ga if ctx.needs_input_grad[1] else None)


# ---- binary classification --------------------------------------------------------------
class BinaryCrossEntropy(Function):
    """l = -w·[y·log p + (1-y)·log(1-p)], each log clamped to >= -100;
    dl/dp = w·(p - y) / max(p(1-p), 1e-12),  dl/dy = w·(log(1-p) - log p)

    The clamp keeps ``p = 0`` or ``1`` finite (a loss of at most 100 per element), as
    PyTorch's; the gradient's ``1e-12`` floor is PyTorch's too.
    """

    @staticmethod
    def forward(ctx: Context, p: Any, y: Any, weight: Any = None, reduction: str = "mean") -> Any:
        if tuple(y.shape) != tuple(p.shape):
            raise ShapeError(
                f"binary_cross_entropy: target of shape {tuple(y.shape)} differs from input "
                f"of shape {tuple(p.shape)}; please ensure they have the same size"
            )
        _weight_fits("binary_cross_entropy", "weight", weight, p.shape)
        check_reduction(reduction)
        xp = array_module(p)
        for what, v in (("input", p), ("target", y)):  # NaN fails the test as well
            if v.size and not bool(((v >= 0) & (v <= 1)).all()):
                raise RuntimeError(
                    f"all elements of {what} should be between 0 and 1, "
                    f"found values in [{v.min()}, {v.max()}]"
                )
        with np.errstate(divide="ignore"):  # log(0) = -inf, clamped next
            log_p = xp.maximum(xp.log(p), -100)
            log_1mp = xp.maximum(xp.log1p(-p), -100)
        loss = (y - 1) * log_1mp - y * log_p
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(p, y, weight)
        ctx.reduction = reduction
        return _reduce(loss, reduction)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        p, y, weight = ctx.saved_tensors
        xp = array_module(p)
        g = _per_element(grad, ctx.reduction, p.size)
        if weight is not None:
            g = g * weight
        gp = g * (p - y) / xp.maximum((1 - p) * p, 1e-12)
        gy = None
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore"):  # ±inf at p = 0 or 1, as torch's -logit(p)
                gy = g * (xp.log1p(-p) - xp.log(p))
        return gp, gy, None


class BinaryCrossEntropyWithLogits(Function):
    """l = w·[(1-y)·x - (1 + (pw-1)·y)·log σ(x)];
    dl/dx = w·[(pw·y + 1 - y)·σ(x) - pw·y],  dl/dy = w·[log σ(-x) - pw·log σ(x)]

    The numerically stable form: log σ(x) = min(x, 0) - log(1 + e^(-|x|)) never takes the
    exponential of a positive number, so logits of ±100 (or ±1e4) give finite losses and
    exact gradients, where ``binary_cross_entropy(sigmoid(x))`` would round σ(x) to 0 or 1
    and hit the clamp. Without ``pos_weight`` (pw = 1) the loss is
    ``max(x, 0) - x·y + log(1 + e^(-|x|))``. ``pos_weight`` scales the positive term, the
    usual cure for rare positives (pw = #negatives / #positives).
    """

    @staticmethod
    def forward(
        ctx: Context,
        x: Any,
        y: Any,
        weight: Any = None,
        pos_weight: Any = None,
        reduction: str = "mean",
    ) -> Any:
        if tuple(y.shape) != tuple(x.shape):
            raise ShapeError(
                f"binary_cross_entropy_with_logits: target size {tuple(y.shape)} must be the "
                f"same as input size {tuple(x.shape)}"
            )
        name = "binary_cross_entropy_with_logits"
        _weight_fits(name, "weight", weight, x.shape)
        _weight_fits(name, "pos_weight", pos_weight, x.shape)
        check_reduction(reduction)
        xp = array_module(x)
        log_sig = xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))  # log σ(x)
        if pos_weight is not None:
            loss = (1 - y) * x - (1 + (pos_weight - 1) * y) * log_sig
        else:
            loss = (1 - y) * x - log_sig
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(x, y, weight, pos_weight, log_sig)
        ctx.reduction = reduction
        return _reduce(loss, reduction)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        x, y, weight, pos_weight, log_sig = ctx.saved_tensors
        xp = array_module(x)
        g = _per_element(grad, ctx.reduction, x.size)
        if weight is not None:
            g = g * weight
        sig = xp.exp(log_sig)  # σ(x), accurate down to the smallest floats
        if pos_weight is not None:
            t = pos_weight * y
            gx = g * ((t + 1 - y) * sig - t)
        else:
            gx = g * (sig - y)
        gy = None
        if ctx.needs_input_grad[1]:
            if pos_weight is not None:
                gy = g * ((log_sig - x) - pos_weight * log_sig)  # log σ(-x) = log σ(x) - x
            else:
                gy = g * -x
        return gx, gy, None, None
