"""``Strategy``: the one interface every parallel strategy offers the training loop.

DataParallel, ModelParallel, PipelineParallel, TensorParallel, ZeRO and the hybrid mesh
cut the same training step in different places. The engine's loop does not care where:
on every rank it calls the same few methods, and each strategy does its share::

    strategy = make(...)                       # on every rank, same seed, same config
    for x, y in loader:                        # this rank's rows of the global batch
        loss = strategy.train_step(x, y)       # forward, backward, communication, update
    logits = strategy.predict(x_test)          # every rank gets the full logits
    state = strategy.full_state_dict()         # unsharded weights, on every rank

Which rows of the global batch a rank sees is the strategy's ``data_parallel_size`` and
``data_parallel_rank``: data parallel and ZeRO split the batch over all ranks; model,
pipeline and tensor parallelism give every rank the whole batch (1 and 0); a
``dp=2,tp=2`` mesh splits it two ways. A ``DistributedSampler(dataset,
data_parallel_size, data_parallel_rank)`` does the rest.

Checkpoints are strategy-free: :meth:`full_state_dict` and
:meth:`full_optimizer_state_dict` return the whole model and the whole optimizer state in
the plain single-process layout (PyTorch's ``{"state": {index: {...}}, "param_groups"}``,
parameters numbered in ``model.parameters()`` order), and :meth:`load_full_state` cuts
them up again. A checkpoint written by ZeRO-3 on 4 ranks loads into the pipeline on 2.

Every strategy also keeps a :class:`~sparkgrad.parallel.timeline.Timeline` (forward,
backward, comm, idle spans) for the reports.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

import sparkgrad as sg
from sparkgrad.autodiff.backend import to_numpy
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.parallel.timeline import Timeline

OptimizerFactory = Callable[[Any], Any]  # parameters -> optimizer (e.g. lambda p: SGD(p, lr))
LossFn = Callable[[Tensor, Tensor], Tensor]


class Strategy(ABC):
    """One rank's share of a parallel training run (see the module docstring)."""

    name = "strategy"
    predict_is_collective = True  # False when every rank can predict on its own (full model)
    splits_batch = False  # True: every rank trains on its own rows (data parallel, ZeRO)

    def __init__(self, rank: int = 0, world_size: int = 1) -> None:
        self.rank, self.world_size = rank, world_size
        self.timeline = Timeline(rank)

    @property
    def data_parallel_size(self) -> int:
        """How many ways the global batch is split (the sampler's ``num_replicas``)."""
        return self.world_size if self.splits_batch else 1

    @property
    def data_parallel_rank(self) -> int:
        """Which of those pieces this rank trains on (the sampler's ``rank``)."""
        return self.rank if self.splits_batch else 0

    @abstractmethod
    def train_step(self, x: Tensor, y: Tensor) -> float:
        """One optimizer step on this rank's rows of the global batch.

        Returns the loss of the *global* batch (the same number on every rank), the one a
        single process would print for this step.
        """

    @abstractmethod
    def predict(self, x: Tensor) -> Tensor:
        """Logits for ``x`` (no gradients, eval mode); every rank calls it, every rank
        gets the full ``(len(x), classes)`` result."""

    @abstractmethod
    def full_state_dict(self) -> dict[str, np.ndarray]:
        """The whole model's weights under the plain model's keys (``0.weight``...), as
        NumPy arrays, on every rank (a collective: every rank must call it)."""

    @abstractmethod
    def full_optimizer_state_dict(self) -> dict[str, Any]:
        """The whole optimizer state in the single-process layout, on every rank."""

    @abstractmethod
    def load_full_state(self, model_state: dict, optimizer_state: dict | None = None) -> None:
        """Take this rank's share of a full model (and optimizer) state."""

    def report(self) -> dict[str, Any]:
        """Per-rank seconds of compute, communication and idle time, and bytes sent."""
        t = self.timeline.totals()
        return {
            "rank": self.rank,
            "strategy": self.name,
            "compute_s": t["forward"] + t["backward"] + t["optimizer"],
            "comm_s": t["comm"],
            "idle_s": t["idle"],
            "bytes_sent": self.timeline.bytes_sent,
        }


def numpy_state(module: Module) -> dict[str, np.ndarray]:
    """``module.state_dict()`` as NumPy copies."""
    return {k: np.array(to_numpy(v.array)) for k, v in module.state_dict().items()}


def numpy_optimizer_state(optimizer: Any) -> dict[str, Any]:
    """``optimizer.state_dict()`` with every buffer copied to NumPy."""
    sd = optimizer.state_dict()
    state = {int(i): {k: _as_numpy(v) for k, v in s.items()} for i, s in sd["state"].items()}
    return {"state": state, "param_groups": [dict(g) for g in sd["param_groups"]]}


def local_predict(model: Module, x: Tensor) -> Tensor:
    """Logits of a model this rank holds whole: eval mode, no gradients, train mode after."""
    model.eval()
    with sg.no_grad():
        out = model(x)
    model.train()
    return out


def _as_numpy(value: Any) -> np.ndarray:
    return np.array(to_numpy(value.array if isinstance(value, Tensor) else value))


class SingleProcess(Strategy):
    """No parallelism: the plain loop, the truth every other strategy is compared with."""

    name = "single"
    predict_is_collective = False

    def __init__(self, model: Module, optimizer_factory: OptimizerFactory, loss_fn: LossFn) -> None:
        super().__init__(0, 1)
        self.model, self.loss_fn = model, loss_fn
        self.optimizer = optimizer_factory(model.parameters())

    def train_step(self, x: Tensor, y: Tensor) -> float:
        self.model.train()
        self.optimizer.zero_grad()
        with self.timeline.span("forward"):
            loss = self.loss_fn(self.model(x), y)
        with self.timeline.span("backward"):
            loss.backward()
        with self.timeline.span("optimizer"):
            self.optimizer.step()
        return float(loss.item())

    def predict(self, x: Tensor) -> Tensor:
        return local_predict(self.model, x)

    def full_state_dict(self) -> dict[str, np.ndarray]:
        return numpy_state(self.model)

    def full_optimizer_state_dict(self) -> dict[str, Any]:
        return numpy_optimizer_state(self.optimizer)

    def load_full_state(self, model_state: dict, optimizer_state: dict | None = None) -> None:
        self.model.load_state_dict(model_state)
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)


class DataParallelStrategy(SingleProcess):
    """:class:`~sparkgrad.parallel.DataParallel` behind the Strategy interface."""

    name = "data"
    splits_batch = True

    def __init__(
        self,
        model: Module,
        optimizer_factory: OptimizerFactory,
        loss_fn: LossFn,
        process_group: Any = None,
    ) -> None:
        from sparkgrad.distributed.state import resolve
        from sparkgrad.parallel.data_parallel import DataParallel

        group = resolve(process_group)
        ddp = DataParallel(model, process_group)
        super().__init__(ddp, optimizer_factory, loss_fn)
        self.rank, self.world_size = group.rank(), group.size()
        self.timeline.rank = self.rank
        self._group = group

    def train_step(self, x: Tensor, y: Tensor) -> float:
        self.model.train()
        self.optimizer.zero_grad()
        with self.timeline.span("forward"):
            loss = self.loss_fn(self.model(x), y)
        start = time.perf_counter()
        loss.backward()  # the buckets' all_reduce runs during backward (overlapped)
        end = time.perf_counter()
        waited = sum(b.wait_s for b in self.model.stats.buckets)  # what was not overlapped
        self.timeline.add("backward", start, end - start - waited)
        self.timeline.add("comm", end - waited, waited, "bucket waits")
        n = self.world_size  # a ring all_reduce sends 2(n-1)/n of the buffer from each rank
        self.timeline.bytes_sent += sum(
            2 * (n - 1) * b.nbytes // n for b in self.model.stats.buckets
        )
        with self.timeline.span("optimizer"):
            self.optimizer.step()
        return self._global_mean(float(loss.item()))

    def _global_mean(self, value: float) -> float:
        buf = np.array([value], dtype=np.float64)
        self._group.pg.all_reduce(buf)
        return float(buf[0] / self.world_size)

    def predict(self, x: Tensor) -> Tensor:
        return local_predict(self.model.module, x)  # every rank holds the full model
