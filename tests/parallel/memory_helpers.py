"""Run one training step of a strategy on thread ranks; each rank's plan, with what it measured.

The prediction (:func:`~sparkgrad.parallel.memory_plan.plan_memory`) reads only the
:class:`~sparkgrad.parallel.memory_shapes.ModelShape`; the measurement reads the live
arrays after one real step (:func:`~sparkgrad.parallel.memory_plan.measured_step`: the
ledger's parameters, gradients and optimizer buffers, and the peak an ActivationTracker saw
during the step). Two independent paths: the tests compare them.
"""

from __future__ import annotations

import threading

import numpy as np

import sparkgrad as sg
import sparkgrad.distributed as dist
from sparkgrad.distributed.state import resolve
from sparkgrad.engine.model import build_optimizer
from sparkgrad.engine.precision import MixedPrecision
from sparkgrad.models.gpt import build_gpt
from sparkgrad.models.mlp import build_mlp
from sparkgrad.models.sequence_parts import TokenCrossEntropy
from sparkgrad.parallel.memory_plan import MemoryJob, MemoryPlan, measured_step, plan_memory
from sparkgrad.parallel.memory_shapes import ModelShape
from sparkgrad.parallel.registry import make_strategy

BUILD_LOCK = threading.Lock()  # the thread ranks share sparkgrad's seeded generator
MLP = ModelShape.mlp((32, 32, 32))  # four Linear layers: four pipeline stages
GPT = ModelShape.gpt(11, context=16, d_model=16, heads=4, layers=2)  # 11: uneven vocab slices


def build(shape: ModelShape, seed: int = 0) -> sg.nn.Module:
    """The model ``shape`` describes, drawn from ``seed``."""
    with BUILD_LOCK:
        if shape.kind == "mlp":
            return build_mlp(shape.widths[1:-1], seed, recompute=shape.recompute)
        return build_gpt(
            shape.vocab, seed, context=shape.context, d_model=shape.d_model, nhead=shape.heads,
            num_layers=shape.layers, dropout=shape.dropout, tie_weights=shape.tie_weights,
            recompute=shape.recompute,
        )  # fmt: skip


def measure(
    strategy: str, world: int, shape: ModelShape, options: dict | None = None,
    batch: int = 8, optimizer: str = "adam", momentum: float = 0.9, precision: str = "fp32",
    init_scale: float = 2.0**16,
) -> list[MemoryPlan]:  # fmt: skip
    """Every rank's plan for one step of ``strategy``, with its measured bytes; under
    ``precision`` fp16/bf16 built as the engine builds a run (``MixedPrecision`` around the
    strategy, ZeRO given the precision as its option)."""
    options = dict(options or {})
    job = MemoryJob(shape, batch, world, optimizer, momentum, options, precision)
    if strategy.startswith("zero"):
        options["precision"] = precision
    rng = np.random.default_rng(0)
    if shape.kind == "mlp":
        xs, ys = rng.random((batch, 784)).astype(np.float32), rng.integers(0, 10, batch)
        loss_fn = sg.nn.CrossEntropyLoss()
    else:
        xs = rng.integers(0, shape.vocab, (batch, shape.context))
        ys = rng.integers(0, shape.vocab, (batch, shape.context))
        loss_fn = TokenCrossEntropy()

    def rank_fn(rank: int, size: int) -> MemoryPlan:
        if strategy != "single":
            dist.init_process_group("threads", rank=rank, world_size=size)
        try:
            group = None if strategy == "single" else resolve(None)  # the found-inf flag, agreed
            amp = MixedPrecision(precision, "cpu", group, init_scale=init_scale)
            s = make_strategy(
                strategy, build(shape),
                amp.optimizer_factory(lambda p: build_optimizer(optimizer, p, 1e-3, momentum)),
                amp.loss_fn(loss_fn), **options,
            )  # fmt: skip
            amp.attach(s)
            per = batch // s.data_parallel_size
            rows = slice(s.data_parallel_rank * per, (s.data_parallel_rank + 1) * per)
            _, measured = measured_step(s, sg.tensor(xs[rows]), sg.tensor(ys[rows]))
            return plan_memory(strategy, job, rank).with_measured(measured)
        finally:
            if strategy != "single":
                dist.destroy_process_group()

    return [rank_fn(0, 1)] if strategy == "single" else dist.spawn(rank_fn, world)
