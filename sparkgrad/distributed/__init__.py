"""``import sparkgrad.distributed as dist``: the ``torch.distributed`` API over sparkgrad.

A PyTorch tutorial's collective calls run after changing the import::

    import sparkgrad.distributed as dist

    def run(rank, world_size):
        dist.init_process_group("threads", rank=rank, world_size=world_size)
        t = sg.ones(4) * (rank + 1)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)   # t.array updated in place
        dist.destroy_process_group()

    dist.spawn(run, world_size=4)                   # threads; backend="tcp": processes

Tensors (their ``.array``) and plain NumPy/CuPy arrays are accepted everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sparkgrad.comms.reduce_ops import ReduceOp
from sparkgrad.comms.spawn import run_processes, run_threads
from sparkgrad.distributed.collectives import (
    all_gather,
    all_gather_into_tensor,
    all_reduce,
    all_to_all,
    all_to_all_single,
    barrier,
    broadcast,
    gather,
    irecv,
    isend,
    monitored_barrier,
    recv,
    reduce,
    reduce_scatter,
    reduce_scatter_tensor,
    scatter,
    send,
)
from sparkgrad.distributed.state import (
    Group,
    destroy_process_group,
    get_backend,
    get_rank,
    get_world_size,
    init_process_group,
    is_initialized,
    new_group,
)
from sparkgrad.distributed.work import Work
from sparkgrad.errors import ConfigError

ProcessGroup = Group


class _DeprecatedReduceOp:
    """``torch.distributed.reduce_op``: the deprecated alias of :class:`ReduceOp`.

    Every attribute read gives PyTorch's ``FutureWarning``; the members are ReduceOp's.
    """

    def __getattr__(self, name: str) -> Any:
        import warnings

        if name.startswith("__") and name != "__members__":
            raise AttributeError(name)  # copy, pickle and friends probing, not a user

        warnings.warn(
            "`sparkgrad.distributed.reduce_op` is deprecated, please use "
            "`sparkgrad.distributed.ReduceOp` instead",
            FutureWarning,
            stacklevel=2,
        )
        if name == "__members__":
            return ReduceOp.__members__
        try:
            return ReduceOp[name]
        except KeyError:
            raise AttributeError(f"reduce_op has no member {name!r}") from None


reduce_op = _DeprecatedReduceOp()


def is_available() -> bool:
    """Always True: sparkgrad's distributed package needs nothing extra."""
    return True


def spawn(
    fn: Callable[..., Any],
    world_size: int,
    backend: str = "threads",
    args: tuple = (),
    timeout: float = 120.0,
) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` on every rank; re-raise the first failure.

    ``backend="threads"``: ranks are threads of this process (fast; ``fn`` calls
    ``init_process_group("threads")``). ``backend="tcp"``: ranks are fresh processes with
    ``MASTER_ADDR``/``MASTER_PORT``/``RANK``/``WORLD_SIZE``/``SPARKGRAD_SECRET`` set, so
    ``init_process_group("tcp")`` (``env://``) connects them; ``fn`` must be importable.
    Returns the values ``fn`` returned, in rank order.
    """
    if backend == "threads":
        return run_threads(fn, world_size, args)
    if backend in ("tcp", "gloo", "nccl"):
        return run_processes(fn, world_size, args, timeout=timeout)
    raise ConfigError(f"spawn: expected backend 'threads' or 'tcp', found {backend!r}")
