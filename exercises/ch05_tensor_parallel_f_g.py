"""Chapter 5 exercise (tensor parallel) — Megatron's conjugate pair ``f`` and ``g``.

Tensor parallelism cuts one layer's matrix over the ranks of a group. In the MLP block
``x -> column-parallel Linear -> ReLU -> row-parallel Linear -> y``, rank ``r`` holds

- rows ``r`` of the first weight: from the *whole* ``x`` it computes its slice of the
  hidden features (no communication: the ReLU works on slices too);
- columns ``r`` of the second weight: from its hidden slice it computes a *partial sum*
  of ``y``; the partial sums must be added over the ranks.

Two ops put that communication into the autograd graph, mirror images of each other::

    op     where                                   forward          backward
    f      where the replicated x enters the block identity         all_reduce(grad)
    g      after the row layer's partial sums      all_reduce(x)    identity

``f``'s backward sums because every rank's slice of the first layer used ``x``, so
``dL/dx`` is the sum of every rank's contribution. ``g``'s backward is the identity
because ``y`` is replicated: each rank already holds the whole ``dL/dy``.

Write both as autograd ops over *raw arrays* (the house style, as
``sparkgrad/autodiff/ops/arithmetic.py``): ``forward(ctx, x, group=None)`` gets the array
and the group (store what backward needs on ``ctx``), ``backward(ctx, grad)`` returns the
input's gradient. ``group.pg.all_reduce(array)`` sums a NumPy array in place over the
group's ranks (and returns it). Rule for every op: **never modify ``x`` or ``grad`` in
place** — all-reduce a copy (``array.copy()``).

The project's version is ``sparkgrad/parallel/tensor/comm_ops.py`` (its cost is measured
by the communicator, not by the ops). Check yours: ``python -m pytest -m exercise_fg --learner``.
"""

from __future__ import annotations

from typing import Any

from exercises.reference import Context, Function, Tensor


class CopyToTensorParallelRegion(Function):
    """f: z = x;  dL/dx = Σ_ranks g"""

    @staticmethod
    def forward(ctx: Context, x: Any, group: Any = None) -> Any:
        raise NotImplementedError("exercise: f's forward in exercises/ch05_tensor_parallel_f_g.py")

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        raise NotImplementedError("exercise: f's backward in exercises/ch05_tensor_parallel_f_g.py")


class ReduceFromTensorParallelRegion(Function):
    """g: z = Σ_ranks x;  dL/dx = g"""

    @staticmethod
    def forward(ctx: Context, x: Any, group: Any = None) -> Any:
        raise NotImplementedError("exercise: g's forward in exercises/ch05_tensor_parallel_f_g.py")

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        raise NotImplementedError("exercise: g's backward in exercises/ch05_tensor_parallel_f_g.py")


def copy_to_tensor_parallel_region(x: Tensor, group: Any) -> Tensor:
    """``f`` on a tensor (already written: ``apply`` records the op for backward)."""
    return CopyToTensorParallelRegion.apply(x, group=group)


def reduce_from_tensor_parallel_region(x: Tensor, group: Any) -> Tensor:
    """``g`` on a tensor (already written)."""
    return ReduceFromTensorParallelRegion.apply(x, group=group)
