"""Megatron-style tensor-parallel layers: one layer's matmul split over the ranks of a group.

A dense layer ``y = x Wᵀ + b`` (``W`` of shape ``(out, in)``) can be cut two ways:

- **column parallel**: rank ``r`` keeps rows ``r`` of ``W`` (a slice of the *output*
  features) and the same slice of ``b``; from the full ``x`` it computes its slice of ``y``.
- **row parallel**: rank ``r`` keeps columns ``r`` of ``W`` (a slice of the *input*
  features); from its slice of ``x`` it computes a *partial sum* of ``y``. The partial
  sums are added with one ``all_reduce``; the bias is added once, after the sum.

Column then row is the classic MLP block: the column layer's output slice is exactly the
row layer's input slice, and an elementwise activation (ReLU) between them needs no
communication. The whole block costs one ``all_reduce`` in forward and one in backward.

The communication sits in two conjugate autograd ops, ``f`` and ``g``
(:mod:`~sparkgrad.parallel.tensor.comm_ops`): ``f`` before a column layer (identity
forward, all-reduce of the gradient backward), ``g`` after a row layer (all-reduce
forward, identity backward).

With ``sequence_parallel=True`` the same layers sit between sequence-sharded regions: the
column layer all-gathers its ``(N, T/tp, d)`` input along the sequence instead of ``f``,
the row layer reduce-scatters its partial sums along the sequence instead of ``g`` (and
adds its bias to this rank's positions only, so that bias's gradient is partial: the
strategy sums it over the ranks after backward).

Every rank builds the *full* layer from the same seed and keeps its slice
(:meth:`ColumnParallelDense.from_dense`), so the split layers compute what the unsplit
one does, and SGD or Adam (elementwise updates) on the slices trains what one process
trains on the whole.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.autodiff.nn.linear import DenseLayer
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.nn.parameter import Parameter
from sparkgrad.autodiff.ops.neural import Linear as _LinearOp
from sparkgrad.autodiff.ops.neural import rows
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.tensor.comm_ops import (
    all_gather_along,
    copy_to_tensor_parallel_region,
    gather_from_sequence_parallel_region,
    gather_from_tensor_parallel_region,
    reduce_from_tensor_parallel_region,
    reduce_scatter_along,
    reduce_scatter_to_sequence_parallel_region,
)
from sparkgrad.parallel.tensor.splits import Split


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


class SequenceGatherLinear(Function):
    """z = AG(x) Wᵀ + b;  dL/dx = RS(g W), dL/dW = gᵀ AG(x), dL/db = Σ g   (AG/RS along T)

    The all-gather of sequence parallelism fused with the column-parallel matmul, as
    Megatron-LM fuses it: forward keeps only this rank's ``(N, T/tp, d)`` shard ``x`` (not
    the gathered ``(N, T, d)``, which ``gather_from_sequence_parallel_region`` followed by
    a plain Linear would keep for ``dL/dW``) and backward all-gathers it once more. One
    extra all-gather buys ``tp`` times less memory for every column layer's input.
    """

    @staticmethod
    def forward(ctx: Context, x: Any, weight: Any, bias: Any = None, group: Any = None) -> Any:
        ctx.save_for_backward(x, weight)
        ctx.group = group
        full = all_gather_along(x, group, 1) if group.size() > 1 else x
        out = rows(full) @ weight.T
        if bias is not None:
            out += bias
        return out.reshape(*full.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        x, weight = ctx.saved_tensors
        group, n = ctx.group, ctx.group.size()
        need_x, need_w, need_b = (ctx.needs_input_grad + (False,))[:3]
        full = all_gather_along(x, group, 1) if n > 1 and need_w else x  # gathered again
        g2 = rows(grad)
        gx = None
        if need_x:  # every rank's slice of the outputs used every position: reduce-scatter
            gx_full = (g2 @ weight).reshape(grad.shape[:-1] + (weight.shape[1],))
            gx = reduce_scatter_along(gx_full, group, 1) if n > 1 else gx_full
        gw = g2.T @ rows(full) if need_w else None
        gb = g2.sum(axis=0) if need_b else None
        return gx, gw, gb


def column_parallel_linear(
    x: Tensor, weight: Any, bias: Any, group: Any, sequence_parallel: bool, regather: bool = True
) -> Tensor:
    """This rank's output slice of ``x Wᵀ + b`` from a replicated ``x`` (``f`` first) or from
    sequence shards (all-gather first: fused, saving the shard, when ``regather``)."""
    if not sequence_parallel:
        return _LinearOp.apply(copy_to_tensor_parallel_region(x, group), weight, bias)
    if regather:
        return SequenceGatherLinear.apply(x, weight, bias, group=group)
    return _LinearOp.apply(gather_from_sequence_parallel_region(x, group), weight, bias)


class _ParallelDense(Module):
    """What both split layers share: the group and the slice bookkeeping.

    ``shard_dims`` maps each parameter name to its
    :class:`~sparkgrad.parallel.tensor.splits.Split` (absent: replicated on every rank),
    which is all a strategy needs to gather the full tensor or cut a full one again.
    """

    shard_dims: dict[str, Split] = {}

    def _setup(
        self, linear: DenseLayer, group: Any, sliced: Any, sequence_parallel: bool = False
    ) -> None:
        xp = array_module(linear.weight.array)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.group, self.sequence_parallel = group, sequence_parallel
        # copies, not views: a view of rows is already contiguous, and would keep the whole
        # (out, in) matrix alive on every rank (ascontiguousarray returns it as it is)
        self.weight = Parameter(xp.array(sliced(linear.weight.array), order="C", copy=True))
        if linear.bias is None:
            self.register_parameter("bias", None)
        elif "bias" in self.shard_dims:
            self.bias = Parameter(xp.array(sliced(linear.bias.array), order="C", copy=True))
        else:
            self.bias = Parameter(linear.bias.array.copy())

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, tp={self.group.size()}, "
            f"local={tuple(self.weight.shape)}"
            + (", sequence_parallel=True" if self.sequence_parallel else "")
        )


class ColumnParallelDense(_ParallelDense):
    """``y[..., slice] = f(x) W[slice]ᵀ + b[slice]``: this rank's slice of the outputs.

    With ``gather_output=True`` the slices are gathered, so every rank gets the full ``y``.
    Build it with :meth:`from_dense` from a full layer made from the seed.
    """

    shard_dims = {"weight": Split(0), "bias": Split(0)}

    @classmethod
    def from_dense(
        cls,
        linear: DenseLayer,
        group: Any,
        gather_output: bool = False,
        sequence_parallel: bool = False,
        sizes: tuple[int, ...] | None = None,
    ) -> ColumnParallelDense:
        """Keep this rank's rows of ``linear.weight`` (and slice of ``linear.bias``).

        ``sizes``: every rank's number of rows when they are not even (a vocabulary
        split by :func:`~sparkgrad.parallel.tensor.vocab.vocab_sizes`)."""
        layer = cls()
        if sizes is None:
            lo, hi = shard_range(linear.out_features, group, "the output features")
        else:
            if len(sizes) != group.size() or sum(sizes) != linear.out_features:
                raise ConfigError(
                    f"expected {group.size()} row counts adding up to {linear.out_features} "
                    f"output features, found sizes={tuple(sizes)}"
                )
            lo = sum(sizes[: group.rank()])
            hi = lo + sizes[group.rank()]
            layer.shard_dims = dict.fromkeys(("weight", "bias"), Split(0, sizes=tuple(sizes)))
        layer._setup(linear, group, lambda a: a[lo:hi], sequence_parallel)
        layer.gather_output = gather_output
        return layer

    regather_input = True  # sequence parallel: keep the input shard, all-gather it again

    def forward(self, x: Tensor) -> Tensor:
        y = column_parallel_linear(
            x, self.weight, self.bias, self.group, self.sequence_parallel, self.regather_input
        )
        if self.gather_output:
            y = gather_from_tensor_parallel_region(y, self.group)
        return y


class RowParallelDense(_ParallelDense):
    """``y = g(x[..., slice] W[:, slice]ᵀ) + b``: partial sums added by one all_reduce.

    The input is this rank's slice of the features (what a column-parallel layer
    produces); the bias is whole on every rank and added once, after the sum.
    """

    shard_dims = {"weight": Split(1)}

    @classmethod
    def from_dense(
        cls, linear: DenseLayer, group: Any, sequence_parallel: bool = False
    ) -> RowParallelDense:
        """Keep this rank's columns of ``linear.weight``; the bias stays whole."""
        lo, hi = shard_range(linear.in_features, group, "the input features")
        layer = cls()
        layer._setup(linear, group, lambda a: a[:, lo:hi], sequence_parallel)
        return layer

    def forward(self, x: Tensor) -> Tensor:
        partial = _LinearOp.apply(x, self.weight, None)
        if self.sequence_parallel:  # sum the partial sums, keep this rank's T/tp positions
            y = reduce_scatter_to_sequence_parallel_region(partial, self.group)
        else:
            y = reduce_from_tensor_parallel_region(partial, self.group)
        return y + self.bias if self.bias is not None else y
