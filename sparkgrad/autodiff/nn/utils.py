"""``sparkgrad.nn.utils``: gradient clipping and flat parameter vectors, as ``torch.nn.utils``.

Gradient clipping by norm, in two steps (which distributed strategies can split, e.g. to
all-reduce the squared norms of sharded gradients in between):

1. :func:`get_total_norm`: the p-norm of all gradients together,
   ``||g||_p = (Σ_i ||g_i||_p^p)^(1/p)``, computed as the norm of the per-tensor norms;
2. :func:`clip_grads_with_norm_`: scale every gradient by
   ``min(1, max_norm / (total_norm + 1e-6))``.

:func:`clip_grad_norm_` does both and returns the total norm (before clipping), with
PyTorch's exact formula, so clipped training follows PyTorch's trajectory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff.backend import array_module, to_device
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import DeviceError, GradError, ShapeError

__all__ = [
    "clip_grad_norm_",
    "clip_grad_value_",
    "get_total_norm",
    "clip_grads_with_norm_",
    "parameters_to_vector",
    "vector_to_parameters",
]

TensorOrTensors = Tensor | Iterable[Tensor]


def _as_list(tensors: TensorOrTensors) -> list[Tensor]:
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _norm(array: Any, p: float) -> Any:
    """The p-norm of a flattened array, as a 0-d array of its dtype (on its device)."""
    xp = array_module(array)
    flat = array.reshape(-1)
    if p == math.inf:
        return xp.abs(flat).max() if flat.size else xp.zeros((), flat.dtype)
    if p == 2.0:
        return xp.sqrt(xp.dot(flat, flat))
    if p == 1.0:
        return xp.abs(flat).sum()
    return (xp.abs(flat) ** p).sum() ** (1.0 / p)


def get_total_norm(
    tensors: TensorOrTensors,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    """The ``norm_type``-norm of all ``tensors`` viewed as one long vector (a 0-d Tensor)."""
    norm_type = float(norm_type)
    arrays = [t.array for t in _as_list(tensors)]
    if not arrays:
        return Tensor(0.0)
    xp = array_module(arrays[0])
    device = "cuda" if xp is not array_module() else "cpu"
    norms = xp.stack([to_device(_norm(a, norm_type), device) for a in arrays])
    total = _norm(norms, norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise GradError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
            "so it cannot be clipped. To disable this error and scale the gradients by the "
            "non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    return Tensor._wrap(total)


def clip_grads_with_norm_(
    parameters: TensorOrTensors, max_norm: float, total_norm: Tensor, foreach: bool | None = None
) -> None:
    """Scale each ``.grad`` by ``min(1, max_norm / (total_norm + 1e-6))``, in place."""
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    if not grads:
        return
    total = total_norm.array if isinstance(total_norm, Tensor) else total_norm
    coef = array_module(total).minimum(float(max_norm) / (total + 1e-6), 1.0)
    with np.errstate(invalid="ignore"):  # an inf norm gives coef 0 and 0·inf = nan, as in torch
        for g in grads:
            g.array *= to_device(coef, g.device)


def clip_grad_norm_(
    parameters: TensorOrTensors,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    """Rescale gradients so their total norm is at most ``max_norm``; return the old norm."""
    parameters = _as_list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return Tensor(0.0)
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(parameters, max_norm, total)
    return total


def clip_grad_value_(
    parameters: TensorOrTensors, clip_value: float, foreach: bool | None = None
) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]``, in place."""
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            array_module(p.grad.array).clip(p.grad.array, -clip_value, clip_value, out=p.grad.array)


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and concatenated into one 1-D tensor (differentiable)."""
    params = list(parameters)
    devices = {p.device for p in params}
    if len(devices) > 1:
        raise DeviceError(
            f"parameters_to_vector needs all parameters on one device, found {sorted(devices)}"
        )
    return F.cat([F.reshape(p, (-1,)) for p in params])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Point each parameter's data at its slice of ``vec`` (the inverse of the above).

    As in PyTorch, the parameters become *views* of ``vec``: no copy is made.
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected vec to be a Tensor, found {type(vec).__name__}")
    params = list(parameters)
    needed = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.numel() != needed:
        raise ShapeError(
            f"vec must be 1-D with {needed} elements (all parameters), found shape {vec.shape}"
        )
    offset = 0
    for p in params:
        n = p.numel()
        p.array = vec.array[offset : offset + n].reshape(p.shape)
        offset += n
