"""Chapter 6 exercise — the ZeRO step: reduce-scatter the gradients, step the shard,
all-gather the parameters.

Data parallelism keeps on each of ``N`` ranks the full parameters, gradients and
optimizer state. ZeRO stage 2 keeps the training identical (every rank trains on its
rows of the global batch and takes the single process's step) but holds only ``1/N`` of
the gradients and of the optimizer state: each rank updates its own *shard* of the
parameters and shares the result.

The parameters live end to end in one flat buffer, padded with zeros to a length ``L``
divisible by ``N``; rank ``r`` owns the slice ``[r L/N, (r+1) L/N)``. After
``loss.backward()`` on this rank's rows, every parameter ``p`` of ``zero.model`` has its
local ``p.grad``. What you have:

- ``unit = zero.units[0]``: the one shard unit of stage 2;
- ``unit.layout.flatten(arrays)``: per-parameter arrays end to end in a new flat ``(L,)``
  array, padding zeroed (``None`` counts as zeros);
- ``unit.full``: the flat parameters, shape ``(L,)``; the model's parameters are views
  into it, so writing ``unit.full`` updates the model;
- ``unit.shard``: this rank's slice of ``unit.full`` as a leaf Tensor — the optimizer's
  one and only parameter; ``unit.shard.grad`` is what the optimizer reads;
- ``zero.pg.reduce_scatter(flat, op="avg")``: this rank's block ``(L/N,)`` of the
  average of ``flat`` over the ranks;
- ``zero.pg.all_gather(block, out=unit.full.reshape(N, -1))``: every rank's ``block``
  into row ``i`` of ``out``;
- ``zero.optimizer.step()``: SGD or Adam on ``unit.shard`` (elementwise, so stepping a
  slice of the flat parameters is stepping the parameters);
- ``Tensor._wrap(array)``: an array as a Tensor (for ``unit.shard.grad``).

The project's version is in ``sparkgrad/parallel/zero/strategy.py`` (``ZeRO.train_step`` and
``_reduce_gradients``; the collectives of a unit are in ``zero3_params.py``). Check yours:
``python -m pytest -m exercise_zero_step --learner``.
"""

from __future__ import annotations

from typing import Any

from exercises.reference import Tensor  # noqa: F401


def zero_step(zero: Any) -> None:
    """ZeRO-2's step on this rank, after ``loss.backward()``; every rank calls it at once.

    1. Flatten the parameters' gradients into one padded flat array.
    2. Reduce-scatter it with AVG: this rank gets the averaged gradient of its shard —
       half the traffic of an all-reduce, and the only gradient the rank keeps. Make it
       ``unit.shard.grad``, and drop every ``p.grad`` (set it to None): stage 2 does not
       hold full gradients.
    3. Step the optimizer: it updates this rank's shard (in place in ``unit.full``).
    4. All-gather the shards into ``unit.full``, so every rank holds every updated
       parameter for the next forward.
    """
    raise NotImplementedError("exercise: zero_step in exercises/ch06_zero_step.py")
