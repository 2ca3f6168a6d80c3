"""``Trainer``: the epoch loop every strategy shares — train, evaluate, measure, report.

One epoch = iterate the training loader, handing each batch to the strategy's
``train_step`` (forward, loss, backward, communication, optimizer step: where the work is
cut is the strategy's business, see :mod:`sparkgrad.parallel.strategy`), then evaluate on
the test loader without gradients. Per epoch it records train loss, test loss, the
task's score (:mod:`sparkgrad.engine.tasks`: accuracy, perplexity or exact match) and
throughput (samples per second), shows a progress bar, and calls the callbacks, so a
notebook can plot live and a checkpointer can save.

Two numbers need care when a run is cut into pieces (a checkpoint, a resume under another
strategy or world size):

- **The epoch's train loss** is the mean of the *global* batch losses, each weighted by the
  global batch's samples. ``running`` keeps ``(loss sum, samples)`` in those global terms
  (``len(y) * data_parallel_size`` per step, not this rank's rows), so a checkpoint written
  by one process resumes under ``--strategy data --world-size 2`` with the same mean.
- **A loss that is inf or NaN** means the weights diverged (a learning rate far too large,
  data out of range): every later step only spreads NaNs. The trainer stops at that step
  with :class:`~sparkgrad.errors.NonFiniteLossError` naming it, before any callback runs
  (so no NaN checkpoint is written). With ``allow_nonfinite_loss=True``
  (``--allow-nonfinite-loss``) training goes on: the step was taken, its loss counts in the
  epoch's mean (which becomes inf or NaN too), and one warning names the first such step.
  NumPy's own overflow/invalid-value warnings inside a step are silenced either way: the
  loss check reports the divergence once, with the step, instead of a screenful of them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sparkgrad.engine.tasks import DIGITS, Task, evaluate
from sparkgrad.errors import NonFiniteLossError
from sparkgrad.parallel.strategy import Strategy

log = logging.getLogger("sparkgrad.engine.trainer")


@dataclass
class EpochMetrics:
    """What one epoch measured."""

    epoch: int
    train_loss: float
    test_loss: float
    test_accuracy: float
    samples_per_second: float
    seconds: float
    test_perplexity: float = math.nan  # language models: exp(test loss)
    test_exact_match: float = math.nan  # seq2seq: share of answers exactly right

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class Trainer:
    """Train ``strategy`` (which holds the model and its optimizer) for ``epochs``.

    ``test_loader`` may be None (no evaluation on this rank); when the strategy's
    ``predict`` is a collective (pipeline, tensor parallel...), every rank needs one.

    ``callbacks`` are called as ``callback(trainer, metrics)`` after every epoch;
    ``step_callbacks`` as ``callback(trainer, step, loss)`` after every optimizer step.
    ``allow_nonfinite_loss``: keep training when a step's loss is inf or NaN (see the
    module docstring); by default such a step raises :class:`NonFiniteLossError`.
    """

    def __init__(
        self,
        strategy: Strategy,
        loss_fn: Callable,
        train_loader: Iterable,
        test_loader: Iterable | None = None,
        epochs: int = 1,
        scheduler: Any = None,
        callbacks: Iterable[Callable] = (),
        step_callbacks: Iterable[Callable] = (),
        progress: bool = True,
        task: Task = DIGITS,
        allow_nonfinite_loss: bool = False,
    ) -> None:
        self.strategy, self.loss_fn = strategy, loss_fn
        self.train_loader, self.test_loader = train_loader, test_loader
        self.epochs, self.scheduler = epochs, scheduler
        self.callbacks, self.step_callbacks = list(callbacks), list(step_callbacks)
        self.progress, self.task = progress, task
        self.allow_nonfinite_loss = allow_nonfinite_loss
        self.nonfinite_steps = 0  # how many steps had an inf/NaN loss (when allowed)
        self.history: list[EpochMetrics] = []
        self.global_step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        # (loss sum, samples) of this epoch so far, over the GLOBAL batches (all ranks' rows)
        self.running: tuple[float, int] = (0.0, 0)

    def restore(self, history: list[dict], running: Any = None) -> None:
        """Take back the metrics of a checkpoint: finished epochs and the current epoch's sums."""
        self.history = [EpochMetrics(**m) for m in history]
        if running is not None:
            self.running = (float(running[0]), int(running[1]))

    def train_epoch(self, epoch: int, skip_batches: int = 0) -> tuple[float, int]:
        """One pass over the training data; returns (mean loss, samples this rank trained on).

        ``skip_batches`` skips the first batches of the pass (resuming mid-epoch from a
        checkpoint: the loader yields the same batches in the same order, we just drop them);
        the loss of the skipped batches comes from ``running`` (see :meth:`restore`).
        """
        self.epoch = epoch
        total, seen = self.running if skip_batches else (0.0, 0)
        trained = 0  # this rank's rows in this call: the throughput's numerator
        ways = max(1, int(getattr(self.strategy, "data_parallel_size", 1)))
        batches = self.train_loader
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(batches, desc=f"epoch {epoch}", leave=False, unit="batch")
            batches = bar
        for self.batch_in_epoch, (x, y) in enumerate(batches, start=1):
            if self.batch_in_epoch <= skip_batches:
                continue
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                value = self.strategy.train_step(x, y)  # the global batch's loss: checked
            self.global_step += 1
            if not math.isfinite(value):
                self._nonfinite(value)
            total += value * len(y) * ways  # the global batch: len(y) rows on each of `ways`
            seen += len(y) * ways
            trained += len(y)
            self.running = (total, seen)
            for cb in self.step_callbacks:
                cb(self, self.global_step, value)
            if bar is not None:
                bar.set_postfix(loss=f"{value:.4f}")
        if bar is not None:
            bar.close()
        return total / max(seen, 1), trained

    def _nonfinite(self, value: float) -> None:
        """A step's loss is inf or NaN: stop (default) or note it once and go on."""
        where = f"step {self.global_step} (epoch {self.epoch}, batch {self.batch_in_epoch})"
        if not self.allow_nonfinite_loss:
            groups = getattr(getattr(self.strategy, "optimizer", None), "param_groups", None)
            lr = f" with lr {groups[0]['lr']:g}" if groups else ""
            raise NonFiniteLossError(
                f"the training loss became {value} at {where}{lr}: the weights diverged; "
                "lower --lr, or pass --allow-nonfinite-loss to keep training anyway"
            )
        if self.nonfinite_steps == 0:
            log.warning(
                "the training loss became %s at %s; training goes on (--allow-nonfinite-loss)",
                value,
                where,
            )
        self.nonfinite_steps += 1

    def fit(self, start_epoch: int = 1, skip_batches: int = 0) -> list[EpochMetrics]:
        """Run the epochs from ``start_epoch`` on; returns the per-epoch metrics (``history``).

        ``skip_batches`` applies to ``start_epoch`` only (see :meth:`train_epoch`).
        """
        for epoch in range(start_epoch, self.epochs + 1):
            # a new shuffle per epoch: the loader (or its DistributedSampler) reseeds with it
            set_epoch = getattr(self.train_loader, "set_epoch", None) or getattr(
                getattr(self.train_loader, "sampler", None), "set_epoch", None
            )
            if set_epoch is not None:
                set_epoch(epoch - 1)  # PyTorch counts epochs from 0
            start = time.perf_counter()
            train_loss, seen = self.train_epoch(epoch, skip_batches if epoch == start_epoch else 0)
            seconds = time.perf_counter() - start
            scores = {"test_loss": math.nan, "test_accuracy": math.nan}
            if self.test_loader is not None:
                scores.update(evaluate(self.task, self.strategy, self.loss_fn, self.test_loader))
            if self.scheduler is not None:
                self.scheduler.step()
            metrics = EpochMetrics(
                epoch, train_loss, samples_per_second=seen / seconds, seconds=seconds, **scores
            )
            self.history.append(metrics)
            for cb in self.callbacks:
                cb(self, metrics)
        return self.history
