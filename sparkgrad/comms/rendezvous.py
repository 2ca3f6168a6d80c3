"""Rendezvous: how ranks find each other's listening addresses before the mesh is built.

Three ways in, all ending in a list ``addresses[rank] = (host, port)`` handed to
:meth:`~sparkgrad.comms.tcp_transport.TcpTransport.connect`:

- ``tcp://host:port``: rank 0 opens a small *store* there; every other rank dials it
  (authenticated with the job secret), tells it its own listening address, and gets the
  full table back;
- ``env://``: the same, with host and port from ``MASTER_ADDR``/``MASTER_PORT`` and
  ``RANK``/``WORLD_SIZE`` when not given (PyTorch's variables);
- Spark: the tasks of a barrier stage exchange ``"host:port"`` strings through
  ``BarrierTaskContext.allGather``; :func:`spark_addresses` turns that list into the table
  (a pure function, unit-tested without Spark) and :func:`spark_rendezvous` does it all.

Store messages are bounded binary records (``u16 port | u8 len | host``), never pickle.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import struct
import time
from typing import Any

from sparkgrad.comms.auth import (
    client_handshake,
    new_secret,
    recv_exact,
    secret_from_env,
    server_handshake,
)
from sparkgrad.comms.tcp_transport import TcpTransport, dial, listen
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


def job_secret(secret: bytes | str | None, hint: str) -> bytes:
    """The per-job secret: given, from ``SPARKGRAD_SECRET``, or (with a warning) a default."""
    if isinstance(secret, str):
        return bytes.fromhex(secret)
    if secret:
        return secret
    env = secret_from_env()
    if env:
        return env
    log.warning(
        "no SPARKGRAD_SECRET set: connections authenticate with a secret derived from "
        "%s, which anyone can compute; set SPARKGRAD_SECRET for a real per-job secret",
        hint,
    )
    return hashlib.sha256(f"sparkgrad-default:{hint}".encode()).digest()


def _pack(address: Address) -> bytes:
    host = address[0].encode()
    return struct.pack("<HB", address[1], len(host)) + host


def _unpack(sock: socket.socket) -> Address:
    port, n = struct.unpack("<HB", recv_exact(sock, 3))
    return recv_exact(sock, n).decode(), port


def store_exchange(
    master: Address, rank: int, world_size: int, mine: Address, secret: bytes, timeout: float
) -> list[Address]:
    """Every rank's address, gathered by rank 0's store at ``master`` (rank 0 serves it)."""
    deadline = time.monotonic() + timeout
    if rank != 0:
        sock = dial(master, deadline)
        with sock:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            client_handshake(sock, secret, rank, world_size)
            sock.sendall(_pack(mine))
            (count,) = struct.unpack("<H", recv_exact(sock, 2))
            if count != world_size:
                raise CommError(f"store sent {count} addresses, expected {world_size}")
            return [_unpack(sock) for _ in range(count)]
    table: dict[int, tuple[Address, socket.socket]] = {}
    server = socket.create_server(master, reuse_port=False, backlog=128)
    try:
        while len(table) < world_size - 1:
            server.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                sock, addr = server.accept()
            except TimeoutError:
                missing = sorted(set(range(1, world_size)) - set(table))
                raise CollectiveTimeout(
                    f"rendezvous at {master[0]}:{master[1]}: waited "
                    f"{timeout:g} s; missing ranks {missing}"
                ) from None
            try:
                sock.settimeout(min(10.0, max(0.1, deadline - time.monotonic())))
                peer = server_handshake(sock, secret, world_size)
                if peer == 0 or peer in table:
                    raise CommError(f"duplicate rank {peer}")
                table[peer] = (_unpack(sock), sock)
            except (OSError, CommError) as exc:
                log.warning("rendezvous store refused %s:%s: %s", addr[0], addr[1], exc)
                sock.close()
        everyone = [mine] + [table[r][0] for r in range(1, world_size)]
        reply = struct.pack("<H", world_size) + b"".join(_pack(a) for a in everyone)
        for _, sock in table.values():
            sock.sendall(reply)
            sock.close()
        return everyone
    finally:
        server.close()


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
    key = job_secret(secret, f"{master[0]}:{master[1]}/{world_size}")
    listener = listen(master[0] if master[0] in ("127.0.0.1", "localhost") else "0.0.0.0")
    mine = (
        master[0] if master[0] in ("127.0.0.1", "localhost") else socket.gethostname(),
        listener.getsockname()[1],
    )
    addresses = store_exchange(master, rank, world_size, mine, key, timeout)
    transport = TcpTransport(rank, world_size, listener, key, timeout)
    transport.connect(addresses)
    return transport


def spark_rendezvous(context: Any, secret: bytes, timeout: float = 30.0) -> TcpTransport:
    """Inside a barrier task: listen, ``allGather`` the address, connect to every peer."""
    host = os.environ.get("SPARK_LOCAL_IP", "127.0.0.1")
    listener = listen(host)
    gathered = context.allGather(f"{host}:{listener.getsockname()[1]}")
    rank = context.partitionId()
    addresses = spark_addresses(list(gathered), rank)
    transport = TcpTransport(rank, len(addresses), listener, secret, timeout)
    transport.connect(addresses)
    return transport


__all__ = ["new_secret", "parse_address", "spark_addresses", "spark_rendezvous", "tcp_rendezvous"]
