"""The parameter server's wire protocol: sparkgrad frames over one authenticated socket.

A worker dials the server, passes the HMAC handshake of :mod:`sparkgrad.comms.auth`
(worker index as the rank, the number of workers as the world size, the per-job secret),
and from then on both sides exchange ordinary :mod:`sparkgrad.comms.framing` frames: a
validated 32-byte prefix, the shape, a short text, the raw array bytes. Nothing is
pickled; every length is checked against a limit before anything is allocated.

The frame's fields are used as follows (``tag`` names the message, ``seq`` is a number):

========  ===========  =====================================  ===============================
message   direction    seq                                    array / text
========  ===========  =====================================  ===============================
HELLO     w -> s       0                                      text: ``ps1 hello``
WELCOME   s -> w       server version                         text: ``ps1 welcome mode=...
                                                              numel=... shm=...``
PULL      w -> s       0                                      -
WEIGHTS   s -> w       version (updates applied so far)       the flat float32 weights
PUSH      w -> s       base version (of the weights used)     the flat float32 gradient
NOTE      w -> s       base version                           - (hogwild on shared memory:
                                                              "I updated the weights")
ACK       s -> w       version after this push                -
DONE      w -> s       0                                      float64 report (see REPORT)
STOP      s -> w       why (:data:`STOP_REASONS`)             text: the reason
========  ===========  =====================================  ===============================

Every request is answered by exactly one reply, and every read and every write has a
deadline (:meth:`Wire.recv`, :meth:`Wire.send`): a peer that dies mid-frame gives "connection
closed mid-frame" at once (the kernel closes a dead process's sockets), and one that
stops talking gives :class:`~sparkgrad.errors.CollectiveTimeout` when its deadline passes.
The socket of one connection is used by one thread at a time on each side, so no lock is
needed.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparkgrad.comms.framing import (
    DATA,
    DEFAULT_MAX_FRAME_BYTES,
    PREFIX,
    Frame,
    decode_prefix,
    decode_rest,
    encode_header,
)
from sparkgrad.errors import CollectiveTimeout, CommError

HELLO, WELCOME, PULL, WEIGHTS, PUSH, NOTE, ACK, DONE, STOP = range(1, 10)
NAMES = {
    HELLO: "hello",
    WELCOME: "welcome",
    PULL: "pull",
    WEIGHTS: "weights",
    PUSH: "push",
    NOTE: "note",
    ACK: "ack",
    DONE: "done",
    STOP: "stop",
}
PREFIX_TEXT = "ps1 "
#: ``seq`` of a STOP frame: why the server stops answering this worker.
STOP_WORKER_LOST, STOP_CLOSING, STOP_TIMEOUT, STOP_REFUSED = 1, 2, 3, 4
STOP_REASONS = (STOP_WORKER_LOST, STOP_CLOSING, STOP_TIMEOUT, STOP_REFUSED)
#: What a worker's DONE frame reports, in this order (float64).
REPORT = ("compute_s", "comm_s", "idle_s", "bytes_sent", "steps")


@dataclass
class Message:
    """One received frame: which message, its number, its array (or None), its text."""

    kind: int
    seq: int
    array: Any
    text: str

    @property
    def name(self) -> str:
        return NAMES[self.kind]


def welcome_text(mode: str, numel: int, shm: str | None) -> str:
    """The WELCOME text: what the worker must agree with before it trains."""
    return f"{PREFIX_TEXT}welcome mode={mode} numel={numel} shm={shm or '-'}"


def parse_welcome(text: str) -> dict[str, str]:
    """``{"mode": ..., "numel": ..., "shm": ...}`` from a WELCOME text, or CommError."""
    parts = text.split()
    if parts[:2] != [PREFIX_TEXT.strip(), "welcome"]:
        raise CommError(f"expected the parameter server's welcome, found {text[:80]!r}")
    fields = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
    if set(fields) != {"mode", "numel", "shm"} or not fields["numel"].isdigit():
        raise CommError(f"malformed welcome from the parameter server: {text[:120]!r}")
    return fields


class Wire:
    """Frames over one connected, already authenticated socket (see the module docstring).

    ``src`` is written into every frame we send (our worker index, 0 for the server);
    ``world`` bounds the source index a received frame may claim.
    """

    def __init__(
        self,
        sock: socket.socket,
        src: int,
        world: int,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self.sock, self.src, self.world = sock, src, world
        self.max_frame_bytes = max_frame_bytes
        self.bytes_sent = 0
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(
        self,
        kind: int,
        seq: int = 0,
        array: np.ndarray | None = None,
        text: str | None = None,
        deadline: float | None = None,
        partial: float | None = None,
    ) -> None:
        """Send one message before ``deadline`` (monotonic seconds).

        ``partial`` (tests only): send that fraction of the payload and stop, as a worker
        that dies in the middle of a push would.
        """
        fingerprint = text if text is not None else PREFIX_TEXT + NAMES[kind]
        frame = Frame(DATA, self.src, kind, seq, fingerprint, array)
        header = encode_header(frame)
        payload = b"" if array is None else memoryview(np.ascontiguousarray(array)).cast("B")
        if partial is not None:
            payload = payload[: int(len(payload) * partial)]
        self._send_bytes(header, deadline)
        if len(payload):
            self._send_bytes(payload, deadline)
        self.bytes_sent += len(header) + len(payload)

    def _send_bytes(self, data: Any, deadline: float | None) -> None:
        try:
            self.sock.settimeout(_remaining(deadline, "send"))
            self.sock.sendall(data)
        except TimeoutError:
            raise CollectiveTimeout(
                f"could not send {len(data)} bytes before the deadline"
            ) from None

    def recv(self, deadline: float | None, into: np.ndarray | None = None) -> Message:
        """The next message, all of it before ``deadline``.

        With ``into`` (a contiguous array), a payload of its dtype and size lands straight
        in it (no copy): the worker's flat weights, the server's gradient buffer.
        """
        prefix_buf = bytearray(PREFIX.size)
        self._recv_into(memoryview(prefix_buf), deadline)
        prefix = decode_prefix(prefix_buf, self.max_frame_bytes, self.world)
        if prefix.kind != DATA or prefix.tag not in NAMES:
            raise CommError(f"malformed message: kind {prefix.kind}, tag {prefix.tag}")
        rest = bytearray(prefix.rest_len)
        self._recv_into(memoryview(rest), deadline)
        shape, text = decode_rest(prefix, rest)
        if not text.startswith(PREFIX_TEXT):
            raise CommError(f"malformed message: expected text {PREFIX_TEXT!r}..., found {text!r}")
        array = None
        if prefix.nbytes or prefix.ndim:
            count = prefix.nbytes // prefix.dtype.itemsize
            if into is not None and into.dtype == prefix.dtype and into.size == count:
                array = into
            else:
                array = np.empty(shape, prefix.dtype)
            if prefix.nbytes:
                self._recv_into(memoryview(array.reshape(-1)).cast("B"), deadline)
        return Message(prefix.tag, prefix.seq, array, text)

    def _recv_into(self, view: memoryview, deadline: float | None) -> None:
        got, total = 0, len(view)
        while got < total:
            try:
                self.sock.settimeout(_remaining(deadline, f"receive ({got} of {total} bytes)"))
                n = self.sock.recv_into(view[got:], total - got)
            except TimeoutError:
                raise CollectiveTimeout(
                    f"received {got} of {total} bytes before the deadline passed"
                ) from None
            if n == 0:
                raise CommError(
                    "connection closed by peer"
                    if got == 0
                    else f"connection closed mid-frame ({got} of {total} bytes)"
                )
            got += n

    def close(self) -> None:
        """Shut the socket down both ways and close it (wakes a reader blocked on it)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _remaining(deadline: float | None, what: str) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise CollectiveTimeout(f"{what}: the deadline passed")
    return left
