"""``Adagrad``: divide by the root of every squared gradient so far, as ``torch.optim.Adagrad``.

Duchi, Hazan & Singer (2011): a weight that has seen large gradients has its steps
shrunk for good, one that rarely gets a gradient (a rare word's embedding) keeps large
steps. The accumulator only grows, so the effective learning rate only falls. For each
parameter ``p`` with gradient ``g``, at step ``t = 1, 2, ...`` (PyTorch's
``_single_tensor_adagrad``, in the same order of operations)::

    g = -g                                        if maximize
    g = g + weight_decay * p                      if weight_decay != 0
    clr = lr / (1 + (t - 1) * lr_decay)           decayed learning rate
    s = s + g * g                                 sum of squared gradients  (sum)
    p = p - clr * g / (sqrt(s) + eps)

State per parameter, with PyTorch's names: ``step`` (a float32 scalar) and ``sum``, which
starts at ``initial_accumulator_value``. As in PyTorch the state is created with the
optimizer, not at the first step, so ``state_dict()`` lists every parameter from the
start. Everything runs in place with two shared scratch arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.optim.fused import addcmul, penalized_gradient
from sparkgrad.autodiff.optim.optimizer import Optimizer, ParamsT
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011).

    Args:
        params: tensors to optimize, or a list of param-group dicts.
        lr: learning rate (>= 0).
        lr_decay: the step ``t`` uses ``lr / (1 + (t - 1) * lr_decay)`` (>= 0).
        weight_decay: L2 penalty added to the gradient (>= 0).
        initial_accumulator_value: starting value of the sum of squares (>= 0).
        eps: added to the denominator, after the square root (>= 0).
        maximize: climb the objective instead of descending it.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            eps=eps,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            maximize=maximize,
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _check_group(self, group: dict[str, Any]) -> None:
        """PyTorch's checks and wording; ``not 0 <= x`` also rejects NaN."""
        if not 0.0 <= group["lr"]:
            raise ConfigError(f"Invalid learning rate: {group['lr']}")
        if not 0.0 <= group["lr_decay"]:
            raise ConfigError(f"Invalid lr_decay value: {group['lr_decay']}")
        if not 0.0 <= group["weight_decay"]:
            raise ConfigError(f"Invalid weight_decay value: {group['weight_decay']}")
        value = group["initial_accumulator_value"]
        if not 0.0 <= value:
            raise ConfigError(f"Invalid initial_accumulator_value value: {value}")
        if not 0.0 <= group["eps"]:
            raise ConfigError(f"Invalid epsilon value: {group['eps']}")

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        xp = array_module(p.array)
        state = self.state[p]
        state["step"] = Tensor._wrap(np.zeros((), dtype=np.float32))
        state["sum"] = Tensor._wrap(xp.full_like(p.array, group["initial_accumulator_value"]))
        return state

    def _update_group(self, group: dict[str, Any]) -> None:
        lr, lr_decay, eps = group["lr"], group["lr_decay"], group["eps"]
        weight_decay, maximize = group["weight_decay"], group["maximize"]
        for p in group["params"]:
            if p.grad is None:
                continue
            param, grad = p.array, p.grad.array  # p.grad is shared: only read, never written
            xp = array_module(param)
            # a group added after construction gets its state at its first step
            state = self.state.get(p) or self._init_state(p, group)
            step_t = state["step"].array
            step_t += 1
            step = float(step_t)
            # a: our own copy of the gradient once we change it; b: scratch (then std)
            a, b = self._scratch.pair(param)
            grad = penalized_gradient(grad, param, weight_decay, maximize, a, b)

            clr = lr / (1 + (step - 1) * lr_decay)
            state_sum = state["sum"].array
            addcmul(state_sum, grad, grad, 1, b)  # s + g * g
            std = xp.sqrt(state_sum, out=b)
            std += eps
            # p.addcdiv_(g, std, value=-clr) = p + (-clr * g) / std
            update = xp.multiply(grad, -clr, out=a)  # the gradient is no longer needed
            update /= std
            param += update
