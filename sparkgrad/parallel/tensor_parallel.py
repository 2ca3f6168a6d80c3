"""Megatron-style tensor parallelism: one layer's matmul split over the ranks of a group.

A dense layer ``y = x Wᵀ + b`` (``W`` of shape ``(out, in)``) can be cut two ways:

- **column parallel**: rank ``r`` keeps rows ``r`` of ``W`` (a slice of the *output*
  features) and the same slice of ``b``; from the full ``x`` it computes its slice of ``y``.
- **row parallel**: rank ``r`` keeps columns ``r`` of ``W`` (a slice of the *input*
  features); from its slice of ``x`` it computes a *partial sum* of ``y``. The partial
  sums are added with one ``all_reduce``; the bias is added once, after the sum.

Column then row is the classic MLP block: the column layer's output slice is exactly the
row layer's input slice, and an elementwise activation (ReLU) between them needs no
communication. The whole block costs one ``all_reduce`` in forward and one in backward.

Two conjugate ops put the communication into the autograd graph (Megatron's ``f`` and
``g``, as in picotron)::

    op                                   forward          backward
    copy_to_tensor_parallel_region (f)   identity         all_reduce(grad)
    reduce_from_tensor_parallel_region   all_reduce(x)    identity
    gather_from_tensor_parallel_region   all_gather(x)    keep own slice of grad

``f`` sits where a replicated input enters a column layer: every rank's slice of the
layer contributes to ``dL/dx``, so the gradients must be summed. ``g`` sits after the row
layer's partial sums. They are mirror images: what one does forward, the other does
backward.

Every rank builds the *full* layer from the same seed and keeps its slice
(:meth:`ColumnParallelDense.from_dense`), so the split layers compute what the unsplit
one does, and SGD or Adam (elementwise updates) on the slices trains what one process
trains on the whole.
"""

from __future__ import annotations

import time
from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.autodiff.nn.linear import DenseLayer
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.nn.parameter import Parameter
from sparkgrad.autodiff.ops.neural import Linear as _LinearOp
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError


def _all_reduce(arr: Any, group: Any, timeline: Any) -> Any:
    """Sum ``arr`` (a fresh copy) over ``group``; record a ``comm`` span and bytes sent."""
    out = arr.copy()
    n = group.size()
    if n == 1:
        return out
    start = time.perf_counter()
    group.pg.all_reduce(out)
    if timeline is not None:  # a ring all_reduce sends 2(n-1)/n of the buffer per rank
        timeline.add("comm", start, time.perf_counter() - start, "tp all_reduce")
        timeline.bytes_sent += 2 * (n - 1) * out.nbytes // n
    return out


class CopyToTensorParallelRegion(Function):
    """f: z = x;  dL/dx = Σ_ranks g (every rank's slice of the next layer used x)"""

    @staticmethod
    def forward(ctx: Context, x: Any, group: Any = None, timeline: Any = None) -> Any:
        ctx.group, ctx.timeline = group, timeline
        return x

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return _all_reduce(grad, ctx.group, ctx.timeline)


class ReduceFromTensorParallelRegion(Function):
    """g: z = Σ_ranks x (partial sums of a row-parallel layer);  dL/dx = g"""

    @staticmethod
    def forward(ctx: Context, x: Any, group: Any = None, timeline: Any = None) -> Any:
        return _all_reduce(x, group, timeline)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad


class GatherFromTensorParallelRegion(Function):
    """z = concat_ranks(x) on the last dim;  dL/dx = this rank's slice of g"""

    @staticmethod
    def forward(ctx: Context, x: Any, group: Any = None, timeline: Any = None) -> Any:
        n, width = group.size(), x.shape[-1]
        ctx.lo, ctx.hi = group.rank() * width, (group.rank() + 1) * width
        if n == 1:
            return x
        start = time.perf_counter()
        parts = group.pg.all_gather(array_module(x).ascontiguousarray(x))  # (n, *x.shape)
        if timeline is not None:  # a ring all_gather sends (n-1)/n of the result per rank
            timeline.add("comm", start, time.perf_counter() - start, "tp all_gather")
            timeline.bytes_sent += (n - 1) * parts.nbytes // n
        return array_module(x).concatenate(list(parts), axis=-1)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad[..., ctx.lo : ctx.hi]


def copy_to_tensor_parallel_region(x: Tensor, group: Any, timeline: Any = None) -> Tensor:
    """``f``: identity forward, ``all_reduce`` of the gradient backward."""
    return CopyToTensorParallelRegion.apply(x, group=group, timeline=timeline)


def reduce_from_tensor_parallel_region(x: Tensor, group: Any, timeline: Any = None) -> Tensor:
    """``g``: ``all_reduce`` forward, identity backward."""
    return ReduceFromTensorParallelRegion.apply(x, group=group, timeline=timeline)


def gather_from_tensor_parallel_region(x: Tensor, group: Any, timeline: Any = None) -> Tensor:
    """Concatenate every rank's slice on the last dim; backward keeps this rank's slice."""
    return GatherFromTensorParallelRegion.apply(x, group=group, timeline=timeline)


def shard_range(size: int, group: Any, what: str) -> tuple[int, int]:
    """This rank's ``[lo, hi)`` of ``size`` features split evenly over ``group``."""
    n = group.size()
    if size % n:
        raise ConfigError(
            f"tensor parallelism over {n} ranks splits {what} evenly: expected a width "
            f"divisible by {n}, found {size}; pick a tensor-parallel size that divides it"
        )
    step = size // n
    return group.rank() * step, (group.rank() + 1) * step


class _ParallelDense(Module):
    """What both split layers share: the group, the slice bookkeeping, an optional timeline.

    ``shard_dims`` maps each parameter name to the dimension it is split along (absent:
    replicated on every rank), which is all a strategy needs to gather the full tensor or
    cut a full one again.
    """

    shard_dims: dict[str, int] = {}

    def _setup(self, linear: DenseLayer, group: Any, sliced: Any) -> None:
        xp = array_module(linear.weight.array)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.group, self.timeline = group, None
        self.weight = Parameter(xp.ascontiguousarray(sliced(linear.weight.array)))
        if linear.bias is None:
            self.register_parameter("bias", None)
        elif "bias" in self.shard_dims:
            self.bias = Parameter(xp.ascontiguousarray(sliced(linear.bias.array)))
        else:
            self.bias = Parameter(linear.bias.array.copy())

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, tp={self.group.size()}, "
            f"local={tuple(self.weight.shape)}"
        )


class ColumnParallelDense(_ParallelDense):
    """``y[..., slice] = f(x) W[slice]ᵀ + b[slice]``: this rank's slice of the outputs.

    With ``gather_output=True`` the slices are gathered, so every rank gets the full ``y``.
    Build it with :meth:`from_dense` from a full layer made from the seed.
    """

    shard_dims = {"weight": 0, "bias": 0}

    @classmethod
    def from_dense(
        cls, linear: DenseLayer, group: Any, gather_output: bool = False
    ) -> ColumnParallelDense:
        """Keep this rank's rows of ``linear.weight`` (and slice of ``linear.bias``)."""
        lo, hi = shard_range(linear.out_features, group, "the output features")
        layer = cls()
        layer._setup(linear, group, lambda a: a[lo:hi])
        layer.gather_output = gather_output
        return layer

    def forward(self, x: Tensor) -> Tensor:
        x = copy_to_tensor_parallel_region(x, self.group, self.timeline)
        y = _LinearOp.apply(x, self.weight, self.bias)
        if self.gather_output:
            y = gather_from_tensor_parallel_region(y, self.group, self.timeline)
        return y


class RowParallelDense(_ParallelDense):
    """``y = g(x[..., slice] W[:, slice]ᵀ) + b``: partial sums added by one all_reduce.

    The input is this rank's slice of the features (what a column-parallel layer
    produces); the bias is whole on every rank and added once, after the sum.
    """

    shard_dims = {"weight": 1}

    @classmethod
    def from_dense(cls, linear: DenseLayer, group: Any) -> RowParallelDense:
        """Keep this rank's columns of ``linear.weight``; the bias stays whole."""
        lo, hi = shard_range(linear.in_features, group, "the input features")
        layer = cls()
        layer._setup(linear, group, lambda a: a[:, lo:hi])
        return layer

    def forward(self, x: Tensor) -> Tensor:
        partial = _LinearOp.apply(x, self.weight, None)
        y = reduce_from_tensor_parallel_region(partial, self.group, self.timeline)
        return y + self.bias if self.bias is not None else y
