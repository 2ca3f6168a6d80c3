"""Rendezvous: how ranks find each other's listening addresses before the mesh is built.

Three ways in, all ending in a list ``addresses[rank] = (host, port)`` handed to
:meth:`~sparkgrad.comms.tcp_transport.TcpTransport.connect`:

- ``tcp://host:port``: rank 0 opens a small *store* there; every other rank dials it
  (authenticated with the job secret), tells it its own listening address, and gets the
  full table back. The store serves handshakes concurrently with one deadline each
  (:mod:`.admission`), so a stranger holding a connection open delays nobody;
- ``env://``: the same, with host and port from ``MASTER_ADDR``/``MASTER_PORT`` and
  ``RANK``/``WORLD_SIZE`` when not given (PyTorch's variables);
- Spark: the tasks of a barrier stage exchange ``"host:port"`` strings through
  ``BarrierTaskContext.allGather``; :func:`spark_addresses` turns that list into the table
  (a pure function, unit-tested without Spark) and :func:`spark_rendezvous` does it all.

Store messages are bounded binary records (``u16 port | u8 len | host``), never pickle.
The TCP ways need the per-job secret (``secret=`` or ``SPARKGRAD_SECRET``); without one
they refuse to start (:func:`~sparkgrad.comms.auth.resolve_secret`).
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from typing import Any

from sparkgrad.comms.admission import HANDSHAKE_SECONDS, Admission
from sparkgrad.comms.auth import (
    check_secret,
    new_secret,
    recv_exact,
    resolve_secret,
    send_all,
    server_handshake,
)
from sparkgrad.comms.tcp_transport import TcpTransport, dial_authenticated, listen
from sparkgrad.errors import CollectiveTimeout, CommError, ConfigError

log = logging.getLogger("sparkgrad.comms")
Address = tuple[str, int]


def parse_address(text: str) -> Address:
    """``"host:port"`` -> ``("host", port)``, with a clear error for anything else."""
    host, sep, port = str(text).strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"expected an address 'host:port' with port 1..65535, found {text!r}")
    if len(host.encode()) > 255:
        raise ConfigError(f"host name longer than 255 bytes: {host[:40]!r}...")
    return host, int(port)


def spark_addresses(gathered: list[str], rank: int) -> list[Address]:
    """The address table from ``BarrierTaskContext.allGather`` (one ``"host:port"`` per task).

    ``allGather`` returns the messages ordered by partition id, which is the rank. Checks
    that ``rank`` is in range and that no two ranks claim the same address.
    """
    addresses = [parse_address(g) for g in gathered]
    if not 0 <= rank < len(addresses):
        raise ConfigError(f"rank {rank} outside the {len(addresses)} gathered addresses")
    if len(set(addresses)) != len(addresses):
        raise ConfigError(f"two ranks gathered the same address: {gathered}")
    return addresses


def _pack(address: Address) -> bytes:
    host = address[0].encode()
    return struct.pack("<HB", address[1], len(host)) + host


def _unpack(sock: socket.socket, deadline: float) -> Address:
    port, n = struct.unpack("<HB", recv_exact(sock, 3, deadline))
    return recv_exact(sock, n, deadline).decode(), port


class _StoreTable:
    """What rank 0's store has heard so far: rank -> (address, open socket to reply on)."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.entries: dict[int, tuple[Address, socket.socket]] = {}
        self._cond = threading.Condition()

    def add(self, rank: int, address: Address, sock: socket.socket) -> None:
        with self._cond:
            if rank == 0 or rank in self.entries:
                raise CommError(f"a second connection claims rank {rank}")
            self.entries[rank] = (address, sock)
            self._cond.notify_all()

    def wait_full(self, deadline: float) -> list[int]:
        """Wait until every rank but 0 is in, or ``deadline``; return the missing ranks."""
        with self._cond:
            while len(self.entries) < self.world_size - 1:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return sorted(set(range(1, self.world_size)) - set(self.entries))


def _ask_store(
    master: Address, rank: int, world_size: int, mine: Address, secret: bytes, deadline: float
) -> list[Address]:
    """A rank other than 0: tell the store our address, get the whole table back."""
    sock = dial_authenticated(master, secret, rank, world_size, deadline)
    with sock:
        send_all(sock, _pack(mine), deadline)
        (count,) = struct.unpack("<H", recv_exact(sock, 2, deadline))
        if count != world_size:
            raise CommError(f"store sent {count} addresses, expected {world_size}")
        return [_unpack(sock, deadline) for _ in range(count)]


def _serve_store(
    master: Address, world_size: int, mine: Address, secret: bytes, timeout: float
) -> list[Address]:
    """Rank 0: serve the store until every rank has told its address, then answer all."""
    deadline = time.monotonic() + timeout
    table = _StoreTable(world_size)

    def handshake(sock: socket.socket, addr: tuple, until: float) -> None:
        rank = server_handshake(sock, secret, world_size, until)
        table.add(rank, _unpack(sock, until), sock)

    server = socket.create_server(master, reuse_port=False, backlog=128)
    name = f"rendezvous store at {master[0]}:{master[1]}"
    with Admission(server, handshake, name=name, handshake_s=min(timeout, HANDSHAKE_SECONDS)):
        missing = table.wait_full(deadline)
    if missing:
        for _, sock in table.entries.values():
            sock.close()
        raise CollectiveTimeout(f"the store waited {timeout:g} s; missing ranks {missing}")
    everyone = [mine] + [table.entries[r][0] for r in range(1, world_size)]
    reply = struct.pack("<H", world_size) + b"".join(_pack(a) for a in everyone)
    answer_by = time.monotonic() + min(timeout, HANDSHAKE_SECONDS)
    for rank, (_, sock) in sorted(table.entries.items()):
        with sock:
            try:
                send_all(sock, reply, answer_by)
            except OSError as exc:
                raise CommError(f"{name}: could not answer rank {rank}: {exc}") from None
    return everyone


def store_exchange(
    master: Address, rank: int, world_size: int, mine: Address, secret: bytes, timeout: float
) -> list[Address]:
    """Every rank's address, gathered by rank 0's store at ``master`` (rank 0 serves it).

    The whole exchange has one deadline, ``timeout`` seconds from now, on every rank: a
    peer that never comes, or a stranger that holds a connection open, ends it with
    :class:`~sparkgrad.errors.CollectiveTimeout` in time, never a bare ``TimeoutError``.
    """
    try:
        if rank != 0:
            return _ask_store(master, rank, world_size, mine, secret, time.monotonic() + timeout)
        return _serve_store(master, world_size, mine, secret, timeout)
    except CollectiveTimeout as exc:
        raise CollectiveTimeout(
            f"rendezvous (rank {rank} of {world_size}, store at {master[0]}:{master[1]}, "
            f"timeout {timeout:g} s): {exc}"
        ) from None


def parse_init_method(
    init_method: str | None, rank: int | None, world_size: int | None
) -> tuple[Address, int, int]:
    """``(master address, rank, world_size)`` from ``env://`` or ``tcp://host:port``."""
    method = init_method or "env://"
    if method.startswith("env://"):
        addr = os.environ.get("MASTER_ADDR", "127.0.0.1")
        port = os.environ.get("MASTER_PORT")
        if port is None:
            raise ConfigError("init_method='env://' needs MASTER_PORT (and MASTER_ADDR) set")
        master = parse_address(f"{addr}:{port}")
        rank = int(os.environ["RANK"]) if rank is None and "RANK" in os.environ else rank
        if world_size is None and "WORLD_SIZE" in os.environ:
            world_size = int(os.environ["WORLD_SIZE"])
    elif method.startswith("tcp://"):
        master = parse_address(method[len("tcp://") :])
    else:
        raise ConfigError(f"expected init_method 'env://' or 'tcp://host:port', found {method!r}")
    if rank is None or world_size is None or not 0 <= rank < world_size:
        raise ConfigError(
            f"expected 0 <= rank < world_size, found rank={rank}, "
            f"world_size={world_size} (set them or RANK/WORLD_SIZE)"
        )
    return master, rank, world_size


def tcp_rendezvous(
    init_method: str | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    secret: bytes | str | None = None,
    timeout: float = 30.0,
) -> TcpTransport:
    """A connected :class:`TcpTransport` from ``env://`` or ``tcp://host:port``."""
    master, rank, world_size = parse_init_method(init_method, rank, world_size)
    key = resolve_secret(secret)  # before any socket opens: no secret, no job
    deadline = time.monotonic() + timeout  # one deadline for the store and the mesh
    listener = listen(master[0] if master[0] in ("127.0.0.1", "localhost") else "0.0.0.0")
    mine = (
        master[0] if master[0] in ("127.0.0.1", "localhost") else socket.gethostname(),
        listener.getsockname()[1],
    )
    try:
        addresses = store_exchange(master, rank, world_size, mine, key, timeout)
        transport = TcpTransport(rank, world_size, listener, key, timeout)
    except BaseException:
        listener.close()
        raise
    try:
        transport.connect(addresses, deadline)
    except BaseException:
        transport.close()
        raise
    return transport


def spark_rendezvous(context: Any, secret: bytes, timeout: float = 30.0) -> TcpTransport:
    """Inside a barrier task: listen, ``allGather`` the address, connect to every peer.

    ``secret`` is the driver's per-job secret (SparkRunner draws it with
    ``secrets.token_bytes(32)`` and ships it to the tasks in the job's closure).
    """
    secret = check_secret(secret, "the Spark job")
    host = os.environ.get("SPARK_LOCAL_IP", "127.0.0.1")
    listener = listen(host)
    gathered = context.allGather(f"{host}:{listener.getsockname()[1]}")
    rank = context.partitionId()
    addresses = spark_addresses(list(gathered), rank)
    transport = TcpTransport(rank, len(addresses), listener, secret, timeout)
    transport.connect(addresses)
    return transport


__all__ = ["new_secret", "parse_address", "spark_addresses", "spark_rendezvous", "tcp_rendezvous"]
