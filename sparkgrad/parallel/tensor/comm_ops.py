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

Sequence parallelism (Megatron-LM, Korthikanti et al. 2022) swaps f and g for a second
mirror-image pair that works along the *sequence* dim: between the split layers the
activations are kept as ``(N, T/tp, d)`` shards, one per rank::

    op                                           forward                 backward
    gather_from_sequence_parallel_region         all_gather along T      reduce_scatter along T
    reduce_scatter_to_sequence_parallel_region   reduce_scatter along T  all_gather along T

The all-gather replaces ``f`` before a column-parallel layer (it needs the whole sequence),
the reduce-scatter replaces ``g`` after a row-parallel one (sum the partial sums *and*
keep only this rank's positions). An all-reduce *is* a reduce-scatter followed by an
all-gather, so the bytes moved are the same; what changes is that LayerNorm, dropout and
the residual adds in between hold ``1/tp`` of the activations. (The column layers fuse the
all-gather with their matmul to keep only the shard for backward:
:class:`~sparkgrad.parallel.tensor.layers.SequenceGatherLinear`.)
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ShapeError


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


def all_gather_along(x: Any, group: Any, dim: int) -> Any:
    """Every rank's ``x`` concatenated along ``dim`` (rank order)."""
    xp = array_module(x)
    parts = group.pg.all_gather(xp.ascontiguousarray(x))  # (n, *x.shape)
    return xp.concatenate(list(parts), axis=dim)


def reduce_scatter_along(x: Any, group: Any, dim: int) -> Any:
    """Block ``rank`` (of ``n`` along ``dim``) of the sum of every rank's ``x``."""
    n = group.size()
    if x.shape[dim] % n:
        raise ShapeError(
            f"sequence parallelism over {n} ranks splits dim {dim} evenly: expected a length "
            f"divisible by {n}, found shape {tuple(x.shape)}"
        )
    xp = array_module(x)
    mine = group.pg.reduce_scatter(xp.ascontiguousarray(xp.moveaxis(x, dim, 0)))
    return xp.ascontiguousarray(xp.moveaxis(mine, 0, dim))


class GatherFromSequenceParallelRegion(Function):
    """z = concat_ranks(x) along T;  dL/dx = (Σ_ranks g)[this rank's T block] (reduce-scatter)"""

    @staticmethod
    def forward(ctx: Context, x: Any, group: Any = None, dim: int = 1) -> Any:
        ctx.group, ctx.dim = group, dim
        return x if group.size() == 1 else all_gather_along(x, group, dim)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        # every rank's column-parallel slice used the whole z: their gradients add up
        return grad if ctx.group.size() == 1 else reduce_scatter_along(grad, ctx.group, ctx.dim)


class ReduceScatterToSequenceParallelRegion(Function):
    """z = (Σ_ranks x)[this rank's T block] (reduce-scatter);  dL/dx = concat_ranks(g) along T"""

    @staticmethod
    def forward(ctx: Context, x: Any, group: Any = None, dim: int = 1) -> Any:
        ctx.group, ctx.dim = group, dim
        return x.copy() if group.size() == 1 else reduce_scatter_along(x, group, dim)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        # each rank's partial sum reached every position: it needs every block's gradient
        return grad if ctx.group.size() == 1 else all_gather_along(grad, ctx.group, ctx.dim)


def copy_to_tensor_parallel_region(x: Tensor, group: Any) -> Tensor:
    """``f``: identity forward, ``all_reduce`` of the gradient backward."""
    return CopyToTensorParallelRegion.apply(x, group=group)


def reduce_from_tensor_parallel_region(x: Tensor, group: Any) -> Tensor:
    """``g``: ``all_reduce`` forward, identity backward."""
    return ReduceFromTensorParallelRegion.apply(x, group=group)


def gather_from_tensor_parallel_region(x: Tensor, group: Any) -> Tensor:
    """Concatenate every rank's slice on the last dim; backward keeps this rank's slice."""
    return GatherFromTensorParallelRegion.apply(x, group=group)


def gather_from_sequence_parallel_region(x: Tensor, group: Any, dim: int = 1) -> Tensor:
    """All-gather the sequence shards along ``dim`` forward; reduce-scatter backward."""
    return GatherFromSequenceParallelRegion.apply(x, group=group, dim=dim)


def reduce_scatter_to_sequence_parallel_region(x: Tensor, group: Any, dim: int = 1) -> Tensor:
    """Sum the partial sums and keep this rank's sequence shard forward; all-gather backward."""
    return ReduceScatterToSequenceParallelRegion.apply(x, group=group, dim=dim)
