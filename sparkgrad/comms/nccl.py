"""The NCCL-shaped API: unique id, ``Communicator``, out-of-place calls, group calls.

As with NCCL, rank 0 makes a unique id, shares it with the other ranks out of band (a
file, an environment variable, Spark's ``allGather``), and every rank builds its
communicator from it::

    uid = nccl.get_unique_id()                      # rank 0; uid.to_bytes() travels
    comm = nccl.Communicator(rank, nranks, uid)     # every rank (ncclCommInitRank)
    comm.all_reduce(sendbuf, recvbuf, op="sum")     # recvbuf=None: in place
    nccl.group_start(); comm.send(a, 1); comm.recv(b, 1); nccl.group_end()

A unique id is ``tcp://127.0.0.1:port`` plus a fresh job secret, or ``threads://name``
for thread ranks. ``Communicator`` also accepts a transport that is already connected
(for example the one :func:`~sparkgrad.comms.rendezvous.spark_rendezvous` returns).
Between ``group_start()`` and ``group_end()`` calls are queued; ``group_end`` runs every
send first, then the rest in order, so paired send/recv never deadlock.
Set ``NCCL_DEBUG=INFO`` for NCCL-style log lines and ``NCCL_ALGO`` to force algorithms.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sparkgrad.comms.auth import new_secret
from sparkgrad.comms.process_group import ProcessGroup
from sparkgrad.comms.rendezvous import tcp_rendezvous
from sparkgrad.comms.spawn import free_port
from sparkgrad.comms.threads_transport import ThreadWorld
from sparkgrad.comms.transport import Transport
from sparkgrad.errors import CommError, ConfigError

_worlds: dict[str, ThreadWorld] = {}
_lock = threading.Lock()
_group = threading.local()
UNIQUE_ID_BYTES = 128  # as NCCL_UNIQUE_ID_BYTES


@dataclass(frozen=True)
class UniqueId:
    """Where the ranks meet (``tcp://host:port`` or ``threads://name``) and the job secret."""

    address: str
    secret: bytes = b""

    def to_bytes(self) -> bytes:
        """128 bytes, zero padded (what travels between ranks)."""
        raw = self.address.encode() + b"\n" + self.secret.hex().encode()
        if len(raw) > UNIQUE_ID_BYTES:
            raise ConfigError(f"unique id longer than {UNIQUE_ID_BYTES} bytes: {self.address}")
        return raw.ljust(UNIQUE_ID_BYTES, b"\0")

    @classmethod
    def from_bytes(cls, raw: bytes) -> UniqueId:
        """Parse :meth:`to_bytes` output, with a clear error for anything else."""
        try:
            address, secret = bytes(raw).rstrip(b"\0").decode().split("\n")
            return cls(address, bytes.fromhex(secret))
        except ValueError:
            raise ConfigError("expected a unique id made by get_unique_id().to_bytes()") from None


def get_unique_id(backend: str = "tcp", host: str = "127.0.0.1") -> UniqueId:
    """A fresh id: a free port on ``host`` and a new secret, or a new thread world name."""
    if backend == "threads":
        return UniqueId(f"threads://{uuid.uuid4().hex}")
    if backend != "tcp":
        raise ConfigError(f"expected backend 'tcp' or 'threads', found {backend!r}")
    return UniqueId(f"tcp://{host}:{free_port()}", new_secret())


def _transport(rank: int, nranks: int, uid: Any, timeout: float) -> Transport:
    if isinstance(uid, Transport):
        return uid
    if isinstance(uid, bytes | bytearray):
        uid = UniqueId.from_bytes(uid)
    if not isinstance(uid, UniqueId):
        raise ConfigError(
            f"expected a UniqueId, its bytes or a transport, found {type(uid).__name__}"
        )
    if uid.address.startswith("threads://"):
        with _lock:
            world = _worlds.setdefault(uid.address, ThreadWorld(nranks))
        return world.transport(rank)
    return tcp_rendezvous(uid.address, rank, nranks, uid.secret, timeout)


class Communicator:
    """One rank of an NCCL-like communicator (``ncclComm_t``)."""

    def __init__(
        self, rank: int, nranks: int, unique_id_or_store: Any, timeout: float = 30.0, **options: Any
    ) -> None:
        transport = _transport(rank, nranks, unique_id_or_store, timeout)
        if transport.rank != rank or transport.world_size != nranks:
            raise ConfigError(
                f"transport is rank {transport.rank} of {transport.world_size}, "
                f"expected rank {rank} of {nranks}"
            )
        self.group = ProcessGroup(transport, timeout=timeout, **options)

    def rank_id(self) -> int:
        """This rank (``ncclCommUserRank``)."""
        return self.group.rank

    def size(self) -> int:
        """Number of ranks (``ncclCommCount``)."""
        return self.group.size

    def calls(self) -> list[dict[str, Any]]:
        """The record of every call so far (what ``sparkgrad.comms.model`` predicts from)."""
        return self.group.calls()

    def _call(self, fn: Callable[[], Any], is_send: bool = False) -> Any:
        queue = getattr(_group, "queue", None)
        if queue is None:
            return fn()
        queue.append((is_send, fn))
        return None

    @staticmethod
    def _out(recvbuf: Any, result: Any) -> Any:
        if recvbuf is None:
            return result
        recvbuf[...] = result.reshape(recvbuf.shape)
        return recvbuf

    def all_reduce(
        self, sendbuf: Any, recvbuf: Any = None, op: Any = "sum", algorithm: str | None = None
    ) -> Any:
        """Reduce ``sendbuf`` over all ranks into ``recvbuf`` (in place when None)."""

        def run() -> Any:
            buf = sendbuf if recvbuf is None else self._out(recvbuf, sendbuf)
            return self.group.all_reduce(buf, op, algorithm)

        return self._call(run)

    def broadcast(self, buf: Any, root: int = 0, algorithm: str | None = None) -> Any:
        """Copy the root's ``buf`` to every rank, in place."""
        return self._call(lambda: self.group.broadcast(buf, root, algorithm))

    def reduce(
        self,
        sendbuf: Any,
        recvbuf: Any = None,
        op: Any = "sum",
        root: int = 0,
        algorithm: str | None = None,
    ) -> Any:
        """Reduce onto ``root``'s ``recvbuf`` (``sendbuf`` untouched on the others)."""

        def run() -> Any:
            buf = sendbuf
            if recvbuf is not None and self.group.rank == root:
                recvbuf[...] = sendbuf
                buf = recvbuf
            self.group.reduce(buf, root, op, algorithm)
            return buf if self.group.rank == root else None

        return self._call(run)

    def all_gather(self, sendbuf: Any, recvbuf: Any = None) -> Any:
        """``recvbuf`` (``nranks`` x ``sendbuf``) gets every rank's ``sendbuf`` in rank order."""
        return self._call(lambda: self._out(recvbuf, self.group.all_gather(sendbuf)))

    def reduce_scatter(self, sendbuf: Any, recvbuf: Any = None, op: Any = "sum") -> Any:
        """``recvbuf`` gets block ``rank`` of the reduction of ``sendbuf`` (``nranks`` blocks)."""
        return self._call(lambda: self._out(recvbuf, self.group.reduce_scatter(sendbuf, op)))

    def all_to_all(self, sendbuf: Any, recvbuf: Any = None) -> Any:
        """Block ``j`` of ``sendbuf`` to rank ``j``; block ``i`` of ``recvbuf`` from rank ``i``."""
        return self._call(lambda: self._out(recvbuf, self.group.all_to_all(sendbuf)))

    def send(self, buf: Any, peer: int) -> None:
        """Send ``buf`` to ``peer``."""
        return self._call(lambda: self.group.send(buf, peer), is_send=True)

    def recv(self, buf: Any, peer: int) -> Any:
        """Receive into ``buf`` from ``peer``."""
        return self._call(lambda: self.group.recv(buf, peer))

    def barrier(self) -> None:
        """Wait for every rank (not in NCCL; convenient)."""
        return self._call(self.group.barrier)

    def destroy(self) -> None:
        """Close the transport (``ncclCommDestroy``)."""
        self.group.transport.close()

    abort = destroy


def comm_init_rank(nranks: int, unique_id: Any, rank: int, **options: Any) -> Communicator:
    """``ncclCommInitRank(comm, nranks, commId, rank)``, argument order included."""
    return Communicator(rank, nranks, unique_id, **options)


def group_start() -> None:
    """Start queueing calls of this thread (``ncclGroupStart``); groups may nest."""
    _group.depth = getattr(_group, "depth", 0) + 1
    if _group.depth == 1:
        _group.queue = []


def group_end() -> None:
    """Run the queued calls: all sends first, then the rest in call order (``ncclGroupEnd``)."""
    depth = getattr(_group, "depth", 0)
    if depth == 0:
        raise CommError("group_end() without a matching group_start()")
    _group.depth = depth - 1
    if _group.depth:
        return
    queued, _group.queue = _group.queue, None
    for _is_send, fn in sorted(queued, key=lambda q: not q[0]):
        fn()
