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


class ShardUnit:
    """Parameters sharded together over ``pg`` (see the module docstring).

    Args:
        names: the parameters' keys in the full model's state dict.
        arrays: their values (rank 0's are broadcast, so every rank starts the same).
        pg: the data-parallel process group.
        keep_full: keep the full flat buffer (stages 1, 2) or only this rank's shard (3).
    """

    def __init__(
        self,
        names: list[str],
        arrays: list[Any],
        pg: ProcessGroup,
        keep_full: bool,
    ) -> None:
        self.names, self.pg = names, pg
        self.layout = FlatBuffer.like(arrays, pg.size)
        full = self.layout.flatten(arrays)
        pg.broadcast(full, root=0)  # every rank starts from rank 0's values
        mine = self.layout.shard(full, pg.rank)
        self.full = full if keep_full else None
        self.shard = Tensor._wrap(mine if keep_full else mine.copy())  # a view, or our own copy
        self.shard.requires_grad = True

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
        return self.pg.reduce_scatter(full, op=ReduceOp.AVG, out=out)

    # ---- whole tensors, for checkpoints ----------------------------------------------------
    def full_arrays(self, shard: Any = None) -> list[np.ndarray]:
        """Per-parameter NumPy copies of the gathered ``shard`` (default: the parameters)."""
        flat = self.full if shard is None and self.full is not None else self.gather(shard)
        return [np.array(to_numpy(v)) for v in self.layout.views(flat)]

    def shard_of(self, arrays: list[Any]) -> np.ndarray:
        """This rank's shard of full per-parameter ``arrays`` (a fresh flat copy)."""
        flat = self.layout.flatten([np.asarray(a, dtype=self.layout.dtype) for a in arrays])
        return self.layout.shard(flat, self.pg.rank).copy()

    def load(self, arrays: list[Any]) -> None:
        """Overwrite the parameters with full per-parameter ``arrays``."""
        if self.full is not None:  # the shard is a view into it
            flat = self.layout.flatten([np.asarray(a) for a in arrays])
            self.full[...] = array_module(self.full).asarray(flat)
        else:
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
