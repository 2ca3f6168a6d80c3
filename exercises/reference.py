"""Where the exercises plug into sparkgrad: every import of the project, in this one file.

The exercise files and their tests (``tests/exercises/``) import the project only from
here, so when a module of sparkgrad moves, this file is the one to update. It holds three
things:

1. **Building blocks** an exercise may use (``from exercises.reference import ...``):
   the pieces around the function you write, which you are not asked to rebuild.
2. **The reference solutions**: for each exercise, the project's own code under the
   names the exercise uses (``SOLUTIONS``). By default the tests check these, so in CI
   the same tests that check your version check the project. Read them once you are done.
3. **Seams**: the few places where a test puts a learner's function where the project's
   runs (an algorithm in the collectives registry, a hook of ``DataParallel``, the action
   list of a pipeline stage, the step of ZeRO), and what the tests read back.

No solution is spelled out here: each entry only points at the project's function.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sparkgrad.distributed as dist
from sparkgrad.autodiff import graph as _graph
from sparkgrad.autodiff.function import Context, Function, Node, edge_to
from sparkgrad.autodiff.grad_mode import no_grad
from sparkgrad.autodiff.graph import sum_to_shape
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.comms.algorithms import REGISTRY as _ALGORITHMS
from sparkgrad.comms.algorithms import ring as _ring
from sparkgrad.comms.algorithms.layout import blocks
from sparkgrad.comms.process_group import ProcessGroup
from sparkgrad.comms.reduce_ops import ReduceOp
from sparkgrad.comms.spawn import current_launch, run_threads
from sparkgrad.distributed.state import resolve
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.data.data_parallel import DataParallel
from sparkgrad.parallel.pipeline import schedules as _schedules
from sparkgrad.parallel.pipeline.pipeline_parallel import PipelineParallel
from sparkgrad.parallel.tensor import comm_ops as _tp
from sparkgrad.parallel.zero.strategy import ZeRO

__all__ = [
    # building blocks
    "ConfigError",
    "Context",
    "Function",
    "Node",
    "ReduceOp",
    "Tensor",
    "blocks",
    "edge_to",
    "no_grad",
    "sum_to_shape",
    # the project's strategies the tests drive
    "DataParallel",
    "PipelineParallel",
    "ZeRO",
    # solutions, learner files, seams
    "LEARNER_FILES",
    "SOLUTIONS",
]


# ---- 2. the reference solutions: the project's own code ----------------------------------
def _backward(root: Tensor, grad: Any = None) -> None:
    """sparkgrad.autodiff.graph.backward for one root (the exercise's signature)."""
    _graph.backward([root], None if grad is None else [grad])


def _zero_step(zero: Any) -> None:
    """ZeRO.train_step's lines after ``loss.backward()`` for stages 1 and 2."""
    zero._reduce_gradients()  # stage 2: flatten, reduce_scatter(AVG), drop p.grad
    zero.optimizer.step()  # on this rank's shard only
    unit = zero.units[0]
    unit.gather(out=unit.full)  # all_gather: every rank gets every updated shard


SOLUTIONS: dict[str, types.SimpleNamespace] = {
    "backward": types.SimpleNamespace(
        topological_order=_graph.topological_order,  # sparkgrad/autodiff/graph.py
        backward=_backward,
    ),
    "ring": types.SimpleNamespace(  # sparkgrad/comms/algorithms/ring.py
        ring_reduce_scatter=_ring.ring_reduce_scatter,
        ring_all_gather=_ring.ring_all_gather,
        ring_all_reduce=_ring.ring_all_reduce,
    ),
    "ddp_hook": types.SimpleNamespace(  # sparkgrad/parallel/data/data_parallel.py
        mark_ready=DataParallel._mark_ready,
    ),
    "fg": types.SimpleNamespace(  # sparkgrad/parallel/tensor/layers.py
        copy_to_tensor_parallel_region=_tp.copy_to_tensor_parallel_region,
        reduce_from_tensor_parallel_region=_tp.reduce_from_tensor_parallel_region,
    ),
    "1f1b": types.SimpleNamespace(  # sparkgrad/parallel/pipeline/schedules.py
        one_f_one_b_schedule=_schedules.one_f_one_b_schedule,
    ),
    "zero_step": types.SimpleNamespace(  # sparkgrad/parallel/zero/strategy.py
        zero_step=_zero_step,
    ),
}
"""exercise -> the project's functions, under the names the exercise file defines."""

LEARNER_FILES = {
    "backward": "exercises.ch01_backward",
    "ring": "exercises.ch03_ring_all_reduce",
    "ddp_hook": "exercises.ch04_ddp_bucket_hook",
    "1f1b": "exercises.ch05_one_f_one_b",
    "fg": "exercises.ch05_tensor_parallel_f_g",
    "zero_step": "exercises.ch06_zero_step",
}
"""exercise -> the module a learner fills in."""


# ---- 3. seams ----------------------------------------------------------------------------
def run_ranks(world_size: int, fn: Callable[[int, Any], Any], timeout: float = 10.0) -> list:
    """``fn(rank, group)`` on ``world_size`` thread ranks of a default process group.

    ``group`` is the torch-style handle (``group.pg`` is the comms ProcessGroup with the
    array collectives). Results come back in rank order; the first failure is re-raised.
    """

    def rank_fn(rank: int, size: int) -> Any:
        dist.init_process_group("threads", rank=rank, world_size=size, timeout=timeout)
        try:
            return fn(rank, resolve(None))
        finally:
            dist.destroy_process_group()

    return dist.spawn(rank_fn, world_size)


def run_comm_ranks(world_size: int, fn: Callable[[ProcessGroup], Any]) -> list:
    """``fn(pg)`` on ``world_size`` thread ranks, each with its own comms ProcessGroup."""

    def rank_fn(rank: int, size: int) -> Any:
        return fn(ProcessGroup(current_launch().world.transport(rank), timeout=10.0))

    return run_threads(rank_fn, world_size)


@contextmanager
def ring_algorithm(collective: str, fn: Callable[..., None]) -> Iterator[None]:
    """Inside the block, ``pg.<collective>(..., algorithm="ring")`` runs ``fn(ch, buf, ...)``."""
    table = _ALGORITHMS[collective]
    before = table["ring"]
    table["ring"] = fn
    try:
        yield
    finally:
        table["ring"] = before


def collectives_run(pg: Any) -> list[tuple[str, int]]:
    """``(collective, bytes)`` of every call ``pg`` (a group or ProcessGroup) ran so far."""
    pg = getattr(pg, "pg", pg)
    return [(h["collective"], h["nbytes"]) for h in pg.history]


def install_mark_ready(ddp: Any, fn: Callable[[Any, Tensor], None]) -> None:
    """Make ``ddp`` call ``fn(ddp, p)`` when parameter ``p``'s gradient is final."""
    ddp._mark_ready = types.MethodType(fn, ddp)


def record_launches(ddp: Any) -> list[tuple[int, int]]:
    """From now on, each bucket launch appends ``(bucket index, gradients still missing)``."""
    launches: list[tuple[int, int]] = []
    launch = ddp._launch

    def recording(bucket: Any) -> None:
        launches.append((bucket.index, sum(b.pending for b in ddp.buckets)))
        launch(bucket)

    ddp._launch = recording
    return launches


def pipeline_with_schedule(
    model: Any, optimizer_factory: Any, loss_fn: Any, micro_batches: int, schedule: Callable
) -> Any:
    """A PipelineParallel stage that walks ``schedule(stage, stages, micro_batches)``."""
    s = PipelineParallel(model, optimizer_factory, loss_fn, micro_batches=micro_batches)
    s.actions = schedule(s.stage, s.stages, micro_batches)
    return s


def simulate_schedule(
    schedule: Callable, stages: int, micro_batches: int, forward: float, backward: float
) -> float:
    """The project's event simulation of ``schedule`` on every stage: its idle fraction.

    Raises :class:`~sparkgrad.errors.ConfigError` when the stages would wait on each
    other forever (a deadlock with blocking receives).
    """
    name = "exercise under test"
    _schedules.SCHEDULES[name] = schedule
    try:
        return _schedules.simulate(name, stages, micro_batches, forward, backward)
    finally:
        del _schedules.SCHEDULES[name]


def zero2(model: Any, optimizer_factory: Any, loss_fn: Any) -> Any:
    """ZeRO stage 2 over the default group (gradients and optimizer state sharded)."""
    return ZeRO(model, optimizer_factory, loss_fn, stage=2)


def zero_train_step(zero: Any, x: Tensor, y: Tensor, step: Callable[[Any], None]) -> float:
    """ZeRO.train_step up to ``loss.backward()``, then ``step(zero)``; the local loss."""
    zero.model.train()
    zero.optimizer.zero_grad()
    for p in zero.model.parameters():
        p.grad = None
    loss = zero.loss_fn(zero.model(x), y)
    loss.backward()
    step(zero)
    return float(loss.item())
