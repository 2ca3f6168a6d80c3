"""``RMSprop``: divide by a running RMS of the gradient, as ``torch.optim.RMSprop`` does.

Hinton's lecture-notes method: each weight's step is its gradient divided by the root of a
running average of its squared gradients, so weights with large, noisy gradients take
small steps and rarely-moved weights large ones. For each parameter ``p`` with gradient
``g`` (PyTorch's ``_single_tensor_rmsprop``, in the same order of operations)::

    g = -g                                        if maximize
    g = g + weight_decay * p                      if weight_decay != 0
    v = alpha * v + (1 - alpha) * g * g           running average of g²   (square_avg)
    if centered:                                  divide by a running *standard deviation*
        m = m + (1 - alpha) * (g - m)             running average of g    (grad_avg, lerp)
        avg = sqrt(v - m * m) + eps
    else:
        avg = sqrt(v) + eps
    if momentum > 0:
        buf = momentum * buf + g / avg            (momentum_buffer)
        p = p - lr * buf
    else:
        p = p - lr * g / avg

Unlike SGD, the momentum buffer starts at zero (it is created with the state), and unlike
Adam nothing is bias-corrected: the first steps divide by a ``v`` still near zero and are
large. State per parameter, with PyTorch's names: ``step`` (a float32 scalar, counted but
not used by the maths), ``square_avg``, ``momentum_buffer`` (if ``momentum > 0``) and
``grad_avg`` (if ``centered``). Everything runs in place with two shared scratch arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.optim.fused import addcmul, axpy, lerp, penalized_gradient
from sparkgrad.autodiff.optim.optimizer import Optimizer, ParamsT
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012), optionally centered (Graves, 2013) and with momentum.

    Args:
        params: tensors to optimize, or a list of param-group dicts.
        lr: learning rate (>= 0).
        alpha: decay of the running averages (>= 0).
        eps: added to the denominator, after the square root (>= 0).
        weight_decay: L2 penalty added to the gradient (>= 0).
        momentum: momentum factor (>= 0); 0 updates with ``g / avg`` directly.
        centered: normalise by the estimated variance of the gradient instead of its
            second moment.
        maximize: climb the objective instead of descending it.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            alpha=alpha,
            eps=eps,
            centered=centered,
            weight_decay=weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        """PyTorch's checks and wording; ``not 0 <= x`` also rejects NaN."""
        if not 0.0 <= group["lr"]:
            raise ConfigError(f"Invalid learning rate: {group['lr']}")
        if not 0.0 <= group["eps"]:
            raise ConfigError(f"Invalid epsilon value: {group['eps']}")
        if not 0.0 <= group["momentum"]:
            raise ConfigError(f"Invalid momentum value: {group['momentum']}")
        if not 0.0 <= group["weight_decay"]:
            raise ConfigError(f"Invalid weight_decay value: {group['weight_decay']}")
        if not 0.0 <= group["alpha"]:
            raise ConfigError(f"Invalid alpha value: {group['alpha']}")

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        xp = array_module(p.array)
        state = self.state[p]
        state["step"] = Tensor._wrap(np.zeros((), dtype=np.float32))
        state["square_avg"] = Tensor._wrap(xp.zeros_like(p.array))
        if group["momentum"] > 0:
            state["momentum_buffer"] = Tensor._wrap(xp.zeros_like(p.array))
        if group["centered"]:
            state["grad_avg"] = Tensor._wrap(xp.zeros_like(p.array))
        return state

    def _update_group(self, group: dict[str, Any]) -> None:
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        weight_decay, momentum = group["weight_decay"], group["momentum"]
        centered, maximize = group["centered"], group["maximize"]
        for p in group["params"]:
            if p.grad is None:
                continue
            param, grad = p.array, p.grad.array  # p.grad is shared: only read, never written
            xp = array_module(param)
            state = self.state.get(p) or self._init_state(p, group)
            state["step"].array += 1
            # a: our own copy of the gradient once we change it; b: scratch (then avg); c: scratch
            a, b, c = self._scratch.take(param, 3)
            grad = penalized_gradient(grad, param, weight_decay, maximize, a, b)

            square_avg = state["square_avg"].array
            square_avg *= alpha
            addcmul(square_avg, grad, grad, 1 - alpha, b)  # v + (1 - alpha) * g * g
            if centered:
                grad_avg = state["grad_avg"].array
                lerp(grad_avg, grad, 1 - alpha, b)  # m + (1 - alpha) * (g - m)
                b[...] = square_avg
                addcmul(b, grad_avg, grad_avg, -1, c)  # v - m * m
                avg = xp.sqrt(b, out=b)
            else:
                avg = xp.sqrt(square_avg, out=b)
            avg += eps

            if momentum > 0:
                buf = state["momentum_buffer"].array
                buf *= momentum
                buf += xp.divide(grad, avg, out=b)  # buf.addcdiv_(g, avg)
                axpy(-lr, buf, param, b)  # p - lr * buf
            else:
                # p.addcdiv_(g, avg, value=-lr) = p + (-lr * g) / avg
                update = xp.multiply(grad, -lr, out=a)  # the gradient is no longer needed
                update /= avg
                param += update
