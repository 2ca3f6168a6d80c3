"""``MasterShard``: the fp32 master copy of one 16-bit parameter shard, and its two casts.

**Why master weights.** A 16-bit float has 11 (float16) or 8 (bfloat16) significant bits.
An update ``lr · g`` smaller than half the gap between a weight and its next representable
neighbour rounds away: a float16 weight of 1.0 has the neighbours 1 - 2⁻¹¹ and 1 + 2⁻¹⁰,
so every step smaller than about 2.4e-4 leaves it exactly 1.0, and training stalls long
before it should. So the weights the optimizer updates are kept in
fp32 (the *master* weights), and the model computes with a 16-bit copy of them, cast down
after every step. The ZeRO paper (Rajbhandari et al., 2019) counts exactly this, per
parameter, with Adam (Ψ parameters, ``N`` data-parallel ranks)::

    16-bit parameters    2Ψ    what forward and backward read
    16-bit gradients     2Ψ    what backward writes and the ranks reduce
    fp32 master          4Ψ  \\
    fp32 exp_avg         4Ψ   } optimizer state, K = 12 bytes per parameter
    fp32 exp_avg_sq      4Ψ  /
                        ---
                        16Ψ    a data-parallel rank; ZeRO shards the last 12Ψ (stage 1),
                               then the gradients (stage 2), then the parameters (stage 3)

Each rank keeps the master copy of *its shard only*, so the optimizer (master + moments)
costs it 12Ψ/N: it is optimizer state, and ZeRO-1 already shards that.

**The step**, for this rank's shard (``unit.shard`` is the 16-bit parameter shard)::

    backward                    16-bit gradients (scaled by the loss scale under fp16)
    reduce(-scatter)            average over the ranks, in 16 bits: 2-byte elements travel
    grad_to_master()            master.grad = fp32(shard.grad)      (upcast, still scaled)
    optimizer.step()            GradScaler: unscale in fp32, check inf/NaN on every rank,
                                then the optimizer steps the fp32 master shard (or skips)
    params_from_master()        shard = 16-bit(master)              (cast down)
    all_gather                  every rank gets every updated 16-bit shard (stages 1, 2;
                                stage 3 gathers a layer's shards when it runs)

A skipped step (an fp16 gradient overflowed) leaves the master unchanged, and so the cast
down gives back the very same 16-bit values: every rank stays where it was. The fp32
gradient exists only inside the step; between steps a rank holds the 16-bit one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.tensor import Tensor


class MasterShard:
    """fp32 master weights of one 16-bit shard (see the module docstring).

    Args:
        values: this rank's shard in fp32 (copied: the master owns its memory).
        shard: the 16-bit leaf tensor the model reads (``ShardUnit.shard``).
    """

    def __init__(self, values: Any, shard: Tensor) -> None:
        self.shard = shard
        self.tensor = Tensor._wrap(values.astype(np.float32, copy=True))  # what the optimizer steps
        self.tensor.requires_grad = True

    def grad_to_master(self) -> None:
        """``master.grad = fp32(shard.grad)``: the optimizer (and the scaler) see fp32."""
        g = self.shard.grad
        self.tensor.grad = None if g is None else Tensor._wrap(g.array.astype(np.float32))

    def params_from_master(self) -> None:
        """``shard = 16-bit(master)`` in place, and the fp32 gradient is dropped."""
        self.shard.array[...] = self.tensor.array.astype(self.shard.dtype)
        self.tensor.grad = None

    def load(self, values: Any) -> None:
        """New fp32 values for the master (and so for the 16-bit shard)."""
        self.tensor.array[...] = values
        self.params_from_master()
