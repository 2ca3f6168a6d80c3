"""Attention masks as ``torch.nn``'s attention layers read them.

Two conventions meet in attention code, and they are opposite:

- ``F.scaled_dot_product_attention``: a boolean mask is True where a query *may* attend.
- ``nn.MultiheadAttention`` and the Transformer layers: a boolean ``attn_mask`` or
  ``key_padding_mask`` is True where a query may *not* attend (a padded key, a future
  position).

The layers settle this as PyTorch does, first thing in ``forward``: every mask is made
*canonical*, a float mask added to the scores, with ``-inf`` where the boolean one was
True and 0 elsewhere (:func:`canonical_mask`). A float mask is already canonical.
:func:`generate_square_subsequent_mask` is the causal mask in that form.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import get_array_module
from sparkgrad.autodiff.device import resolve
from sparkgrad.autodiff.dtypes import get_default_dtype
from sparkgrad.autodiff.tensor import Tensor

__all__ = ["canonical_mask", "dtype_or_none", "generate_square_subsequent_mask"]


def dtype_or_none(mask: Any) -> Any:
    """``mask.dtype``, or None for no mask (PyTorch's ``F._none_or_dtype``)."""
    return None if mask is None else mask.dtype


def canonical_mask(
    mask: Tensor | None,
    mask_name: str,
    other_type: Any,
    other_name: str,
    target_type: Any,
    check_other: bool = True,
) -> Tensor | None:
    """A boolean mask (True = masked) as a float mask of ``target_type``: -inf where True.

    A float mask is returned as it is (it may carry a gradient); integer masks are refused.
    Masks of two different dtypes given together still work but warn, as in PyTorch.
    """
    if mask is None:
        return None
    is_float = mask.dtype.kind == "f"
    if mask.dtype != np.bool_ and not is_float:
        raise TypeError(
            f"only bool and floating types of {mask_name} are supported, found {mask.dtype}"
        )
    if check_other and other_type is not None and mask.dtype != other_type:
        warnings.warn(
            f"Support for mismatched {mask_name} and {other_name} is deprecated. "
            "Use same type for both instead.",
            stacklevel=3,
        )
    if is_float:
        return mask
    raw = mask.array
    xp = get_array_module(mask.device)
    # Python scalars, not 0-d arrays: on the GPU those would be copied over from the host
    return Tensor._wrap(xp.where(raw, -np.inf, 0.0).astype(target_type, copy=False))


def generate_square_subsequent_mask(sz: int, device: Any = None, dtype: Any = None) -> Tensor:
    """``(sz, sz)`` float mask: 0 on and below the diagonal, -inf above (position i sees 0..i)."""
    xp = get_array_module(resolve(device))
    dtype = get_default_dtype() if dtype is None else dtype
    upper = ~xp.tri(sz, sz, 0, dtype=bool)
    return Tensor._wrap(xp.where(upper, -np.inf, 0.0).astype(dtype, copy=False))


def detect_is_causal_mask(mask: Tensor | None, is_causal: bool | None, size: int | None) -> bool:
    """``is_causal`` if given; for ``None``, whether ``mask`` *is* the causal mask (PyTorch).

    Only a hint: a layer given ``is_causal=True`` may skip the mask and build the causal
    one itself, which gives the same numbers.
    """
    if is_causal is not None or mask is None:
        return is_causal is True
    sz = size if size is not None else mask.shape[-2]
    if tuple(mask.shape) != (sz, sz):
        return False
    causal = generate_square_subsequent_mask(sz, device=mask.device, dtype=mask.dtype)
    return bool((mask.array == causal.array).all())
