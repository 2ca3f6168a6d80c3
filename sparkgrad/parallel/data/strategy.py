"""``DataParallelStrategy``: :class:`~sparkgrad.parallel.data.data_parallel.DataParallel`
behind the Strategy interface (``--strategy data``)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.parallel.memory_ledger import MemoryLedger, optimizer_arrays
from sparkgrad.parallel.single import SingleProcess
from sparkgrad.parallel.strategy import LossFn, OptimizerFactory, local_predict


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
        from sparkgrad.parallel.data.data_parallel import DataParallel

        group = resolve(process_group)
        ddp = DataParallel(model, process_group)
        super().__init__(ddp, optimizer_factory, loss_fn)
        self.rank, self.world_size = group.rank(), group.size()
        self.timeline.rank = self.rank
        self.timeline.watch(group)  # bytes of every bucket; spans only for calls on this thread
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
        with self.timeline.span("optimizer"):
            self.optimizer.step()
        return self._global_mean(float(loss.item()))

    def _global_mean(self, value: float) -> float:
        buf = np.array([value], dtype=np.float64)
        self._group.pg.all_reduce(buf)
        return float(buf[0] / self.world_size)

    def predict(self, x: Tensor) -> Tensor:
        return local_predict(self.model.module, x)  # every rank holds the full model

    @classmethod
    def memory_plan(cls, job: Any, rank: int = 0) -> Any:
        """Every rank the whole model and ``batch / N`` rows; DDP's buckets hold a second
        copy of the gradients between steps."""
        from sparkgrad.parallel.memory_plan import whole_model_plan

        return whole_model_plan(cls.name, job, rank, job.batch_size // job.world_size, True)

    def memory_ledger(self) -> MemoryLedger:
        """The ledger with DDP's buckets counted as gradients (they live between steps)."""
        params = list(self.model.parameters())
        return MemoryLedger(
            [p.array for p in params],
            [p.grad for p in params] + [b.buffer for b in self.model.buckets],
            optimizer_arrays(self.optimizer),
            world_size=self.world_size,
            numel=sum(int(p.array.size) for p in params),
        )
