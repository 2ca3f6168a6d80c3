"""The f/g pair: tensor parallelism's communication, as two mirror-image autograd ops.

Megatron's ``f`` and ``g`` (as in picotron) put the collectives into the graph::

    op                                   forward          backward
    copy_to_tensor_parallel_region (f)   identity         all_reduce(grad)
    reduce_from_tensor_parallel_region   all_reduce(x)    identity
    gather_from_tensor_parallel_region   all_gather(x)    keep own slice of grad

``f`` sits where a replicated input enters a column-parallel layer: every rank's slice of
the layer contributes to ``dL/dx``, so the gradients must be summed. ``g`` sits after a
row-parallel layer's partial sums. They are mirror images: what one does forward, the
other does backward. (What they cost is measured by the communicator, not here.)
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.autodiff.tensor import Tensor


def _all_reduce(arr: Any, group: Any) -> Any:
    """Sum ``arr`` (a fresh copy) over ``group``."""
    out = arr.copy()
    if group.size() > 1:
        group.pg.all_reduce(out)
    return out


class CopyToTensorParallelRegion(Function):
    """f: z = x;  dL/dx = Σ_ranks g (every rank's slice of the next layer used x)"""

    @staticmethod
    def forward(ctx: Context, x: Any, group: Any = None) -> Any:
        ctx.group = group
        return x

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return _all_reduce(grad, ctx.group)


class ReduceFromTensorParallelRegion(Function):
    """g: z = Σ_ranks x (partial sums of a row-parallel layer);  dL/dx = g"""

    @staticmethod
    def forward(ctx: Context, x: Any, group: Any = None) -> Any:
        return _all_reduce(x, group)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad


class GatherFromTensorParallelRegion(Function):
    """z = concat_ranks(x) on the last dim;  dL/dx = this rank's slice of g"""

    @staticmethod
    def forward(ctx: Context, x: Any, group: Any = None) -> Any:
        n, width = group.size(), x.shape[-1]
        ctx.lo, ctx.hi = group.rank() * width, (group.rank() + 1) * width
        if n == 1:
            return x
        parts = group.pg.all_gather(array_module(x).ascontiguousarray(x))  # (n, *x.shape)
        return array_module(x).concatenate(list(parts), axis=-1)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad[..., ctx.lo : ctx.hi]


def copy_to_tensor_parallel_region(x: Tensor, group: Any) -> Tensor:
    """``f``: identity forward, ``all_reduce`` of the gradient backward."""
    return CopyToTensorParallelRegion.apply(x, group=group)


def reduce_from_tensor_parallel_region(x: Tensor, group: Any) -> Tensor:
    """``g``: ``all_reduce`` forward, identity backward."""
    return ReduceFromTensorParallelRegion.apply(x, group=group)


def gather_from_tensor_parallel_region(x: Tensor, group: Any) -> Tensor:
    """Concatenate every rank's slice on the last dim; backward keeps this rank's slice."""
    return GatherFromTensorParallelRegion.apply(x, group=group)
