"""The neural-network part of the functional API: linear, softmax, activations, dropout,
norms, embeddings, attention (the losses are in :mod:`.functional_loss`).

Re-exported by :mod:`sparkgrad.autodiff.functional` (``sparkgrad.nn.functional`` / ``F``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module, is_floating
from sparkgrad.autodiff.inplace import update_in_place
from sparkgrad.autodiff.ops import activation as act
from sparkgrad.autodiff.ops import arithmetic as ar
from sparkgrad.autodiff.ops import attention as attn_ops
from sparkgrad.autodiff.ops import batchnorm as bn_ops
from sparkgrad.autodiff.ops import neural as nn_ops
from sparkgrad.autodiff.ops import shape as sh
from sparkgrad.autodiff.spelling import pick
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError, ShapeError

__all__ = [
    "batch_norm",
    "dropout",
    "dropout2d",
    "elu",
    "embedding",
    "hardtanh",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "one_hot",
    "scaled_dot_product_attention",
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
    if not is_floating(x.dtype):
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


def dropout(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p); identity in eval."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, found {p}")
    return _dropped(x, p, training, inplace, mask_shape=None)


def _dropped(x: Tensor, p: float, training: bool, inplace: bool, mask_shape: Any) -> Tensor:
    """Dropout with one coin per element (``mask_shape=None``) or per ``mask_shape`` block."""
    if not training or p == 0:
        return x
    if p == 1:
        drop = lambda t: ar.Mul.apply(t, 0.0)  # noqa: E731
    else:
        drop = lambda t: nn_ops.Dropout.apply(t, p=p, mask_shape=mask_shape)  # noqa: E731
    return update_in_place(x, drop) if inplace else drop(x)


def dropout2d(
    input: Tensor,  # noqa: A002 - PyTorch's name
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
) -> Tensor:
    """Zero whole channels with probability ``p`` and scale the rest by 1/(1-p); eval: identity.

    One coin per (sample, channel) of an (N, C, H, W) input: neighbouring pixels of a
    feature map are strongly correlated, so dropping single pixels regularises little.
    As PyTorch (with its warnings), a 3-D input is read as (N, C, L) and other ranks drop
    single elements. ``inplace=True`` overwrites the input, as in PyTorch.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if input.ndim not in (3, 4):
        if input.ndim < 2:
            raise ShapeError(f"dropout2d needs at least 2 dimensions, found shape {input.shape}")
        warnings.warn(
            f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated "
            "(PyTorch); use dropout instead. dropout2d exists to provide channel-wise dropout "
            "on 3D or 4D inputs.",
            stacklevel=2,
        )
    if input.ndim == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D "
            "dropout behavior is desired - input is interpreted as shape (N, C, L), as "
            "PyTorch does; use dropout1d semantics knowingly.",
            stacklevel=2,
        )
    mask_shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2)
    return _dropped(input, p, training, inplace, mask_shape)


def batch_norm(
    input: Tensor,  # noqa: A002 - PyTorch's name
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel (dim 1) of (N, C, *) over the batch and spatial positions.

    ``training=True``: the batch's mean and biased variance, and ``running_mean`` /
    ``running_var`` (if given) updated in place with ``momentum`` (unbiased variance);
    ``training=False``: the running statistics. See :mod:`sparkgrad.autodiff.ops.batchnorm`.
    """
    if input.ndim < 2:
        raise ShapeError(f"batch_norm expects an input (N, C, *), found shape {input.shape}")
    channels = input.shape[1]
    if training and input.array.size // max(channels, 1) == 1:
        raise ShapeError(
            f"Expected more than 1 value per channel when training, got input size {input.shape}"
        )
    if training and eps <= 0:
        raise ConfigError(f"batch_norm eps must be positive during training, but got {eps}")
    if not training and (running_mean is None or running_var is None):
        raise ConfigError("running_mean and running_var must be defined in evaluation mode")
    for name, t in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if t is not None and t.shape != (channels,):
            raise ShapeError(
                f"{name} should contain {channels} elements not {t.array.size} "
                f"(input of shape {input.shape}, channels on dim 1)"
            )
    if (running_mean is None) != (running_var is None):
        raise ConfigError("running_mean and running_var must both be given or both be None")
    return bn_ops.BatchNorm.apply(
        input,
        weight,
        bias,
        running_mean,
        running_var,
        training=bool(training),
        momentum=float(momentum),
        eps=float(eps),
    )


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


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 ``(*, num_classes)``: 1 at each index of ``tensor``, 0 elsewhere (not differentiable).

    ``num_classes=-1`` takes one more than the largest index, as PyTorch does.
    """
    if tensor.dtype != np.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    xp = array_module(tensor.array)
    idx = tensor.array
    if idx.size and int(idx.min()) < 0:
        raise RuntimeError("Class values must be non-negative.")
    if num_classes == -1:
        if idx.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(idx.max()) + 1
    elif idx.size and int(idx.max()) >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    return Tensor._wrap((idx[..., None] == xp.arange(num_classes)).astype(np.int64))


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:  # noqa: A002
    return nn_ops.Embedding.apply(weight, _raw(input), padding_idx=padding_idx)


def _raw(x: Any) -> Any:
    return x.array if isinstance(x, Tensor) else np.asarray(x)


# ---- attention ---------------------------------------------------------------------------
def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """``softmax(query @ keyᵀ · scale + mask) @ value``, one fused op (``torch``'s semantics).

    Shapes ``(..., L, E)``, ``(..., S, E)``, ``(..., S, Ev)`` -> ``(..., L, Ev)``, leading
    dims broadcast. ``attn_mask`` (broadcastable to ``(..., L, S)``): boolean, True =
    *may attend*; or float, added to the scores. ``is_causal``: query ``i`` attends keys
    ``0..i`` (cannot be combined with ``attn_mask``). ``scale`` defaults to ``1/sqrt(E)``.
    ``dropout_p`` drops attention probabilities whenever it is > 0 (there is no
    ``training`` flag, as in PyTorch: modules pass 0 in eval mode). A row that may attend
    nothing returns zeros, as PyTorch 2.13 on the CPU. ``enable_gqa``: ``key``/``value``
    with fewer heads (dim -3) than ``query``, each serving a group of query heads.
    Forward and backward: :class:`sparkgrad.autodiff.ops.attention.ScaledDotProductAttention`.
    """
    if attn_mask is not None and is_causal:
        raise ConfigError(
            "_scaled_dot_product_attention: Explicit attn_mask should not be set when "
            "is_causal=True (give either a mask or is_causal, not both)"
        )
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {dropout_p}")
    kwargs = {"scale": scale, "dropout_p": float(dropout_p), "is_causal": bool(is_causal)}
    if enable_gqa and min(query.ndim, key.ndim) >= 3 and query.shape[-3] != key.shape[-3]:
        return _grouped_attention(query, key, value, attn_mask, kwargs)
    return _attention(query, key, value, attn_mask, kwargs)


def _attention(q: Tensor, k: Tensor, v: Tensor, mask: Any, kwargs: dict) -> Tensor:
    _check_attention(q, k, v, mask)
    if kwargs["scale"] is None:
        kwargs = {**kwargs, "scale": 1.0 / math.sqrt(q.shape[-1])}
    return attn_ops.ScaledDotProductAttention.apply(q, k, v, mask, **kwargs)


def _check_attention(query: Tensor, key: Tensor, value: Tensor, mask: Any) -> None:
    """PyTorch's checks, with shapes named: ranks, dtypes, E and S agreeing, mask dtype."""
    if min(query.ndim, key.ndim, value.ndim) < 2:
        raise ShapeError(
            "Expected query, key, and value to all be at least 2 dimensional, but got "
            f"query.dim: {query.ndim} key.dim: {key.ndim} and value.dim: {value.ndim} instead."
        )
    if not query.dtype == key.dtype == value.dtype:
        raise TypeError(
            "Expected query, key, and value to have the same dtype, but got query.dtype: "
            f"{query.dtype} key.dtype: {key.dtype} and value.dtype: {value.dtype} instead."
        )
    if not is_floating(query.dtype):
        raise TypeError(f"attention needs floating-point query/key/value, found {query.dtype}")
    if key.shape[-1] != query.shape[-1]:
        raise ShapeError(
            f"attention: key of shape {key.shape} has {key.shape[-1]} features per position, "
            f"query of shape {query.shape} has {query.shape[-1]} (they must be equal, E)"
        )
    if value.shape[-2] != key.shape[-2]:
        raise ShapeError(
            f"attention: value of shape {value.shape} has {value.shape[-2]} positions, key of "
            f"shape {key.shape} has {key.shape[-2]} (they must be equal, S)"
        )
    try:
        np.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except ValueError:
        raise ShapeError(
            f"attention: the batch dims of query {query.shape}, key {key.shape} and value "
            f"{value.shape} (all but the last two) do not broadcast"
        ) from None
    if mask is None:
        return
    if mask.dtype != np.bool_ and mask.dtype != query.dtype:
        raise TypeError(
            "Expected attn_mask dtype to be bool or float or to match query dtype, but got "
            f"attn_mask.dtype: {mask.dtype} and query.dtype: {query.dtype} instead."
        )
    batch = np.broadcast_shapes(query.shape[:-2], key.shape[:-2])
    scores = tuple(batch) + (query.shape[-2], key.shape[-2])
    if mask.ndim < 2:
        raise ShapeError(
            f"attn_mask must be at least 2-D, (L, S) = {scores[-2:]}, found shape {mask.shape}"
        )
    try:
        fits = np.broadcast_shapes(tuple(mask.shape), scores) == scores
    except ValueError:
        fits = False
    if not fits:
        raise ShapeError(
            f"attn_mask of shape {mask.shape} does not broadcast to the attention scores of "
            f"shape {scores} (..., L, S)"
        )


def _grouped_attention(q: Tensor, k: Tensor, v: Tensor, mask: Any, kwargs: dict) -> Tensor:
    """Grouped-query attention without copying keys: query heads ``(Hk, g)``, keys ``(Hk, 1)``.

    ``repeat_interleave`` of the key heads would give each group of ``g`` query heads
    the same key head; a size-1 axis that broadcasts does the same for free (and the
    engine sums the key gradients over it).
    """
    hq, hk = q.shape[-3], k.shape[-3]
    if hk != v.shape[-3] or hq % hk:
        raise ShapeError(
            f"Number of heads in key and value must divide the number of heads in query: "
            f"query {q.shape}, key {k.shape}, value {v.shape} (heads on dim -3)"
        )
    group = hq // hk

    def split(t: Tensor, heads: tuple[int, int]) -> Tensor:
        return sh.Reshape.apply(t, shape=tuple(t.shape[:-3]) + heads + tuple(t.shape[-2:]))

    q5, k5, v5 = split(q, (hk, group)), split(k, (hk, 1)), split(v, (hk, 1))
    if mask is not None and mask.ndim >= 3:
        mask = split(mask, (hk, group) if mask.shape[-3] == hq else (1, 1))
    out = _attention(q5, k5, v5, mask, kwargs)
    return sh.Reshape.apply(out, shape=tuple(out.shape[:-4]) + (hq,) + tuple(out.shape[-2:]))
