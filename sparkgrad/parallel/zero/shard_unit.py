"""Sharded parameter units for ZeRO, and stage 3's Linear that gathers its weights just in time.

A :class:`ShardUnit` is a group of parameters sharded together: one padded
:class:`~sparkgrad.parallel.zero.flat_buffer.FlatBuffer` layout, and this rank's shard of it as
one flat leaf tensor (``unit.shard``) that the optimizer updates. ZeRO-1 and ZeRO-2 use
one unit for the whole model and keep the full flat buffer too (``keep_full``): the
model's parameters are views into it. ZeRO-3 uses one unit per layer and keeps only the
shard (:mod:`~sparkgrad.parallel.zero.stage3` cuts a model into units); for a Linear
layer the full weights exist only while its op runs:

    forward of layer i:   all_gather its shards -> W, b -> y = x Wᵀ + b -> free W, b
    backward of layer i:  all_gather again -> W -> dx = g W, dW = gᵀ x, db = Σ g
                          -> reduce_scatter(AVG) [dW, db] -> this rank's gradient shard

:class:`GatheredLinear` is that forward and backward, one autograd op: it saves only
``x`` for backward (not ``W``), which is what lets the full weights go. The gradient it
returns for its ``shard`` input is already averaged over the ranks, so after
``loss.backward()`` each ``unit.shard.grad`` is this rank's slice of the data-parallel
gradient and the optimizer can step at once. Every other layer goes through the generic
unit of :mod:`~sparkgrad.parallel.zero.stage3` (hooks around the layer's own forward).

In the paper's precision (``dtype=float16`` or ``bfloat16``) the flat buffer, the shard and
so everything gathered and reduced are 16-bit, and the optimizer steps an fp32 copy of the
shard instead (``unit.optimized``, :mod:`~sparkgrad.parallel.zero.master_weights`). 16-bit
gradients are averaged as ``Σ (g / N)`` rather than ``(Σ g) / N``: no partial sum overflows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module, to_numpy
from sparkgrad.autodiff.function import Context, Function
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.comms.process_group import ProcessGroup
from sparkgrad.comms.reduce_ops import ReduceOp
from sparkgrad.parallel.zero.flat_buffer import FlatBuffer
from sparkgrad.parallel.zero.master_weights import MasterShard


class ShardUnit:
    """Parameters sharded together over ``pg`` (see the module docstring).

    Args:
        names: the parameters' keys in the full model's state dict.
        arrays: their values (rank 0's are broadcast, so every rank starts the same).
        pg: the data-parallel process group.
        keep_full: keep the full flat buffer (stages 1, 2) or only this rank's shard (3).
        dtype: what the model computes with (default: the arrays' own). A 2-byte dtype
            (float16, bfloat16) makes the flat buffer and the shard 16-bit and keeps this
            rank's shard in fp32 beside them, as ``master``
            (:class:`~sparkgrad.parallel.zero.master_weights.MasterShard`).
    """

    def __init__(
        self,
        names: list[str],
        arrays: list[Any],
        pg: ProcessGroup,
        keep_full: bool,
        dtype: Any = None,
    ) -> None:
        self.names, self.pg = names, pg
        exact = FlatBuffer.like(arrays, pg.size)  # the arrays' own dtype (fp32)
        full = exact.flatten(arrays)
        pg.broadcast(full, root=0)  # every rank starts from rank 0's values
        self.master: MasterShard | None = None
        self.layout = exact
        if dtype is not None and np.dtype(dtype) != exact.dtype:
            self.layout = FlatBuffer(exact.shapes, pg.size, dtype)
            master_values = exact.shard(full, pg.rank)
            full = full.astype(self.layout.dtype)  # the 16-bit copy the model computes with
        mine = self.layout.shard(full, pg.rank)
        self.full = full if keep_full else None
        self.shard = Tensor._wrap(mine if keep_full else mine.copy())  # a view, or our own copy
        self.shard.requires_grad = True
        if self.layout is not exact:
            self.master = MasterShard(master_values, self.shard)

    @property
    def optimized(self) -> Tensor:
        """The tensor the optimizer steps: the fp32 master, or the shard itself."""
        return self.shard if self.master is None else self.master.tensor

    # ---- collectives on this unit --------------------------------------------------------
    def gather(self, shard: Any = None, out: Any = None) -> Any:
        """All ranks' shards of ``shard`` (default: the parameters) as one full flat array."""
        shard = self.shard.array if shard is None else shard
        if out is None:
            out = array_module(shard).empty(self.layout.padded_numel, dtype=shard.dtype)
        n, s = self.pg.size, self.layout.shard_numel
        self.pg.all_gather(shard, out=out.reshape(n, s))
        return out

    def reduce_scatter(self, full: Any, out: Any = None) -> Any:
        """This rank's shard of the average over ranks of the flat array ``full``."""
        return self.pg.reduce_scatter(*self._averaging(full), out=out)

    def all_reduce(self, full: Any) -> Any:
        """``full`` averaged over the ranks, in place."""
        self.pg.all_reduce(*self._averaging(full))
        return full

    def _averaging(self, full: Any) -> tuple[Any, ReduceOp]:
        """``(array, op)`` whose reduction is the average. 16-bit arrays are divided by N
        first and summed, as DeepSpeed does: a ring's partial sums of N scaled fp16
        gradients could pass 65504 (fp16's largest) where their average does not."""
        if full.dtype.itemsize > 2:
            return full, ReduceOp.AVG  # summed, divided once at the end
        full /= full.dtype.type(self.pg.size)
        return full, ReduceOp.SUM

    # ---- whole tensors, for checkpoints ----------------------------------------------------
    def full_arrays(self, shard: Any = None) -> list[np.ndarray]:
        """Per-parameter NumPy copies of the gathered ``shard`` (default: the parameters,
        in fp32: the master weights when the model computes in 16 bits)."""
        if shard is None and self.master is not None:
            shard = self.master.tensor.array
        flat = self.full if shard is None and self.full is not None else self.gather(shard)
        return [np.array(to_numpy(v)) for v in self.layout.views(flat)]

    def shard_of(self, arrays: list[Any], dtype: Any = None) -> np.ndarray:
        """This rank's shard of full per-parameter ``arrays`` (a fresh flat copy), in
        ``dtype`` (default: the layout's)."""
        dtype = self.layout.dtype if dtype is None else dtype
        layout = FlatBuffer(self.layout.shapes, self.pg.size, dtype)
        flat = layout.flatten([np.asarray(a, dtype=layout.dtype) for a in arrays])
        return layout.shard(flat, self.pg.rank).copy()

    def load(self, arrays: list[Any]) -> None:
        """Overwrite the parameters with full per-parameter ``arrays``."""
        if self.master is not None:  # the fp32 master; its shard is cast down from it
            xp = array_module(self.master.tensor.array)
            self.master.load(xp.asarray(self.shard_of(arrays, np.float32)))
        if self.full is not None:  # the shard is a view into it
            exact = None if self.master is None else np.float32  # 16 bits: cast from fp32
            flat = self.layout.flatten([np.asarray(a, dtype=exact) for a in arrays])
            self.full[...] = array_module(self.full).asarray(flat)
        elif self.master is None:
            self.shard.array[...] = array_module(self.shard.array).asarray(self.shard_of(arrays))


class GatheredLinear(Function):
    """z = x @ Wᵀ + b, W and b all-gathered from ``unit`` in forward and again in backward."""

    @staticmethod
    def forward(ctx: Context, x: Any, shard: Any, unit: ShardUnit) -> Any:
        weight, *bias = unit.layout.views(unit.gather())  # a temporary, freed on return
        ctx.save_for_backward(x)  # not the weight: backward gathers it again
        ctx.unit = unit
        out = x @ weight.T
        if bias:
            out += bias[0]
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        (x,) = ctx.saved_tensors
        unit: ShardUnit = ctx.unit
        weight, *bias = unit.layout.views(unit.gather())
        g2 = grad.reshape(-1, grad.shape[-1])
        gx = grad @ weight if ctx.needs_input_grad[0] else None
        grads = [g2.T @ x.reshape(-1, x.shape[-1])] + ([g2.sum(axis=0)] if bias else [])
        full_grad = unit.layout.flatten(grads)  # padding zeroed: it never moves
        return gx, unit.reduce_scatter(full_grad), None


class Zero3Linear(Module):
    """A Linear layer that holds only this rank's shard of its weight and bias."""

    def __init__(self, unit: ShardUnit, in_features: int, out_features: int) -> None:
        super().__init__()
        self.unit, self.in_features, self.out_features = unit, in_features, out_features

    def forward(self, x: Tensor) -> Tensor:
        return GatheredLinear.apply(x, self.unit.shard, self.unit)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"shard={self.unit.layout.shard_numel} of {self.unit.layout.padded_numel}"
        )
