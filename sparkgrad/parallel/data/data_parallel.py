"""``DataParallel``: the DDP of sparkgrad (``torch.nn.parallel.DistributedDataParallel``).

Every rank holds a full copy of the model and runs forward/backward on its own shard of
the batch. If every rank then uses the *average* of all ranks' gradients, every rank
takes the same optimizer step -- the one a single process would take on the whole batch,
because the gradient of a mean loss is the mean of the per-shard gradients::

    dist.init_process_group("threads")            # inside dist.spawn(...), or "tcp"
    model = DataParallel(build_model())           # rank 0's weights everywhere
    for x, y in loader:                           # loader with a DistributedSampler
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()                           # gradients averaged during backward
        opt.step()                                # same step on every rank

How the averaging happens (the same design as PyTorch's ``Reducer``):

1. At construction, rank 0's parameters and buffers are broadcast, and the parameters are
   packed into buckets in *reverse* registration order, the first bucket small
   (:mod:`~sparkgrad.parallel.data.buckets`).
2. Every forward (with gradients on, outside :meth:`no_sync`) arms the next backward.
3. During backward a hook on each parameter copies its fresh gradient into its bucket;
   when a bucket is full its ``all_reduce(AVG)`` is launched *asynchronously*, so it
   travels while backward still computes earlier layers. Buckets launch in index order,
   so every rank issues the same sequence of collectives.
4. The hook that launches the last bucket knows backward is done with the parameters: it
   waits for every bucket and copies the averages back into ``p.grad``. When
   ``loss.backward()`` returns, gradients are averaged; the optimizer needs no change.

Unused parameters. Right after forward, the graph is walked from the outputs (PyTorch
does this only with ``find_unused_parameters=True``; here it is cheap and buys a readable
error): a parameter that cannot receive a gradient would leave its bucket waiting
forever. With ``find_unused_parameters=True`` it counts as a zero gradient at once;
otherwise backward raises :class:`~sparkgrad.errors.GradError` naming it (as soon as
every reachable parameter has its gradient; a parameter that backward reaches only
through the loss, not through the model's outputs, must therefore also appear in
forward). If the loss ignores part of the outputs, the error comes at the next forward
or :meth:`DataParallel.finish`, as PyTorch's does.

:class:`~sparkgrad.parallel.data.ddp.DistributedDataParallel` is this class with PyTorch's
constructor signature (``sparkgrad.nn.parallel.DistributedDataParallel``).

Not done (PyTorch does): rebuilding buckets in the order gradients arrived after the
first step, gradients as views into the buckets, static graphs and mixed devices.

``state_dict()`` returns the wrapped module's keys *without* PyTorch DDP's ``module.``
prefix, so what a data-parallel run saves loads straight into the plain model (and into
PyTorch). ``named_parameters()`` keeps the ``module.`` prefix, as for any wrapper module.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sparkgrad import distributed as dist
from sparkgrad.autodiff.function import edge_to
from sparkgrad.autodiff.grad_mode import is_grad_enabled
from sparkgrad.autodiff.graph import topological_order
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.comms.process_group import ProcessGroup
from sparkgrad.distributed.state import Group, resolve
from sparkgrad.errors import CommError, ConfigError, GradError
from sparkgrad.parallel.data.buckets import (
    Bucket,
    broadcast_coalesced,
    compute_bucket_assignment_by_size,
)
from sparkgrad.parallel.data.ddp_timeline import BucketTiming, StepTimeline

MB = 1024 * 1024


def _output_tensors(out: Any) -> list[Tensor]:
    """The tensors inside a forward's output (a tensor, or tuples/lists/dicts of them)."""
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _output_tensors(item)]
    return []


class DataParallel(Module):
    """Average gradients over the ranks of ``process_group`` during backward.

    Args:
        module: the model; every rank builds the same architecture.
        process_group: a group from ``sparkgrad.distributed.new_group`` (or a comms
            ``ProcessGroup``); default: the default group of ``init_process_group``.
        bucket_cap_mb: target bucket size in megabytes (PyTorch's default, 25).
        broadcast_buffers: copy rank 0's buffers (e.g. running statistics) to every rank
            at each training forward.
        find_unused_parameters: treat a parameter that gets no gradient in a synced
            backward as a zero gradient instead of raising (its ``p.grad`` becomes the
            average, zeros if no rank used it; PyTorch leaves a grad unused on every rank
            at None, which matters for weight decay and Adam's moments).
        first_bucket_mb: size of the first bucket (the last layers), so communication
            starts early (PyTorch: 1 MB).
        init_sync: broadcast rank 0's parameters and buffers at construction (False: the
            caller guarantees equal replicas, as PyTorch's ``init_sync=False``).
    """

    def __init__(
        self,
        module: Module,
        process_group: Any = None,
        bucket_cap_mb: float = 25,
        broadcast_buffers: bool = True,
        find_unused_parameters: bool = False,
        first_bucket_mb: float = 1,
        init_sync: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise ConfigError(f"DataParallel wraps a Module, found {type(module).__name__}")
        if bucket_cap_mb <= 0 or first_bucket_mb <= 0:
            raise ConfigError(
                f"expected positive bucket sizes, found bucket_cap_mb={bucket_cap_mb}, "
                f"first_bucket_mb={first_bucket_mb}"
            )
        if isinstance(process_group, ProcessGroup):
            process_group = Group(process_group)
        if process_group is not None and not isinstance(process_group, Group):
            raise ConfigError(
                "process_group: expected None (the default group), a group from "
                f"sparkgrad.distributed.new_group or a comms ProcessGroup, found "
                f"{type(process_group).__name__}"
            )
        if process_group is None and not dist.is_initialized():
            raise CommError(
                "DataParallel needs a process group: call "
                "sparkgrad.distributed.init_process_group(...) on every rank first"
            )
        self.module = module
        self.process_group: Group | None = process_group
        self.world_size = resolve(process_group).size()
        self._src = resolve(process_group).ranks[0]  # global rank of the group's rank 0
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.require_backward_grad_sync = True
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._names = {id(p): n for n, p in named}
        if init_sync:
            self._broadcast([p for _, p in named] + list(module.buffers()))

        reverse = [p for _, p in reversed(named)]
        limits = [max(1, int(first_bucket_mb * MB)), max(1, int(bucket_cap_mb * MB))]
        indices, _ = compute_bucket_assignment_by_size([p.array for p in reverse], limits)
        self.buckets = [Bucket(k, [reverse[i] for i in idx]) for k, idx in enumerate(indices)]
        self._where = {
            id(p): (bucket, pos) for bucket in self.buckets for pos, p in enumerate(bucket.params)
        }
        # wrapping a module again replaces the previous wrapper's hooks
        for handle in module.__dict__.pop("_data_parallel_hooks", []):
            handle.remove()
        module.__dict__["_data_parallel_hooks"] = [
            p.register_post_accumulate_grad_hook(self._on_grad) for _, p in named
        ]
        self._phase = "idle"  # "armed" after a synced forward, "finished" after reduction
        self._ready: set[int] = set()
        self._pending: set[int] = set()  # reachable parameters still without gradient
        self._next_bucket = 0
        self._t0: float | None = None
        self.stats = StepTimeline()

    # ---- the wrapped module -----------------------------------------------------------
    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        """Run the module; with gradients on (and outside no_sync), arm the next backward.

        Buffers are broadcast from rank 0 only in training mode: evaluation may run on one
        rank alone, and a collective there would wait forever for the others.
        """
        self._check_previous_iteration()
        grad_on = is_grad_enabled()
        if self.training and grad_on and self.broadcast_buffers and self.world_size > 1:
            self._broadcast(list(self.module.buffers()))
        out = self.module(*inputs, **kwargs)
        if grad_on and self.require_backward_grad_sync and self.buckets:
            self._prepare_for_backward(_output_tensors(out))
        else:
            self._phase = "idle"
        return out

    def state_dict(
        self, destination: dict | None = None, prefix: str = "", keep_vars: bool = False
    ) -> Any:
        """The wrapped module's state dict, with plain keys (``0.weight``, no ``module.``)."""
        return self.module.state_dict(destination, prefix, keep_vars)

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> Any:
        """Load plain keys into the wrapped module (a ``module.`` prefix is also accepted)."""
        if state_dict and all(str(k).startswith("module.") for k in state_dict):
            state_dict = {str(k)[len("module.") :]: v for k, v in state_dict.items()}
        return self.module.load_state_dict(state_dict, strict)

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Forward+backward inside accumulate gradients locally, without communication.

        The first synced backward after it reduces the accumulated gradients, so ``k``
        micro-batches (``k-1`` under ``no_sync``) give the gradient of their sum.
        """
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def finish(self) -> None:
        """Make sure the last synced backward's reduction is complete (idempotent).

        Normally backward completes it by itself; this raises the unused-parameter error
        if a backward ended with parameters that never got a gradient.
        """
        if self._phase == "armed" and self._ready:
            if self._next_bucket < len(self.buckets):
                self._raise_unused()
            self._finalize()

    # ---- one iteration ----------------------------------------------------------------
    def _broadcast(self, tensors: list[Tensor]) -> None:
        if self.world_size > 1:
            broadcast_coalesced(tensors, self._src, self.process_group)

    def _check_previous_iteration(self) -> None:
        self.finish()  # a backward that left buckets behind fails here at the latest

    def _prepare_for_backward(self, outputs: list[Tensor]) -> None:
        for bucket in self.buckets:
            bucket.reset()
        self._phase, self._ready, self._next_bucket = "armed", set(), 0
        self._t0 = None
        self.stats = StepTimeline()
        reachable: set[int] = set()
        for out in outputs:
            if out.requires_grad:
                out.register_hook(self._on_backward_start)
                order = topological_order([edge_to(out)])  # nodes and the leaves they reach
                reachable |= {id(v) for v in order if id(v) in self._where}
        self._pending = set(reachable)
        if self.find_unused_parameters:
            for bucket in self.buckets:
                for p in bucket.params:
                    if id(p) not in reachable:
                        self._mark_ready(p)

    def _on_backward_start(self, grad: Tensor) -> None:
        if self._t0 is None:
            self._t0 = time.perf_counter()

    def _on_grad(self, p: Tensor) -> None:
        """Post-accumulate hook of every parameter: its ``p.grad`` is final for this pass."""
        if self._phase == "idle":  # no_sync, eval, or the module was called directly
            return
        if self._phase == "finished":
            raise GradError(
                f"DataParallel: parameter '{self._names[id(p)]}' got a gradient after this "
                "iteration's gradients were already averaged. Run forward again before each "
                "backward (use no_sync() to accumulate several backwards)"
            )
        was_pending = id(p) in self._pending
        self._pending.discard(id(p))
        self._mark_ready(p)
        if self._phase == "armed" and was_pending and not self._pending:
            self._raise_unused()  # every reachable gradient arrived, a bucket still waits

    def _mark_ready(self, p: Tensor) -> None:
        name = self._names[id(p)]
        if id(p) in self._ready:
            raise GradError(
                f"DataParallel: parameter '{name}' received a gradient twice in one synced "
                "iteration (two backward calls after one forward?). Call forward again, "
                "or use no_sync() for all but the last backward"
            )
        if self._t0 is None:
            self._t0 = time.perf_counter()
        self._ready.add(id(p))
        self.stats.events.append(("grad", name))
        bucket, position = self._where[id(p)]
        bucket.fill(position)
        while self._next_bucket < len(self.buckets) and self.buckets[self._next_bucket].ready:
            self._launch(self.buckets[self._next_bucket])
            self._next_bucket += 1
        if self._next_bucket == len(self.buckets):
            self._finalize()

    def _launch(self, bucket: Bucket) -> None:
        group = self.process_group

        def all_reduce(buffer: Any) -> Any:
            return dist.all_reduce(buffer, op=dist.ReduceOp.AVG, group=group, async_op=True)

        bucket.launch(all_reduce)
        self.stats.events.append(("launch", bucket.index))
        self.stats.buckets.append(
            BucketTiming(
                bucket.index, len(bucket.params), bucket.nbytes, bucket.launched_at - self._t0
            )
        )

    def _finalize(self) -> None:
        last_grad = time.perf_counter()
        for bucket, timing in zip(self.buckets, self.stats.buckets):
            timing.wait_s = bucket.wait_and_unpack()
            self.stats.events.append(("wait", bucket.index))
        self.stats.backward_s = last_grad - self._t0
        self.stats.total_s = time.perf_counter() - self._t0
        self._phase = "finished"

    def _raise_unused(self) -> None:
        missing = [
            self._names[id(p)]
            for bucket in self.buckets
            for p in bucket.params
            if id(p) not in self._ready
        ]
        self._phase = "idle"
        raise GradError(
            f"DataParallel: parameters {missing} got no gradient in this synced backward, so "
            "their buckets were never reduced (PyTorch: 'Expected to have finished reduction "
            "in the prior iteration'). Make the loss depend on every parameter, or pass "
            "find_unused_parameters=True to count their gradients as zeros"
        )
