"""``Trainer``: the epoch loop every strategy shares — train, evaluate, measure, report.

One epoch = iterate the training loader, handing each batch to the strategy's
``train_step`` (forward, loss, backward, communication, optimizer step: where the work is
cut is the strategy's business, see :mod:`sparkgrad.parallel.strategy`), then evaluate on
the test loader without gradients. Per epoch it records train loss, test loss, the
task's score (:mod:`sparkgrad.engine.tasks`: accuracy, perplexity or exact match) and
throughput (samples per second), shows a progress bar, and calls the callbacks, so a
notebook can plot live and a checkpointer can save.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from sparkgrad.engine.tasks import DIGITS, Task
from sparkgrad.engine.tasks import evaluate as evaluate_task
from sparkgrad.parallel.strategy import Strategy


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


def evaluate(strategy: Strategy, loss_fn: Callable, loader: Iterable) -> tuple[float, float]:
    """Mean loss and accuracy over ``loader`` of the logits ``strategy.predict`` gives."""
    scores = evaluate_task(DIGITS, strategy, loss_fn, loader)
    return scores["test_loss"], scores["test_accuracy"]


class Trainer:
    """Train ``strategy`` (which holds the model and its optimizer) for ``epochs``.

    ``test_loader`` may be None (no evaluation on this rank); when the strategy's
    ``predict`` is a collective (pipeline, tensor parallel...), every rank needs one.

    ``callbacks`` are called as ``callback(trainer, metrics)`` after every epoch;
    ``step_callbacks`` as ``callback(trainer, step, loss)`` after every optimizer step.
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
    ) -> None:
        self.strategy, self.loss_fn = strategy, loss_fn
        self.train_loader, self.test_loader = train_loader, test_loader
        self.epochs, self.scheduler = epochs, scheduler
        self.callbacks, self.step_callbacks = list(callbacks), list(step_callbacks)
        self.progress, self.task = progress, task
        self.history: list[EpochMetrics] = []
        self.global_step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.running: tuple[float, int] = (0.0, 0)  # (loss sum, samples) of this epoch so far

    def restore(self, history: list[dict], running: Any = None) -> None:
        """Take back the metrics of a checkpoint: finished epochs and the current epoch's sums."""
        self.history = [EpochMetrics(**m) for m in history]
        if running is not None:
            self.running = (float(running[0]), int(running[1]))

    def train_epoch(self, epoch: int, skip_batches: int = 0) -> tuple[float, int]:
        """One pass over the training data; returns (mean loss, samples seen).

        ``skip_batches`` skips the first batches of the pass (resuming mid-epoch from a
        checkpoint: the loader yields the same batches in the same order, we just drop them).
        """
        self.epoch = epoch
        total, seen = self.running if skip_batches else (0.0, 0)
        batches = self.train_loader
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(batches, desc=f"epoch {epoch}", leave=False, unit="batch")
            batches = bar
        for self.batch_in_epoch, (x, y) in enumerate(batches, start=1):
            if self.batch_in_epoch <= skip_batches:
                continue
            value = self.strategy.train_step(x, y)  # the global batch's loss
            total += value * len(y)
            seen += len(y)
            self.running = (total, seen)
            self.global_step += 1
            for cb in self.step_callbacks:
                cb(self, self.global_step, value)
            if bar is not None:
                bar.set_postfix(loss=f"{value:.4f}")
        if bar is not None:
            bar.close()
        return total / max(seen, 1), seen

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
                scores.update(
                    evaluate_task(self.task, self.strategy, self.loss_fn, self.test_loader)
                )
            if self.scheduler is not None:
                self.scheduler.step()
            metrics = EpochMetrics(
                epoch, train_loss, samples_per_second=seen / seconds, seconds=seconds, **scores
            )
            self.history.append(metrics)
            for cb in self.callbacks:
                cb(self, metrics)
        return self.history
