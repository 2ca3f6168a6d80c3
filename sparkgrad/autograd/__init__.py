"""``sparkgrad.autograd``: the ``torch.autograd`` names (they live in :mod:`sparkgrad.autodiff`).

- ``Function``: custom ops written with Tensors (``forward(ctx, ...)``, ``backward(ctx, ...)``)
- ``grad(outputs, inputs, grad_outputs=None, ...)``: gradients returned, ``.grad`` untouched
- ``backward(tensors, grad_tensors=None, ...)``: the same as ``tensor.backward()``
- ``gradcheck``: finite differences against backward, in float64
- ``Variable``: the pre-0.4 wrapper, today just a tensor (old tutorials still use it)
"""

from typing import Any

from sparkgrad.autodiff.custom_function import Function, FunctionCtx
from sparkgrad.autodiff.factories import tensor as _tensor
from sparkgrad.autodiff.grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from sparkgrad.autodiff.gradcheck import GradcheckError, gradcheck
from sparkgrad.autodiff.graph import backward, grad
from sparkgrad.autodiff.tensor import Tensor


def Variable(data: Any, requires_grad: bool = False) -> Tensor:  # noqa: N802 - PyTorch's name
    """``Variable(t, requires_grad=True)``: since PyTorch 0.4 simply a tensor."""
    t = data if isinstance(data, Tensor) else _tensor(data)
    if requires_grad:
        t.requires_grad_(True)
    return t


__all__ = [
    "Function",
    "FunctionCtx",
    "GradcheckError",
    "Variable",
    "backward",
    "enable_grad",
    "grad",
    "gradcheck",
    "inference_mode",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
]
