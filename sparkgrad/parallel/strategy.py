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
backward, comm, idle spans) for the reports; its comm spans and bytes come from the
communicator's call records (:meth:`Timeline.watch`), never from a formula.

Memory is stated twice (:mod:`~sparkgrad.parallel.memory_plan`): :meth:`memory_plan`, a
classmethod run on the driver, predicts from shapes what rank ``r`` will hold (each
strategy its own share rule); :meth:`memory_measured` reads the live arrays after a step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

import sparkgrad as sg
from sparkgrad.autodiff.backend import to_numpy
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.parallel.memory_ledger import MemoryLedger, optimizer_arrays
from sparkgrad.parallel.timeline import Timeline

OptimizerFactory = Callable[[Any], Any]  # parameters -> optimizer (e.g. lambda p: SGD(p, lr))
LossFn = Callable[[Tensor, Tensor], Tensor]


class Strategy(ABC):
    """One rank's share of a parallel training run (see the module docstring)."""

    name = "strategy"
    predict_is_collective = True  # False when every rank can predict on its own (full model)
    splits_batch = False  # True: every rank trains on its own rows (data parallel, ZeRO)
    cuts_layers = False  # True: the model's layers are split over ranks
    models: tuple[str, ...] | None = None  # the --model names it can split (None: any)

    # -- on the driver, before any rank starts: what this strategy needs of a run config ----
    # ``config`` is anything with the run's fields (world_size, batch_size, hidden, ...):
    # the engine's RunConfig. Each strategy knows its own rules; the config asks them.
    @classmethod  # noqa: B027 - an optional hook: most strategies need no check
    def check_config(cls, config: Any) -> None:
        """Raise ConfigError (expected vs found) if ``config`` cannot run this strategy."""

    @classmethod
    def batch_ways(cls, config: Any) -> int:
        """How many ways this strategy splits the global batch of ``config``."""
        return config.world_size if cls.splits_batch else 1

    @classmethod
    def group_sizes(cls, config: Any) -> list[int]:
        """The sizes of the process groups it communicates in (the world first)."""
        return [config.world_size]

    @classmethod
    def options_from(cls, config: Any) -> dict[str, Any]:
        """The keyword arguments its constructor takes from ``config``."""
        return {}

    @classmethod
    def build(
        cls, model: Any, optimizer_factory: Any, loss_fn: Any, process_group: Any = None,
        **options: Any,
    ) -> Strategy:  # fmt: skip
        """This rank's strategy object (``make_strategy`` calls it): the class itself, unless
        a strategy picks an implementation by model and options (the hybrid mesh does)."""
        return cls(model, optimizer_factory, loss_fn, process_group, **options)

    def __init__(self, rank: int = 0, world_size: int = 1, group: Any = None) -> None:
        self.rank, self.world_size = rank, world_size
        self.timeline = Timeline(rank)
        if group is not None:  # communication is read from the group's call records
            self.timeline.watch(group)

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

    # -- memory: predicted from shapes (on the driver), measured from the live arrays ------------
    @classmethod
    def memory_plan(cls, job: Any, rank: int = 0) -> Any:
        """The :class:`~sparkgrad.parallel.memory_plan.MemoryPlan` of ``rank`` for ``job``
        (a :class:`~sparkgrad.parallel.memory_plan.MemoryJob`), from shapes only.

        This default is the data-parallel family's rule: every rank holds the whole model
        and ``batch / batch_ways`` rows; with a ZeRO ``stage`` option (1-3) the flat
        buffers are sharded over the world. Strategies that cut the model override it.
        """
        from sparkgrad.parallel.memory_plan import whole_model_plan, zero_plan

        stage = int(job.options.get("stage", 0))
        if stage:
            return zero_plan(cls.name, job, rank, stage)
        rows = job.batch_size // (job.world_size if cls.splits_batch else 1)
        return whole_model_plan(cls.name, job, rank, rows)

    def memory_holders(self) -> tuple[Any, Any]:
        """``(module, optimizer)``: what this rank trains (its stage, its shards...)."""
        return self.model, self.optimizer

    def memory_ledger(self) -> MemoryLedger:
        """The bytes of parameters, gradients and optimizer state this rank holds now
        (measured: each owning block of memory once; see :class:`MemoryLedger`)."""
        module, optimizer = self.memory_holders()
        params = list(module.parameters())
        return MemoryLedger(
            [p.array for p in params],
            [p.grad for p in params],
            optimizer_arrays(optimizer),
            world_size=self.world_size,
            numel=sum(int(p.array.size) for p in params),
        )

    def memory_measured(self, activations: int = 0) -> dict[str, int]:
        """Measured bytes per kind: the ledger's three, and ``activations`` (the peak an
        :class:`~sparkgrad.autodiff.saved_memory.ActivationTracker` saw during a step)."""
        ledger = self.memory_ledger()
        return {
            "parameters": ledger.parameter_bytes,
            "gradients": ledger.gradient_bytes,
            "optimizer": ledger.optimizer_bytes,
            "activations": int(activations),
        }

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
