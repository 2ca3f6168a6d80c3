"""``Adam`` and ``AdamW``: adaptive moments, as ``torch.optim.Adam``/``AdamW`` compute them.

For each parameter ``p`` with gradient ``g``, at step ``t = 1, 2, ...`` (PyTorch's
``_single_tensor_adam``, in the same order of operations)::

    g = -g                                  if maximize
    p = p * (1 - lr * weight_decay)         AdamW: decay the weights themselves, first
    g = g + weight_decay * p                Adam: L2 penalty folded into the gradient
    m = m + (1 - beta1) * (g - m)           first moment  (torch: m.lerp_(g, 1 - beta1))
    v = beta2 * v + (1 - beta2) * g * g     second moment
    v_max = max(v_max, v)                   amsgrad only; then v_max replaces v below
    step_size = lr / (1 - beta1 ** t)                       bias correction of m
    denom = sqrt(v) / sqrt(1 - beta2 ** t) + eps            bias correction of v
    p = p - step_size * m / denom

State per parameter: ``step`` (a float32 scalar, as in PyTorch), ``exp_avg`` (m),
``exp_avg_sq`` (v) and, with amsgrad, ``max_exp_avg_sq``. Everything runs in place on the
raw arrays with two shared scratch arrays, so a step allocates nothing after the first;
``y + alpha * x`` is :func:`~.fused.axpy`, the moments :func:`~.fused.lerp` and
:func:`~.fused.addcmul`, each rounded as PyTorch rounds it. The one difference left is
the square root: PyTorch's (MKL's) is within an ulp, NumPy's correctly rounded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.optim.fused import addcmul, axpy, lerp
from sparkgrad.autodiff.optim.optimizer import Optimizer, ParamsT
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2014), with the optional AMSGrad variant.

    Args:
        params: tensors to optimize, or a list of param-group dicts.
        lr: learning rate (>= 0).
        betas: decay rates of the first and second moment averages, each in [0, 1).
        eps: added to the denominator for numerical stability (>= 0).
        weight_decay: L2 penalty (>= 0), added to the gradient (see :class:`AdamW`).
        amsgrad: normalise by the largest second moment seen so far.
        maximize: climb the objective instead of descending it.
        decoupled_weight_decay: decay the weights directly, which makes this AdamW.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "weight_decay"):
            if not group[name] >= 0.0:
                raise ConfigError(f"expected {name} >= 0, found {name}={group[name]}")
        betas = group["betas"]
        if len(betas) != 2:
            raise ConfigError(f"expected betas=(beta1, beta2), found {betas!r}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ConfigError(f"expected 0 <= betas[{i}] < 1, found {beta}")

    def _init_state(self, p: Tensor, amsgrad: bool) -> dict[str, Any]:
        """Zero moments shaped like ``p``; ``step`` is a float32 scalar as in PyTorch."""
        xp = array_module(p.array)
        state = self.state[p]
        state["step"] = Tensor._wrap(np.zeros((), dtype=np.float32))
        state["exp_avg"] = Tensor._wrap(xp.zeros_like(p.array))
        state["exp_avg_sq"] = Tensor._wrap(xp.zeros_like(p.array))
        if amsgrad:
            state["max_exp_avg_sq"] = Tensor._wrap(xp.zeros_like(p.array))
        return state

    def _update_group(self, group: dict[str, Any]) -> None:
        lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        amsgrad, maximize = group["amsgrad"], group["maximize"]
        decoupled = group["decoupled_weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            param, grad = p.array, p.grad.array
            xp = array_module(param)
            state = self.state.get(p) or self._init_state(p, amsgrad)
            step_t = state["step"].array
            step_t += 1
            step = float(step_t)
            # a: our own copy of the gradient once we change it; b: scratch for temporaries
            a, b = self._scratch.pair(param)

            if maximize:
                grad = xp.negative(grad, out=a)
            if weight_decay != 0:
                if decoupled:
                    param *= 1 - lr * weight_decay
                else:
                    if grad is not a:
                        a[...] = grad
                        grad = a
                    axpy(weight_decay, param, a, b)  # g + weight_decay * p

            exp_avg, exp_avg_sq = state["exp_avg"].array, state["exp_avg_sq"].array
            lerp(exp_avg, grad, 1 - beta1, b)  # m + (1 - beta1) * (g - m), as torch's lerp_
            exp_avg_sq *= beta2
            addcmul(exp_avg_sq, grad, grad, 1 - beta2, b)  # v + (1 - beta2) * g * g

            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            step_size = lr / bias_correction1
            second = exp_avg_sq
            if amsgrad:
                second = state["max_exp_avg_sq"].array
                xp.maximum(second, exp_avg_sq, out=second)
            denom = xp.sqrt(second, out=b)
            denom /= bias_correction2**0.5
            denom += eps
            # p.addcdiv_(m, denom, value=-step_size) = p + (-step_size * m) / denom
            update = xp.multiply(exp_avg, -step_size, out=a)  # the gradient is no longer needed
            update /= denom
            param += update


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    Instead of adding ``weight_decay * p`` to the gradient (where the adaptive denominator
    would rescale it), the weights shrink directly: ``p *= 1 - lr * weight_decay``, before
    the Adam step. Default ``weight_decay=1e-2``, as in PyTorch.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )
