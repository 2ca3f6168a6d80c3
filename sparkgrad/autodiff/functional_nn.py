"""The neural-network part of the functional API: linear, softmax, activations, dropout,
norms, embeddings (the losses are in :mod:`.functional_loss`).

Re-exported by :mod:`sparkgrad.autodiff.functional` (``sparkgrad.nn.functional`` / ``F``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sparkgrad.autodiff.inplace import update_in_place
from sparkgrad.autodiff.ops import activation as act
from sparkgrad.autodiff.ops import arithmetic as ar
from sparkgrad.autodiff.ops import neural as nn_ops
from sparkgrad.autodiff.spelling import pick
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ShapeError

__all__ = [
    "dropout",
    "elu",
    "embedding",
    "hardtanh",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "silu",
    "softmax",
    "softplus",
]


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` as one fused op (weight of shape ``(out, in)``)."""
    return nn_ops.Linear.apply(x, weight, bias)


def softmax(x: Tensor, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    return nn_ops.Softmax.apply(x, axis=pick(axis, dim, -1))


def log_softmax(x: Tensor, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    return nn_ops.LogSoftmax.apply(x, axis=pick(axis, dim, -1))


# ---- activations (relu, gelu, sigmoid, tanh are in functional.py) ------------------------
def _activation(op: type, x: Tensor, inplace: bool, name: str, **kwargs: Any) -> Tensor:
    """Apply ``op``; with ``inplace=True`` write the result into ``x`` and return ``x``
    (recorded as an in-place op when a graph is being built, as in PyTorch)."""
    if x.dtype.kind not in "f":
        raise NotImplementedError(f"{name} is not implemented for {x.dtype} tensors (as torch)")
    if inplace:
        return update_in_place(x, lambda old: op.apply(old, **kwargs))
    return op.apply(x, **kwargs)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:  # noqa: A002
    """``log(1 + exp(beta·x)) / beta``, the identity where ``beta·x > threshold``."""
    return _activation(act.Softplus, input, False, "softplus", beta=beta, threshold=threshold)


def silu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x · sigmoid(x)`` (swish)."""
    return _activation(act.SiLU, input, inplace, "silu")


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x`` where positive, ``negative_slope · x`` elsewhere."""
    return _activation(act.LeakyReLU, input, inplace, "leaky_relu", negative_slope=negative_slope)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x`` where positive, ``alpha · (exp(x) - 1)`` elsewhere."""
    return _activation(act.ELU, input, inplace, "elu", alpha=alpha)


def hardtanh(
    input: Tensor,  # noqa: A002
    min_val: float = -1.0,
    max_val: float = 1.0,
    inplace: bool = False,
) -> Tensor:
    """``x`` clamped to ``[min_val, max_val]``; gradient 0 at and beyond the bounds."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    if input.dtype.kind in "iu":  # torch accepts integers here (no gradient to take)
        return Tensor._wrap(input.array.clip(min_val, max_val).astype(input.dtype))
    return _activation(act.Hardtanh, input, inplace, "hardtanh", min_val=min_val, max_val=max_val)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p); identity in eval."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, found {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return ar.Mul.apply(x, 0.0)
    return nn_ops.Dropout.apply(x, p=p)


def layer_norm(
    x: Tensor,
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.shape[-len(shape) :] != shape:
        raise ShapeError(f"layer_norm over {shape} needs an input ending in it, found {x.shape}")
    return nn_ops.LayerNorm.apply(x, weight, bias, n_dims=len(shape), eps=eps)


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:  # noqa: A002
    return nn_ops.Embedding.apply(weight, _raw(input), padding_idx=padding_idx)


def _raw(x: Any) -> Any:
    return x.array if isinstance(x, Tensor) else np.asarray(x)
