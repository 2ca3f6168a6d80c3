"""``PipelineParallel``: model parallelism with micro-batches, so the stages overlap.

Naive model parallelism (:class:`~sparkgrad.parallel.pipeline.model_parallel.ModelParallel`) keeps
all but one rank idle. Cut the batch into ``m`` micro-batches and stage 0 can start the
forward of micro-batch 1 while stage 1 works on micro-batch 0 (GPipe, 4 stages, m = 4)::

    stage 0: F0 F1 F2 F3 .  .  .  .  .  .  B0 B1 B2 B3
    stage 1:    F0 F1 F2 F3 .  .  .  .  B0 B1 B2 B3
    stage 2:       F0 F1 F2 F3 .  .  B0 B1 B2 B3
    stage 3:          F0 F1 F2 F3 B0 B1 B2 B3

The idle share, the *bubble*, falls from ``(p-1)/p`` to ``(p-1)/(m+p-1)``.
:mod:`~sparkgrad.parallel.pipeline.schedules` says in which order each stage runs its
forwards (F) and backwards (B): GPipe (all F, then all B: ``m`` micro-batches' activations
alive at once) or 1F1B (a backward as soon as possible: at most ``p - stage`` alive).

The arithmetic does not change with the schedule: each micro-batch's loss is its mean
cross-entropy divided by ``m``, so the gradients accumulated over the micro-batches are
those of the whole batch's mean, and one optimizer step follows. GPipe and 1F1B give the
same weights as a single process on the whole batch.

:meth:`PipelineParallel.report` puts the bubble measured on this rank (time blocked in
``recv`` over forward + backward + blocked time) next to the theoretical one, with the
peak number of micro-batches whose activations the stage held at once.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.pipeline.model_parallel import ModelParallel
from sparkgrad.parallel.pipeline.schedules import SCHEDULES, bubble_fraction
from sparkgrad.parallel.strategy import LossFn, OptimizerFactory


class PipelineParallel(ModelParallel):
    """Stage ``s`` of a ``p``-stage pipeline with ``micro_batches`` micro-batches per step.

    Args:
        model, optimizer_factory, loss_fn, process_group, split: as for
            :class:`~sparkgrad.parallel.pipeline.model_parallel.ModelParallel`.
        micro_batches: how many pieces each batch is cut into (must divide the batch).
        schedule: ``"1f1b"`` (default) or ``"gpipe"``.
    """

    name = "pipeline"

    @classmethod
    def check_config(cls, config: Any) -> None:
        super().check_config(config)
        if config.schedule not in SCHEDULES:
            raise ConfigError(
                f"--schedule must be one of {', '.join(SCHEDULES)}, found {config.schedule!r}"
            )
        if config.batch_size % config.micro_batches:
            raise ConfigError(
                f"--micro-batches {config.micro_batches} must divide --batch-size "
                f"{config.batch_size} (each micro-batch gets the same number of samples)"
            )

    @classmethod
    def options_from(cls, config: Any) -> dict[str, Any]:
        options = super().options_from(config)
        return {**options, "micro_batches": config.micro_batches, "schedule": config.schedule}

    def __init__(
        self,
        model: Module,
        optimizer_factory: OptimizerFactory,
        loss_fn: LossFn,
        process_group: Any = None,
        micro_batches: int = 4,
        schedule: str = "1f1b",
        split: list[int] | None = None,
    ) -> None:
        if schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, found {schedule!r}")
        if isinstance(micro_batches, bool) or not isinstance(micro_batches, int):
            raise ConfigError(f"micro_batches must be an int >= 1, found {micro_batches!r}")
        if micro_batches < 1:
            raise ConfigError(f"micro_batches must be >= 1, found {micro_batches}")
        super().__init__(model, optimizer_factory, loss_fn, process_group, split)
        self.micro_batches, self.schedule = micro_batches, schedule
        self.actions = SCHEDULES[schedule](self.stage, self.stages, micro_batches)
        self.peak_live_activations = 0

    def train_step(self, x: Tensor, y: Tensor) -> float:
        m = self.micro_batches
        if len(x) % m:
            raise ConfigError(
                f"micro_batches={m} must divide the batch size, found a batch of {len(x)} "
                f"rows; pick a batch size that is a multiple of {m}"
            )
        size = len(x) // m
        self.module.train()
        self.optimizer.zero_grad()
        live: dict[int, tuple[Tensor, Tensor]] = {}  # micro-batch -> (input leaf, output)
        loss = 0.0
        for kind, mb in self.actions:
            if kind == "F":
                live[mb] = self._forward(x, y, mb, slice(mb * size, (mb + 1) * size), m)
                self.peak_live_activations = max(self.peak_live_activations, len(live))
                if self.is_last:
                    loss += float(live[mb][1].item())
            else:
                self._backward(*live.pop(mb), mb)  # its activations can be freed now
        self.after_backward()
        with self.timeline.span("optimizer"):
            self.optimizer.step()
        return self._share_loss(loss)

    @classmethod
    def memory_plan(cls, job: Any, rank: int = 0) -> Any:
        """GPipe holds all ``m`` micro-batches' activations at its peak, 1F1B ``p - stage``."""
        m, schedule = job.options.get("micro_batches", 4), job.options.get("schedule", "1f1b")
        return cls.stage_memory_plan(job, rank, m, schedule)

    def report(self) -> dict[str, Any]:
        return {
            **super().report(),
            "bubble_theoretical": bubble_fraction(self.stages, self.micro_batches),
            "peak_live_activations": self.peak_live_activations,
            "schedule": self.schedule,
            "micro_batches": self.micro_batches,
        }
