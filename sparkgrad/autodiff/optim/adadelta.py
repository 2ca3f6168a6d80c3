"""``Adadelta``: per-weight step sizes from two running averages, as ``torch.optim.Adadelta``.

Zeiler (2012) noticed that the units of an SGD step are the gradient's, not the weight's.
Adadelta divides by the RMS of recent gradients and multiplies by the RMS of recent
*updates*, so the step has the weight's units and needs no tuned learning rate (``lr``
only rescales it, 1.0 by default). For each parameter ``p`` with gradient ``g``
(PyTorch's ``_single_tensor_adadelta``, in the same order of operations)::

    g = -g                                        if maximize
    g = g + weight_decay * p                      if weight_decay != 0
    v = rho * v + (1 - rho) * g * g               running average of g²    (square_avg)
    delta = sqrt(u + eps) / sqrt(v + eps) * g     RMS of updates / RMS of gradients
    u = rho * u + (1 - rho) * delta * delta       running average of delta² (acc_delta)
    p = p - lr * delta

``eps`` sits under both roots: on the first step ``u = 0``, and ``sqrt(eps)`` is what
gets the updates going. State per parameter, with PyTorch's names: ``step`` (a float32
scalar, counted but not used by the maths), ``square_avg`` (v) and ``acc_delta`` (u).
Everything runs in place on the raw arrays with three shared scratch arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.optim.fused import addcmul, axpy, penalized_gradient
from sparkgrad.autodiff.optim.optimizer import Optimizer, ParamsT
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012).

    Args:
        params: tensors to optimize, or a list of param-group dicts.
        lr: scales the update (>= 0); 1.0 is the method as published.
        rho: decay of both running averages, in [0, 1].
        eps: added inside both square roots (>= 0).
        weight_decay: L2 penalty added to the gradient (>= 0).
        maximize: climb the objective instead of descending it.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        """PyTorch's checks and wording; ``not 0 <= x`` also rejects NaN."""
        if not 0.0 <= group["lr"]:
            raise ConfigError(f"Invalid learning rate: {group['lr']}")
        if not 0.0 <= group["rho"] <= 1.0:
            raise ConfigError(f"Invalid rho value: {group['rho']}")
        if not 0.0 <= group["eps"]:
            raise ConfigError(f"Invalid epsilon value: {group['eps']}")
        if not 0.0 <= group["weight_decay"]:
            raise ConfigError(f"Invalid weight_decay value: {group['weight_decay']}")

    def _init_state(self, p: Tensor) -> dict[str, Any]:
        xp = array_module(p.array)
        state = self.state[p]
        state["step"] = Tensor._wrap(np.zeros((), dtype=np.float32))
        state["square_avg"] = Tensor._wrap(xp.zeros_like(p.array))
        state["acc_delta"] = Tensor._wrap(xp.zeros_like(p.array))
        return state

    def _update_group(self, group: dict[str, Any]) -> None:
        lr, rho, eps = group["lr"], group["rho"], group["eps"]
        weight_decay, maximize = group["weight_decay"], group["maximize"]
        for p in group["params"]:
            if p.grad is None:
                continue
            param, grad = p.array, p.grad.array  # p.grad is shared: only read, never written
            xp = array_module(param)
            state = self.state.get(p) or self._init_state(p)
            state["step"].array += 1
            # a: our own copy of the gradient once we change it; b: scratch; c: delta
            a, b, c = self._scratch.take(param, 3)
            grad = penalized_gradient(grad, param, weight_decay, maximize, a, b)

            square_avg, acc_delta = state["square_avg"].array, state["acc_delta"].array
            square_avg *= rho
            addcmul(square_avg, grad, grad, 1 - rho, b)  # v + (1 - rho) * g * g
            std = xp.sqrt(xp.add(square_avg, eps, out=b), out=b)  # sqrt(v + eps)
            delta = xp.sqrt(xp.add(acc_delta, eps, out=c), out=c)  # sqrt(u + eps)
            delta /= std
            delta *= grad
            acc_delta *= rho
            addcmul(acc_delta, delta, delta, 1 - rho, b)  # u + (1 - rho) * delta * delta
            axpy(-lr, delta, param, b)  # p - lr * delta
