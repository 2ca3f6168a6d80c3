"""``SGD``: stochastic gradient descent with momentum, as ``torch.optim.SGD`` computes it.

For each parameter ``p`` with gradient ``g`` (PyTorch's ``_single_tensor_sgd``)::

    g = -g                      if maximize
    g = g + weight_decay * p    if weight_decay != 0     (L2 penalty folded into g)
    if momentum != 0:
        buf = clone(g)                                   on the first step
        buf = momentum * buf + (1 - dampening) * g       afterwards
        g = g + momentum * buf  if nesterov else buf
    p = p - lr * g

Note the first step: the momentum buffer is the gradient itself, dampening is not applied.
Every line runs in place on the raw arrays: ``y + alpha * x`` is :func:`~.fused.axpy`
(rounded once, as PyTorch does), and two scratch arrays shared by all parameters hold the
temporaries, so a step allocates nothing (except the momentum buffer, once, on step one).
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.optim.fused import axpy, penalized_gradient
from sparkgrad.autodiff.optim.optimizer import Optimizer, ParamsT
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError


class SGD(Optimizer):
    """Gradient descent, optionally with (Nesterov) momentum and weight decay.

    Args:
        params: tensors to optimize, or a list of param-group dicts.
        lr: learning rate (>= 0).
        momentum: momentum factor (>= 0); 0 is plain gradient descent.
        dampening: how much of the new gradient is *not* added to the momentum buffer.
        weight_decay: L2 penalty added to the gradient (>= 0).
        nesterov: look-ahead momentum; needs ``momentum > 0`` and ``dampening == 0``.
        maximize: climb the objective instead of descending it.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "momentum", "weight_decay"):
            if not group[name] >= 0.0:
                raise ConfigError(f"expected {name} >= 0, found {name}={group[name]}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ConfigError(
                "Nesterov momentum requires momentum > 0 and dampening = 0, found "
                f"momentum={group['momentum']}, dampening={group['dampening']}"
            )

    def _update_group(self, group: dict[str, Any]) -> None:
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay, nesterov = group["weight_decay"], group["nesterov"]
        maximize = group["maximize"]
        for p in group["params"]:
            if p.grad is None:
                continue
            param, grad = p.array, p.grad.array  # p.grad is shared: only read, never written
            # a: our own copy of the gradient once we change it; b: scratch for axpy
            a, b = self._scratch.pair(param)
            grad = penalized_gradient(grad, param, weight_decay, maximize, a, b)
            if momentum != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:  # first step: the buffer is the gradient itself
                    buf = state["momentum_buffer"] = Tensor._wrap(grad.copy())
                else:
                    buf.array *= momentum
                    axpy(1 - dampening, grad, buf.array, b)  # momentum * buf + (1 - d) * g
                if nesterov:
                    if grad is not a:
                        a[...] = grad
                        grad = a
                    axpy(momentum, buf.array, a, b)  # g + momentum * buf
                else:
                    grad = buf.array
            axpy(-lr, grad, param, b)  # p - lr * g
