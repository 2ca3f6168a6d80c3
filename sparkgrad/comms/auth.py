"""Connection authentication: an HMAC challenge-response with a per-job secret.

Every TCP connection between ranks (and to the rendezvous store) starts with this
handshake; bytes of a collective flow only after it succeeds. The secret never crosses
the wire; each side proves it knows it by signing the other side's fresh random nonce:

    client -> server   HELLO: "SGA1" | client rank | world size | client nonce (16 B)
    server -> client   server nonce (16 B) | HMAC(secret, "server" | hello | server nonce)
    client -> server   HMAC(secret, "client" | hello | server nonce)

Both sides check with :func:`hmac.compare_digest`. Every read has a fixed size and a
deadline, so a rogue peer can neither make us allocate nor hang us. A peer that fails is
refused (its socket closed) and the failure logged; the job carries on.

The secret is made once per job by :func:`new_secret` (the Spark launcher does it on the
driver) and reaches every rank out of band, e.g. in ``SPARKGRAD_SECRET`` (hex).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import socket
import struct

from sparkgrad.errors import CommError

HELLO = struct.Struct("<4sHH16s")
MAGIC = b"SGA1"
NONCE = 16
DIGEST = hashlib.sha256().digest_size
SECRET_ENV = "SPARKGRAD_SECRET"


class AuthError(CommError):
    """A peer failed the handshake: wrong secret, wrong protocol or wrong world."""


def new_secret() -> bytes:
    """32 random bytes: the per-job secret."""
    return secrets.token_bytes(32)


def secret_from_env() -> bytes | None:
    """The secret in ``SPARKGRAD_SECRET`` (hex), or None when unset."""
    text = os.environ.get(SECRET_ENV)
    if not text:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise CommError(f"{SECRET_ENV} must be hex, found {len(text)} other characters") from None


def recv_exact(sock: socket.socket, nbytes: int) -> bytes:
    """Exactly ``nbytes`` bytes (bounded by the caller), or :class:`CommError` on EOF."""
    buf = bytearray(nbytes)
    view, got = memoryview(buf), 0
    while got < nbytes:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise CommError(f"connection closed after {got} of {nbytes} bytes")
        got += n
    return bytes(buf)


def _sign(secret: bytes, role: bytes, *parts: bytes) -> bytes:
    return hmac.new(secret, role + b"".join(parts), hashlib.sha256).digest()


def client_handshake(sock: socket.socket, secret: bytes, rank: int, world_size: int) -> None:
    """Prove to the server that we hold ``secret``, and check that it does too."""
    hello = HELLO.pack(MAGIC, rank, world_size, secrets.token_bytes(NONCE))
    sock.sendall(hello)
    reply = recv_exact(sock, NONCE + DIGEST)
    server_nonce, proof = reply[:NONCE], reply[NONCE:]
    if not hmac.compare_digest(proof, _sign(secret, b"server", hello, server_nonce)):
        raise AuthError("the server failed authentication (different job secret?)")
    sock.sendall(_sign(secret, b"client", hello, server_nonce))


def server_handshake(sock: socket.socket, secret: bytes, world_size: int) -> int:
    """Authenticate an incoming client; return the rank it claims (now proven)."""
    hello = recv_exact(sock, HELLO.size)
    magic, rank, their_world, _ = HELLO.unpack(hello)
    if magic != MAGIC:
        raise AuthError(f"expected handshake magic {MAGIC!r}, found {magic!r}")
    if their_world != world_size or rank >= world_size:
        raise AuthError(f"peer claims rank {rank} of {their_world}, this job has {world_size}")
    server_nonce = secrets.token_bytes(NONCE)
    sock.sendall(server_nonce + _sign(secret, b"server", hello, server_nonce))
    proof = recv_exact(sock, DIGEST)
    if not hmac.compare_digest(proof, _sign(secret, b"client", hello, server_nonce)):
        raise AuthError(f"peer claiming rank {rank} does not hold the job secret")
    return rank
