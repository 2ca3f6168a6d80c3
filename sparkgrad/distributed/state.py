"""Process-group state: ``init_process_group`` and friends (``torch.distributed`` names).

The default group lives in *thread-local* storage: with the ``"threads"`` backend every
rank is a thread of one process, and each must see its own rank. Backends:

- ``"threads"``: ranks are threads. Inside ``spawn(fn, n, backend="threads")`` no address
  is needed; otherwise give ``init_method="threads://<name>"`` plus rank and world_size;
- ``"tcp"``: ranks are processes joined by authenticated TCP sockets; ``init_method`` is
  ``"env://"`` (default: ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``) or
  ``"tcp://host:port"``. Every rank must hold the same per-job secret (``secret=`` or
  ``SPARKGRAD_SECRET``, at least 16 bytes); without one ``init_process_group`` raises
  :class:`~sparkgrad.errors.ConfigError` saying how to set it. ``dist.spawn``,
  ``sparkgrad.multiprocessing.spawn`` and the Spark runner draw one for their ranks.
  ``"gloo"`` and ``"nccl"`` are accepted as aliases of ``"tcp"``, so a PyTorch tutorial
  runs after changing only its import.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from sparkgrad.comms.process_group import ProcessGroup
from sparkgrad.comms.rendezvous import tcp_rendezvous
from sparkgrad.comms.spawn import current_launch
from sparkgrad.comms.threads_transport import ThreadWorld
from sparkgrad.comms.transport import Transport
from sparkgrad.distributed.work import WorkQueue
from sparkgrad.errors import CommError, ConfigError

DEFAULT_TIMEOUT = timedelta(seconds=30)
_local = threading.local()
_worlds: dict[str, ThreadWorld] = {}
_worlds_lock = threading.Lock()


class Group:
    """A process group handle (what ``new_group`` returns): a communicator + work queues."""

    def __init__(self, pg: ProcessGroup) -> None:
        self.pg = pg
        self.queue = WorkQueue(f"coll-{pg.transport.rank}")
        self.recv_queue = WorkQueue(f"recv-{pg.transport.rank}")

    def rank(self) -> int:
        """This rank's index inside the group."""
        return self.pg.rank

    def size(self) -> int:
        """Number of ranks in the group."""
        return self.pg.size

    @property
    def ranks(self) -> tuple[int, ...]:
        """The global ranks of the members, in group order."""
        return self.pg.ranks

    def group_rank(self, global_rank: int) -> int:
        """The index inside this group of ``global_rank`` (an error if not a member)."""
        if global_rank not in self.pg.ranks:
            raise CommError(f"rank {global_rank} is not in this group {list(self.pg.ranks)}")
        return self.pg.ranks.index(global_rank)


def _seconds(timeout: Any) -> float:
    if timeout is None:
        return DEFAULT_TIMEOUT.total_seconds()
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    if seconds <= 0:
        raise ConfigError(f"expected a positive timeout, found {timeout!r}")
    return seconds


def _thread_world(init_method: str | None, rank: int, world_size: int) -> tuple[Any, int, int]:
    launch = current_launch()
    if launch is not None and (init_method is None or init_method == "env://"):
        return launch.world.transport(launch.rank), launch.rank, launch.world_size
    if not init_method or not init_method.startswith("threads://"):
        raise ConfigError("backend='threads' outside spawn() needs init_method='threads://<name>'")
    if rank < 0 or world_size < 1:
        raise ConfigError(
            f"expected rank and world_size, found rank={rank}, world_size={world_size}"
        )
    with _worlds_lock:
        world = _worlds.setdefault(init_method, ThreadWorld(world_size))
    if world.world_size != world_size:
        raise ConfigError(f"{init_method} has {world.world_size} ranks, asked for {world_size}")
    return world.transport(rank), rank, world_size


def init_process_group(
    backend: str | None = None,
    init_method: str | None = None,
    timeout: float | timedelta | None = None,
    world_size: int = -1,
    rank: int = -1,
    store: Any = None,
    group_name: str = "",
    pg_options: Any = None,
    *,
    secret: bytes | str | None = None,
    algorithms: dict[str, str] | None = None,
    faults: Any = None,
) -> None:
    """Join the default process group (see the module docstring for backends).

    ``store`` may be a connected transport (for example what
    :func:`~sparkgrad.comms.rendezvous.spark_rendezvous` returns inside a Spark barrier
    task): it is used as is, and ``init_method``/``rank``/``world_size`` are not needed.
    Extra keywords: ``secret`` (per-job HMAC key, bytes or hex, at least 16 bytes; default
    ``SPARKGRAD_SECRET``; the TCP backend refuses to start without one),
    ``algorithms`` (``{"all_reduce": "tree"}``), ``faults`` (a ``FaultPlan``).
    """
    if is_initialized():
        raise CommError("init_process_group called twice; call destroy_process_group first")
    seconds = _seconds(timeout)
    name = (backend or ("threads" if current_launch() else "tcp")).lower()
    if isinstance(store, Transport):  # already connected, e.g. by spark_rendezvous
        transport = store
    elif name == "threads":
        transport, rank, world_size = _thread_world(init_method, rank, world_size)
    elif name in ("tcp", "gloo", "nccl"):
        transport = tcp_rendezvous(
            init_method,
            None if rank < 0 else rank,
            None if world_size < 1 else world_size,
            secret,
            seconds,
        )
    else:
        raise ConfigError(f"expected backend 'threads' or 'tcp' (or gloo/nccl), found {backend!r}")
    pg = ProcessGroup(transport, timeout=seconds, algorithms=algorithms, faults=faults)
    _local.group = Group(pg)
    _local.backend = name


def is_initialized() -> bool:
    """True between ``init_process_group`` and ``destroy_process_group`` (on this rank)."""
    return getattr(_local, "group", None) is not None


def default_group() -> Group:
    """The default group, or a clear error if ``init_process_group`` was not called."""
    group = getattr(_local, "group", None)
    if group is None:
        raise CommError("the default process group is not initialized: call init_process_group")
    return group


def resolve(group: Group | None) -> Group:
    """``group`` itself, or the default group for ``None``."""
    return default_group() if group is None else group


def destroy_process_group(group: Group | None = None) -> None:
    """Leave ``group`` (default: the default group, which also closes the transport)."""
    target = resolve(group)
    target.queue.drain()
    target.recv_queue.drain()
    target.queue.shutdown()
    target.recv_queue.shutdown()
    if group is None or group is default_group():
        target.pg.transport.close()
        _local.group = None


def get_rank(group: Group | None = None) -> int:
    """This rank's index in ``group`` (default: the global rank)."""
    return resolve(group).rank()


def get_world_size(group: Group | None = None) -> int:
    """Number of ranks in ``group`` (default: all)."""
    return resolve(group).size()


def get_backend(group: Group | None = None) -> str:
    """The backend name given to ``init_process_group``."""
    resolve(group)
    return _local.backend


def new_group(
    ranks: list[int] | None = None, timeout: Any = None, backend: Any = None, pg_options: Any = None
) -> Group | None:
    """A sub-group of global ``ranks``; every rank must call it (``None`` for non-members)."""
    parent = default_group()
    ranks = list(range(parent.size())) if ranks is None else sorted(int(r) for r in ranks)
    pg = parent.pg.new_group(ranks)
    if pg is None:
        return None
    if timeout is not None:
        pg.timeout = _seconds(timeout)
    return Group(pg)
