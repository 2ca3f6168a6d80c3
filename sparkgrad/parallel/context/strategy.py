"""``ContextParallel``: every rank holds the whole GPT and a piece of every sequence
(``--strategy context``).

Each rank sees the whole global batch but keeps only its balanced chunks of each window
(ids and targets alike, :mod:`.chunks`), so the activations of one rank are ``T/cp`` of
the sequence. Attention is ring attention (:mod:`.gpt`); everything else is per position.

**The loss and the gradients.** The global loss is the mean over every scored token of
the batch. Rank ``r`` scores ``n_r`` of the ``n = Σ n_r`` tokens (all of its tokens,
unless targets equal ``ignore_index``), and its loss is the mean over those::

    L = Σ_r (n_r / n) · L_r        so        ∇L = Σ_r ∇((n_r / n) · L_r)

Each rank backpropagates its weighted loss ``(n_r / n)·L_r``; one all_reduce (sum) of the
gradients, as data parallelism's but without the division, gives every rank ``∇L``, and
the same optimizer step on every rank keeps the replicas equal. A rank with no scored
token still runs forward and backward (the ring needs every rank) with weight 0.

``predict`` gathers every rank's logits of its chunks and puts the sequence back in order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import sparkgrad as sg
from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.distributed.state import resolve
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.context.chunks import gather_sequence, split_sequence
from sparkgrad.parallel.context.gpt import context_parallel_gpt
from sparkgrad.parallel.single import SingleProcess
from sparkgrad.parallel.strategy import LossFn, OptimizerFactory


class ContextParallel(SingleProcess):
    """Context parallelism over ``process_group`` (see the module docstring)."""

    name = "context"
    predict_is_collective = True
    models = ("gpt",)

    @classmethod
    def check_config(cls, config: Any) -> None:
        chunks = 2 * config.world_size
        if config.context % chunks:
            raise ConfigError(
                f"--strategy context cuts each window of --context {config.context} tokens "
                f"into 2·world-size = {chunks} balanced chunks: expected a --context "
                f"divisible by {chunks}, found {config.context}"
            )
        if config.dropout:
            raise ConfigError(
                f"--strategy context runs ring attention, which has no dropout: expected "
                f"--dropout 0, found {config.dropout}"
            )

    def __init__(
        self,
        model: Module,
        optimizer_factory: OptimizerFactory,
        loss_fn: LossFn,
        process_group: Any = None,
    ) -> None:
        group = resolve(process_group)
        super().__init__(context_parallel_gpt(model, group), optimizer_factory, loss_fn)
        self.cp_group, self.rank, self.world_size = group, group.rank(), group.size()
        self.timeline.rank = self.rank
        self.timeline.watch(group)
        self.ignore_index = getattr(loss_fn, "ignore_index", -100)

    @classmethod
    def memory_plan(cls, job: Any, rank: int = 0) -> Any:
        """The whole model on every rank; the whole batch, ``1/cp`` of every sequence."""
        from sparkgrad.parallel.memory_plan import whole_model_plan

        return whole_model_plan(cls.name, job, rank, job.batch_size, cp=job.world_size)

    def _mine(self, a: Any) -> Tensor:
        """This rank's balanced chunks of every window (dim 1) of ``a``."""
        return sg.tensor(split_sequence(a.array, self.rank, self.world_size, True, dim=1))

    def _sum(self, values: list[float]) -> np.ndarray:
        buf = np.array(values, dtype=np.float64)
        self.cp_group.pg.all_reduce(buf)
        return buf

    def train_step(self, x: Tensor, y: Tensor) -> float:
        self.model.train()
        self.optimizer.zero_grad()
        x, y = self._mine(x), self._mine(y)
        scored = float((y.array != self.ignore_index).sum())
        total = float(self._sum([scored])[0])
        weight = scored / total if total else 0.0
        with self.timeline.span("forward"):
            logits = self.model(x)
            if scored:
                loss = self.loss_fn(logits, y)
                local, weighted = float(loss.item()), loss * weight
            else:  # nothing to score: zero gradients, but the ring still needs this rank
                local, weighted = 0.0, logits.sum() * 0.0
        with self.timeline.span("backward"):
            weighted.backward()
        self._sum_gradients()
        with self.timeline.span("optimizer"):
            self.optimizer.step()
        return float(self._sum([local * weight])[0]) if total else float("nan")

    def _sum_gradients(self) -> None:
        """∇L on every rank: one all_reduce (sum) of one flat buffer of the weighted grads."""
        params = list(self.model.parameters())
        xp = array_module(params[0].array)
        flat = xp.concatenate(
            [(p.grad.array if p.grad is not None else xp.zeros_like(p.array)).reshape(-1)
             for p in params]
        )  # fmt: skip
        self.cp_group.pg.all_reduce(flat)
        offset = 0
        for p in params:
            g = flat[offset : offset + p.array.size].reshape(p.array.shape)
            p.grad = Tensor._wrap(g)
            offset += p.array.size

    def predict(self, x: Tensor) -> Tensor:
        self.model.eval()
        with sg.no_grad():
            local = np.ascontiguousarray(self.model(self._mine(x)).numpy())
        self.model.train()
        parts = self.cp_group.pg.all_gather(local)
        return sg.tensor(gather_sequence(list(parts), balanced=True, dim=1))
