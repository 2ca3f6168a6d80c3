"""Live log lines from the ranks (Spark tasks) to the driver's console.

A Spark task's output normally ends up in an executor log file nobody watches. To *watch
the run*, the driver opens a small TCP server (:class:`LogServer`) before launching the
barrier stage; every rank dials it, proves it holds the job secret with the same HMAC
handshake the collectives use (:mod:`sparkgrad.comms.auth`), and then streams its lines::

    u32 length | UTF-8 line          (one record per line, at most MAX_LINE bytes)

Right after the handshake the driver answers with one ``u32``: how many times this rank
has connected before in this job. That is the *attempt number* of the barrier stage: when
a rank fails, Spark reruns the whole stage, every rank connects again, and the count
tells the rerun that it is one (Spark's own ``BarrierTaskContext.attemptNumber()`` starts
again at 0 in a rerun stage, so it cannot tell).

The driver hands each line to a *sink*, by default a print to stderr as ``[rank 1] ...``.
On the rank side, :func:`rank_logger` gives a ``logging.Logger`` whose records travel
over that socket, and :class:`LineWriter` does the same for ``print`` (the runner puts it
in place of ``sys.stdout`` while the rank function runs). If the driver cannot be reached
the rank logs locally and carries on: losing the log must not lose the training run.
"""

from __future__ import annotations

import logging
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable

from sparkgrad.comms.auth import client_handshake, recv_exact, server_handshake
from sparkgrad.errors import CommError

MAX_LINE = 64 * 1024
LENGTH = struct.Struct("<I")
Sink = Callable[[int, str], None]
log = logging.getLogger("sparkgrad.engine")


def print_sink(rank: int, line: str) -> None:
    """The default sink: ``[rank 1] line`` on the driver's stderr."""
    print(f"[rank {rank}] {line}", file=sys.stderr, flush=True)


class LogServer:
    """Driver side: accept authenticated rank connections and pass their lines to ``sink``.

    Use as a context manager around the Spark job; leaving it waits briefly for the ranks'
    last lines, so everything logged before the job ended has reached the sink.
    """

    def __init__(
        self, secret: bytes, world_size: int, host: str = "127.0.0.1", sink: Sink = print_sink
    ) -> None:
        self.secret, self.world_size, self.sink = secret, world_size, sink
        self.server = socket.create_server((host, 0), backlog=64)
        self.address = (host, self.server.getsockname()[1])
        self.readers: list[threading.Thread] = []
        self.connections: dict[int, int] = {}  # rank -> connections so far (attempts)
        self._lock = threading.Lock()
        self._accepter = threading.Thread(target=self._accept, daemon=True, name="log-accept")

    def __enter__(self) -> LogServer:
        self._accepter.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return  # closed
            reader = threading.Thread(target=self._read, args=(sock,), daemon=True)
            self.readers.append(reader)
            reader.start()

    def _read(self, sock: socket.socket) -> None:
        with sock:
            try:
                sock.settimeout(10.0)
                rank = server_handshake(sock, self.secret, self.world_size)
                with self._lock:
                    attempt = self.connections.get(rank, 0)
                    self.connections[rank] = attempt + 1
                sock.sendall(LENGTH.pack(attempt))
                sock.settimeout(None)
                while True:
                    (n,) = LENGTH.unpack(recv_exact(sock, LENGTH.size))
                    if n > MAX_LINE:
                        raise CommError(f"log line of {n} bytes exceeds {MAX_LINE}")
                    self.sink(rank, recv_exact(sock, n).decode("utf-8", "replace"))
            except (OSError, CommError) as exc:
                if "after 0 of" not in str(exc):  # a clean close between records is normal
                    log.debug("log connection ended: %s", exc)

    def close(self, wait: float = 2.0) -> None:
        """Stop accepting; give open connections up to ``wait`` seconds to finish."""
        self.server.close()
        deadline = time.monotonic() + wait
        for reader in list(self.readers):
            reader.join(max(0.0, deadline - time.monotonic()))


class LineSender:
    """Rank side: one authenticated connection to the driver's :class:`LogServer`."""

    def __init__(self, address: tuple[str, int], secret: bytes, rank: int, world_size: int) -> None:
        self.rank = rank
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.attempt: int | None = None  # from the driver; None when it was unreachable
        sock = None
        try:
            sock = socket.create_connection(address, timeout=10.0)
            client_handshake(sock, secret, rank, world_size)
            (self.attempt,) = LENGTH.unpack(recv_exact(sock, LENGTH.size))
            sock.settimeout(None)
            self.sock = sock
        except (OSError, CommError) as exc:
            if sock is not None:
                sock.close()
            log.warning("rank %d: driver log server unreachable (%s); logging locally", rank, exc)

    def send(self, line: str) -> None:
        """Send one line (cut to ``MAX_LINE`` bytes); falls back to stderr if the link broke."""
        data = line.encode("utf-8", "replace")[:MAX_LINE]
        with self.lock:
            if self.sock is not None:
                try:
                    self.sock.sendall(LENGTH.pack(len(data)) + data)
                    return
                except OSError:
                    self.sock = None
            print(f"[rank {self.rank}] {line}", file=sys.__stderr__, flush=True)

    def close(self) -> None:
        with self.lock:
            if self.sock is not None:
                self.sock.close()
                self.sock = None


class _SendHandler(logging.Handler):
    def __init__(self, sender: LineSender) -> None:
        super().__init__()
        self.sender = sender

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sender.send(self.format(record))
        except Exception:
            self.handleError(record)


def rank_logger(sender: LineSender, attempt: int = 0) -> logging.Logger:
    """The logger a rank function writes to (``ctx.log.info(...)``): lines go to the driver.

    Warnings from the rest of sparkgrad (``logging.getLogger("sparkgrad")``) are forwarded
    too. Call :func:`release_logger` when the task ends: Spark reuses worker processes.
    """
    prefix = f"[attempt {attempt}] " if attempt else ""
    handler = _SendHandler(sender)
    handler.setFormatter(logging.Formatter(prefix + "%(message)s"))
    logger = logging.getLogger(f"sparkgrad.rank.{sender.rank}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    warnings = _SendHandler(sender)
    warnings.setLevel(logging.WARNING)
    warnings.setFormatter(logging.Formatter(prefix + "%(levelname)s %(name)s: %(message)s"))
    logging.getLogger("sparkgrad").addHandler(warnings)
    return logger


def release_logger(logger: logging.Logger) -> None:
    """Remove the handlers :func:`rank_logger` installed."""
    for handler in list(logger.handlers):
        if isinstance(handler, _SendHandler):
            logger.removeHandler(handler)
    root = logging.getLogger("sparkgrad")
    for handler in list(root.handlers):
        if isinstance(handler, _SendHandler):
            root.removeHandler(handler)


class LineWriter:
    """A file-like object for ``sys.stdout``: every complete line goes to ``sender``."""

    def __init__(self, sender: LineSender) -> None:
        self.sender, self.buffer = sender, ""

    def write(self, text: str) -> int:
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            self.sender.send(line)
        return len(text)

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:
        if self.buffer:
            self.sender.send(self.buffer)
            self.buffer = ""
