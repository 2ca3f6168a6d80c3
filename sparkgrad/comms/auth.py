"""Connection authentication: an HMAC challenge-response with a per-job secret.

Every TCP connection between ranks (and to the rendezvous store) starts with this
handshake; bytes of a collective flow only after it succeeds. The secret never crosses
the wire; each side proves it knows it by signing the other side's fresh random nonce:

    client -> server   HELLO: "SGA1" | client rank | world size | client nonce (16 B)
    server -> client   server nonce (16 B) | HMAC(secret, "server" | hello | server nonce)
    client -> server   HMAC(secret, "client" | hello | server nonce)

Both sides check with :func:`hmac.compare_digest`. Every read has a fixed size, and the
whole handshake one deadline (not one per read: a peer dripping a byte at a time gains
nothing), so a rogue peer can neither make us allocate nor hang us. A peer that fails is
refused (its socket closed) and the failure logged; the job carries on.

The secret is made once per job by :func:`new_secret` (the Spark launcher does it on the
driver; ``dist.spawn`` and ``sparkgrad.multiprocessing.spawn`` in the parent) and reaches
every rank out of band, e.g. in ``SPARKGRAD_SECRET`` (hex). It is never computed from
anything an outsider can see (an address, a port, the world size): a job without a secret
is refused by :func:`resolve_secret`, and so is a secret shorter than 16 bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import socket
import struct
import time

from sparkgrad.errors import CollectiveTimeout, CommError, ConfigError

HELLO = struct.Struct("<4sHH16s")
MAGIC = b"SGA1"
NONCE = 16
DIGEST = hashlib.sha256().digest_size
SECRET_ENV = "SPARKGRAD_SECRET"
MIN_SECRET_BYTES = 16
NO_SECRET = (
    "the TCP backend needs a per-job secret that every rank holds, found none: set "
    f"{SECRET_ENV} to the same random hex string on every rank (for example "
    f"export {SECRET_ENV}=$(python -c 'import secrets; print(secrets.token_hex(32))')), "
    "or pass secret= to init_process_group; dist.spawn, sparkgrad.multiprocessing.spawn "
    "and SparkRunner make one for their ranks"
)


class AuthError(CommError):
    """A peer failed the handshake: wrong secret, wrong protocol or wrong world."""


def new_secret() -> bytes:
    """32 random bytes: the per-job secret."""
    return secrets.token_bytes(32)


def _from_hex(text: str, source: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ConfigError(
            f"the job secret in {source} must be hex digits, found {len(text)} characters "
            "that are not (make one with secrets.token_hex(32))"
        ) from None


def secret_from_env() -> bytes | None:
    """The secret in ``SPARKGRAD_SECRET`` (hex), or None when unset."""
    text = os.environ.get(SECRET_ENV)
    return _from_hex(text, SECRET_ENV) if text else None


def check_secret(secret: bytes, source: str = "secret=") -> bytes:
    """``secret`` itself if it is bytes of at least :data:`MIN_SECRET_BYTES`, else ConfigError."""
    if not isinstance(secret, bytes | bytearray):
        raise ConfigError(f"expected the job secret as bytes, found {type(secret).__name__}")
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"the job secret from {source} is {len(secret)} bytes, expected at least "
            f"{MIN_SECRET_BYTES} random bytes (secrets.token_hex(32) makes 32)"
        )
    return bytes(secret)


def resolve_secret(secret: bytes | str | None = None) -> bytes:
    """The per-job secret: ``secret`` (bytes, or a hex string), else ``SPARKGRAD_SECRET``.

    There is no default: without either, :class:`ConfigError` says how to set one.
    """
    if isinstance(secret, str) and secret:
        return check_secret(_from_hex(secret, "secret="), "secret=")
    if secret:
        return check_secret(secret, "secret=")
    env = secret_from_env()
    if env is None:
        raise ConfigError(NO_SECRET)
    return check_secret(env, SECRET_ENV)


def _time_left(sock: socket.socket, deadline: float | None, what: str) -> None:
    """Give the next socket call what is left of ``deadline`` (monotonic), or raise."""
    if deadline is None:
        return
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise CollectiveTimeout(f"{what}: the deadline passed")
    sock.settimeout(remaining)


def recv_exact(sock: socket.socket, nbytes: int, deadline: float | None = None) -> bytes:
    """Exactly ``nbytes`` bytes (bounded by the caller), or :class:`CommError` on EOF.

    ``deadline`` (``time.monotonic()`` seconds) bounds the *whole* read: a peer that
    trickles one byte at a time cannot stretch it, because every ``recv`` gets only the
    time that is left. A timeout is :class:`~sparkgrad.errors.CollectiveTimeout`.
    """
    buf = bytearray(nbytes)
    view, got = memoryview(buf), 0
    while got < nbytes:
        try:
            _time_left(sock, deadline, f"received {got} of {nbytes} bytes")
            n = sock.recv_into(view[got:])
        except TimeoutError:
            raise CollectiveTimeout(
                f"received {got} of {nbytes} bytes before the deadline passed"
            ) from None
        if n == 0:
            raise CommError(f"connection closed after {got} of {nbytes} bytes")
        got += n
    return bytes(buf)


def send_all(sock: socket.socket, data: bytes, deadline: float | None = None) -> None:
    """``sock.sendall(data)`` within ``deadline``; a timeout is CollectiveTimeout."""
    try:
        _time_left(sock, deadline, f"sending {len(data)} bytes")
        sock.sendall(data)
    except TimeoutError:
        raise CollectiveTimeout(f"could not send {len(data)} bytes before the deadline") from None


def _sign(secret: bytes, role: bytes, *parts: bytes) -> bytes:
    return hmac.new(secret, role + b"".join(parts), hashlib.sha256).digest()


def client_handshake(
    sock: socket.socket, secret: bytes, rank: int, world_size: int, deadline: float | None = None
) -> None:
    """Prove to the server that we hold ``secret``, and check that it does too."""
    hello = HELLO.pack(MAGIC, rank, world_size, secrets.token_bytes(NONCE))
    send_all(sock, hello, deadline)
    reply = recv_exact(sock, NONCE + DIGEST, deadline)
    server_nonce, proof = reply[:NONCE], reply[NONCE:]
    if not hmac.compare_digest(proof, _sign(secret, b"server", hello, server_nonce)):
        raise AuthError("the server failed authentication (different job secret?)")
    send_all(sock, _sign(secret, b"client", hello, server_nonce), deadline)


def server_handshake(
    sock: socket.socket, secret: bytes, world_size: int, deadline: float | None = None
) -> int:
    """Authenticate an incoming client; return the rank it claims (now proven).

    ``deadline`` bounds the whole exchange (see :func:`recv_exact`).
    """
    hello = recv_exact(sock, HELLO.size, deadline)
    magic, rank, their_world, _ = HELLO.unpack(hello)
    if magic != MAGIC:
        raise AuthError(f"expected handshake magic {MAGIC!r}, found {magic!r}")
    if their_world != world_size or rank >= world_size:
        raise AuthError(f"peer claims rank {rank} of {their_world}, this job has {world_size}")
    server_nonce = secrets.token_bytes(NONCE)
    send_all(sock, server_nonce + _sign(secret, b"server", hello, server_nonce), deadline)
    proof = recv_exact(sock, DIGEST, deadline)
    if not hmac.compare_digest(proof, _sign(secret, b"client", hello, server_nonce)):
        raise AuthError(f"peer claiming rank {rank} does not hold the job secret")
    return rank
