"""An MLP training step as shapes only, split the way each strategy splits it.

The model is :func:`sparkgrad.models.mlp.build_mlp`: ``Linear-ReLU-...-Linear`` from 784
inputs through ``hidden`` to 10 classes, trained with cross-entropy and Adam. One step on a
batch of ``b`` rows does, per ``Linear(i, o)``:

==============  ==========================  ===============================================
op              FLOPs                       bytes moved (float32)
==============  ==========================  ===============================================
forward         ``2 b i o``  (x @ W^T + b)  ``4 (b i + i o + b o)``
backward        ``4 b i o``  (dX and dW)    ``8 (b i + i o + b o)``  (the first layer: no dX)
ReLU f + b      --                          ``5 * 4 b o``  (read/write y; read g, y, write)
Adam            --                          ``12 * 12 * params``  (12 NumPy passes, 2 in 1 out)
==============  ==========================  ===============================================

How the strategies split it (what the strategies under :mod:`sparkgrad.parallel` do; the
collectives are those their process groups record, ``pg.calls()``):

- ``single``: everything on one rank.
- ``data``: each of ``w`` ranks takes ``b / w`` rows, then one all-reduce of the flat
  gradient after the backward (one bucket: the whole MLP is under DDP's 25 MiB).
- ``zero1``: as ``data``, then Adam on a ``1/w`` shard and an all-gather of the parameters.
- ``zero2``: the all-reduce becomes a reduce-scatter (each rank keeps its gradient shard).
- ``zero3``: parameters live sharded; each layer is all-gathered before its forward and again
  before its backward, and its gradient reduce-scattered after its backward.
- ``model`` / ``pipeline``: the ``Linear`` units are cut into ``w`` stages (balanced by
  parameters, :func:`~sparkgrad.parallel.pipeline.partition.partition`), the batch into
  ``micro_batches`` (``model``: 1), activations and their gradients sent stage to stage.
- ``tensor``: the ``Linear`` pairs are column- then row-parallel (every width ``/ w``), the
  whole batch on every rank, one all-reduce after each pair forward (``b x o``) and one
  before every column layer but the first in backward.

Every multi-rank strategy also all-reduces (or broadcasts) the 8-byte loss once per step.
:func:`mlp_plan` turns this into a :class:`~sparkgrad.simulate.schedule.StepPlan` given two
cost functions (compute, communication), so the same workload runs on the measured ``cpu``
device (:mod:`.local`) or on a modelled H100 (the benchmark report's scaling table).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sparkgrad.errors import ConfigError
from sparkgrad.simulate.schedule import StagePlan, StepPlan

STRATEGIES = ("single", "data", "zero1", "zero2", "zero3", "model", "pipeline", "tensor")
ADAM_PASSES = 12  # NumPy calls per parameter tensor in sparkgrad's Adam.step


@dataclass(frozen=True)
class Work:
    """One op of the step: ``kind`` names its per-call overhead (``linear``, ``linear_grad``,
    ``relu``, ``relu_grad``, ``loss``, ``adam``; ``step``: the strategy's own bookkeeping,
    once per step and rank),
    ``calls`` how many of them, ``flops``/``nbytes`` its array work."""

    name: str
    kind: str
    flops: float
    nbytes: float
    calls: int = 1


@dataclass(frozen=True)
class MLPShape:
    """``784 -> hidden... -> 10`` on a batch of ``batch`` rows."""

    hidden: tuple[int, ...]
    batch: int
    n_in: int = 784
    n_out: int = 10

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.n_in, *self.hidden, self.n_out)

    @property
    def layers(self) -> list[tuple[int, int]]:
        return list(zip(self.sizes[:-1], self.sizes[1:]))

    def layer_params(self, i: int) -> int:
        a, b = self.layers[i]
        return a * b + b

    @property
    def parameters(self) -> int:
        return sum(self.layer_params(i) for i in range(len(self.layers)))


Costs = Callable[[list[Work]], float]  # seconds of a list of ops on one rank
CommCost = Callable[[str, float], float]  # (collective, nbytes) -> seconds on the group


def linear_work(i: int, o: int, b: int, first: bool, last: bool) -> tuple[list, list]:
    """Forward and backward ops of one ``Linear(i, o)`` (+ its ReLU unless ``last``)."""
    mm = 4.0 * (b * i + i * o + b * o)
    grad_flops = (2.0 if first else 4.0) * b * i * o
    fwd = [Work(f"linear {i}x{o}", "linear", 2.0 * b * i * o, mm)]
    bwd = [Work(f"linear {i}x{o} grad", "linear_grad", grad_flops, 2 * mm)]
    if not last:
        fwd.append(Work("relu", "relu", 0.0, 8.0 * b * o))
        bwd.insert(0, Work("relu grad", "relu_grad", 0.0, 12.0 * b * o))
    return fwd, bwd


def stages_of(shape: MLPShape, stages: int) -> list[list[int]]:
    """Layer indices per stage, balanced by parameters as ``partition`` balances them."""
    from sparkgrad.parallel.pipeline.partition import balanced_split

    n = len(shape.layers)
    if stages > n:
        raise ConfigError(f"{stages} stages need at least {stages} Linear layers, found {n}")
    counts = balanced_split([shape.layer_params(k) for k in range(n)], stages)
    starts = [sum(counts[:s]) for s in range(stages)]
    return [list(range(a, a + c)) for a, c in zip(starts, counts)]


def mlp_plan(
    strategy: str,
    shape: MLPShape,
    world: int,
    compute: Costs,
    comm: CommCost,
    micro_batches: int = 1,
    schedule: str = "gpipe",
) -> tuple[StepPlan, list[float]]:
    """The step of ``strategy`` on ``world`` ranks as a StepPlan, and each stage's compute
    seconds *per rank* (what ``compute`` priced for one micro-batch's ops, times the
    micro-batches, plus the head and the optimizer)."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}: expected one of {STRATEGIES}")
    if strategy == "single" and world != 1:
        raise ConfigError(f"strategy 'single' runs on 1 rank, found world={world}")
    n = len(shape.layers)
    splits_batch = strategy in ("data", "zero1", "zero2", "zero3")
    if strategy != "pipeline":
        micro_batches = 1
    b = shape.batch // (world if splits_batch else 1) // micro_batches
    width = world if strategy == "tensor" else 1
    stage_layers = stages_of(shape, world) if strategy in ("model", "pipeline") else [range(n)]
    loss = 8.0 if world > 1 else 0.0
    grad_bytes = 4.0 * shape.parameters
    stages, busy = [], []
    for s, layers in enumerate(stage_layers):
        fwd, bwd = [], []
        for k in layers:
            i, o = shape.layers[k]
            col = strategy == "tensor" and k % 2 == 0
            i_loc, o_loc = (i, o // width) if col else (i // width, o)
            f_ops, b_ops = linear_work(i_loc, o_loc, b, k == 0, k == n - 1)
            f_segs = [("compute", f_ops[0].name, compute(f_ops))]
            b_segs = [("compute", b_ops[-1].name, compute(b_ops))]
            if strategy == "tensor" and k % 2 == 1:  # g: the row layer's partial sums
                f_segs.append(("blocking", "all_reduce g", comm("all_reduce", 4.0 * b * o)))
            if strategy == "tensor" and col and k > 0:  # f: the column layer's input grad
                b_segs.append(("blocking", "all_reduce f", comm("all_reduce", 4.0 * b * i)))
            fwd.append(f_segs)
            bwd.append(b_segs)
        last = s == len(stage_layers) - 1
        head = [Work("cross_entropy", "loss", 0.0, 3 * 4.0 * b * shape.n_out)] if last else []
        params = sum(shape.layer_params(k) for k in layers) / width
        shard = params / world if strategy in ("zero1", "zero2", "zero3") else params
        tensors = 2 * len(layers)
        opt = [
            Work("adam", "adam", 0.0, ADAM_PASSES * 12.0 * shard, calls=tensors),
            Work("train_step bookkeeping", "step", 0.0, 0.0),  # wrapping, zero_grad, item()
        ]
        after = comm("all_reduce", loss) if loss else 0.0
        if strategy in ("zero1", "zero2"):
            after += comm("all_gather", grad_bytes)
        plan = StagePlan(
            forward=fwd,
            backward=bwd,
            head_forward=[("compute", "cross_entropy", compute(head))] if head else [],
            head_backward=[],
            embed_grad_bytes=grad_bytes if splits_batch and strategy != "zero3" else 0.0,
            layer_grad_bytes=grad_bytes / n if strategy == "zero3" else 0.0,
            gather_seconds=comm("all_gather", grad_bytes / n) if strategy == "zero3" else 0.0,
            optimizer_seconds=compute(opt),
            after_step_seconds=after,
        )
        stages.append(plan)
        per_mb = sum(seg[2] for part in fwd + bwd for seg in part if seg[0] == "compute")
        busy.append(per_mb * micro_batches + compute(head) * micro_batches + compute(opt))
    zero = {"zero1": 1, "zero2": 2, "zero3": 3}.get(strategy, 0)

    def reduce_seconds(collective: str, nbytes: float) -> float:
        if strategy == "zero1":  # ZeRO-1 all-reduces the gradient, then keeps its shard
            collective = "all_reduce"
        return comm(collective, nbytes)

    act = 4.0 * b * max(o for _, o in shape.layers[:-1]) if len(stage_layers) > 1 else 0.0
    step = StepPlan(
        stages,
        micro_batches,
        "gpipe" if strategy == "model" else schedule,
        comm("send", act) if act else 0.0,
        zero,
        1.0 if zero == 3 else float("inf"),  # ZeRO-3: every layer its own reduce-scatter
        reduce_seconds,
    )
    return step, busy
