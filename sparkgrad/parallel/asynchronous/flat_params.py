"""Flat weights: a model's parameters as views into one float32 vector, the unit that travels.

The server sends the weights and receives gradients as *one* flat array (one frame per
message, not one per parameter). Both sides keep that vector as the real storage of the
parameters: :func:`bind` points every ``p.array`` at its slice of the vector (the
layout of :class:`~sparkgrad.parallel.zero.flat_buffer.FlatBuffer`, parameters end to end in
``model.parameters()`` order), so a pull received straight into the vector *is* the
model's new weights, and an optimizer that updates ``p.array`` in place (every optimizer
of sparkgrad does, as PyTorch's do) updates the vector. The vector may live in shared
memory (:mod:`.hogwild`): then every process that binds to it trains the same weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ShapeError
from sparkgrad.parallel.zero.flat_buffer import FlatBuffer


def layout(params: list[Any]) -> FlatBuffer:
    """The flat layout of ``params`` (float32, no padding)."""
    return FlatBuffer([tuple(p.shape) for p in params], 1, np.float32)


def bind(params: list[Any], flat: np.ndarray, copy_values: bool = True) -> FlatBuffer:
    """Make each parameter's array a view into ``flat``; ``copy_values``: keep its values."""
    buffer = layout(params)
    if flat.dtype != np.float32 or flat.size != buffer.numel:
        raise ShapeError(
            f"expected a flat float32 vector of {buffer.numel} weights, found "
            f"{flat.size} of {flat.dtype}"
        )
    for p, view in zip(params, buffer.views(flat)):
        if copy_values:
            np.copyto(view, np.asarray(p.array, dtype=np.float32))
        p.array = view
    return buffer


def grad_views(params: list[Any], flat: np.ndarray) -> list[Tensor]:
    """Gradient tensors viewing ``flat`` (set ``p.grad`` to them: no copy before a step)."""
    return [Tensor._wrap(view) for view in layout(params).views(flat)]


def gather_grads(params: list[Any], out: np.ndarray) -> np.ndarray:
    """Copy every ``p.grad`` into its slice of ``out`` (zeros for a parameter without one)."""
    for p, view in zip(params, layout(params).views(out)):
        if p.grad is None:
            view.fill(0)
        else:
            np.copyto(view, p.grad.array)
    return out
