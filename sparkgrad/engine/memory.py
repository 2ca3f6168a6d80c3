"""Memory per rank in a run: predicted before training, measured on its first step.

On every rank, before the first step, the strategy's
:meth:`~sparkgrad.parallel.strategy.Strategy.memory_plan` predicts from the run config and
the model's shapes what this rank will hold (:mod:`sparkgrad.parallel.memory_plan`). The
first ``train_step`` then runs inside an
:class:`~sparkgrad.autodiff.saved_memory.ActivationTracker`, and after it
:meth:`~sparkgrad.parallel.strategy.Strategy.memory_measured` reads the live arrays.
Both travel to the driver with the rank's time split (:meth:`FirstStepMemory.fields`), and
the run prints::

    memory rank 0: predicted 3.57 MB, measured 3.57 MB (params 1.08/1.08, grads 1.08/1.08,
    optimizer 1.08/1.08, activations 0.34/0.34 MB predicted/measured)

Predictions exist for the models whose shapes the plans know (``mlp``, ``gpt``), in every
``--precision`` on the CPU: under fp16/bf16 ZeRO's 2-byte parameters and gradients and fp32
master shard, and for every strategy what autocast's ops save (the cast copies of inputs
and weights, 16-bit activations, float32 losses; :mod:`sparkgrad.parallel.activation_memory`).
On cuda under fp16 there is no prediction (CuPy lowers natively: not derived here).
"""

from __future__ import annotations

import math
from typing import Any

from sparkgrad.autodiff.saved_memory import ActivationTracker
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.memory_plan import KINDS, MemoryJob, MemoryPlan, plan_memory

FIELDS = tuple(f"memory_{side}_{kind}" for side in ("predicted", "measured") for kind in KINDS)


class FirstStepMemory:
    """This rank's plan (None when the model has no known shapes) and, once the first
    ``train_step`` ran, what it measured (the step is wrapped once, then unwrapped). With
    fp16's ``scaler``, the first step it did not skip: a skipped step leaves an optimizer
    that never stepped, without its moments (Adam makes them on its first step)."""

    def __init__(self, config: Any, vocab: str, strategy: Any, scaler: Any = None) -> None:
        name = config.strategy if config.world_size > 1 else "single"
        try:
            job = MemoryJob.from_config(config, len(vocab) or None)
            self.plan: MemoryPlan | None = plan_memory(name, job, strategy.rank)
        except ConfigError:  # a model the plans have no shapes for (cnn, vit, ...)
            self.plan = None
        self.measured: dict[str, int] | None = None
        inner = strategy.train_step

        def measured_first_step(*args: Any, **kwargs: Any) -> float:
            skipped = scaler.skipped_steps if scaler is not None else 0
            with ActivationTracker() as tracker:
                loss = inner(*args, **kwargs)
            if scaler is not None and scaler.skipped_steps > skipped:
                return loss  # fp16 skipped it (an overflow): no optimizer state yet, next one
            strategy.train_step = inner  # later steps run as they always do
            self.measured = strategy.memory_measured(tracker.peak_bytes)
            return loss

        strategy.train_step = measured_first_step

    def fields(self) -> dict[str, float]:
        """:data:`FIELDS` as floats (NaN: not known), for the per-rank report row."""
        out = dict.fromkeys(FIELDS, math.nan)
        for side, values in (("predicted", self.plan and self.plan.predicted),
                             ("measured", self.measured)):  # fmt: skip
            for kind in KINDS:
                if values:
                    out[f"memory_{side}_{kind}"] = float(values[kind])
        return out


def plan_of(row: dict, strategy: str = "") -> MemoryPlan | None:
    """The :class:`MemoryPlan` of a report row carrying :data:`FIELDS` (None: no plan)."""
    predicted = {k: row.get(f"memory_predicted_{k}", math.nan) for k in KINDS}
    measured = {k: row.get(f"memory_measured_{k}", math.nan) for k in KINDS}
    if any(math.isnan(v) for v in predicted.values()):
        return None
    plan = MemoryPlan(strategy, int(row["rank"]), {k: int(v) for k, v in predicted.items()})
    if not any(math.isnan(v) for v in measured.values()):
        plan = plan.with_measured(measured)
    return plan


def memory_lines(ranks: list[dict], strategy: str = "") -> list[str]:
    """One line per rank (see the module docstring); measured only for a model without
    known shapes, nothing for a rank that reported neither."""
    lines = []
    for row in ranks:
        plan = plan_of(row, strategy)
        if plan is not None:
            lines.append(plan.line())
            continue
        measured = [row.get(f"memory_measured_{k}", math.nan) for k in KINDS]
        if not any(math.isnan(v) for v in measured):
            parts = ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in zip(KINDS, measured))
            lines.append(
                f"memory rank {int(row['rank'])}: measured {sum(measured) / 1e6:.2f} MB "
                f"({parts}); no prediction for this run"
            )
    return lines
