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

The driver can also *stop* the ranks: :meth:`LogServer.stop_ranks` sends ``STOP`` (one
``u32``) down every connection, which is otherwise silent in that direction. A rank's
:class:`LineSender` watches for it and calls its ``on_stop`` (the runner interrupts the
rank's main thread, so it unwinds through its ``finally`` blocks at once instead of
training on for seconds until Spark kills the worker), and drops every later line. That
is how Ctrl-C on the driver, or an error no retry can fix, ends the job promptly.

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

from sparkgrad.comms.admission import HANDSHAKE_SECONDS, Admission
from sparkgrad.comms.auth import recv_exact, server_handshake
from sparkgrad.comms.tcp_transport import dial_authenticated
from sparkgrad.errors import CommError

MAX_LINE = 64 * 1024
CONNECT_SECONDS = 30.0  # a rank's whole try to reach the driver's log server
LENGTH = struct.Struct("<I")
STOP = 0x53544F50  # b"POTS" little-endian: the driver asks the rank to stop
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
        self,
        secret: bytes,
        world_size: int,
        host: str = "127.0.0.1",
        sink: Sink = print_sink,
        handshake_s: float = HANDSHAKE_SECONDS,
    ) -> None:
        self.secret, self.world_size, self.sink = secret, world_size, sink
        self.handshake_s = handshake_s
        self.server = socket.create_server((host, 0), backlog=64)
        self.address = (host, self.server.getsockname()[1])
        self.readers: list[threading.Thread] = []
        self.connections: dict[int, int] = {}  # rank -> connections so far (attempts)
        self.muted = False  # after stop_ranks: late lines are dropped, not shown
        self._live: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._admission: Admission | None = None

    def __enter__(self) -> LogServer:
        # strangers are handled as at every listener: one deadline per handshake, a few
        # handshake threads, a bounded line; only a proven rank gets a reader thread
        self._admission = Admission(
            self.server, self._admit, name="log server", handshake_s=self.handshake_s
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _admit(self, sock: socket.socket, addr: tuple, deadline: float) -> None:
        """Authenticate within ``deadline``, then hand the socket to its own reader."""
        rank = server_handshake(sock, self.secret, self.world_size, deadline)
        reader = threading.Thread(target=self._read, args=(sock, rank), daemon=True)
        self.readers.append(reader)
        reader.start()

    def _read(self, sock: socket.socket, rank: int) -> None:
        with sock:
            try:
                with self._lock:
                    attempt = self.connections.get(rank, 0)
                    self.connections[rank] = attempt + 1
                    self._live.add(sock)
                sock.settimeout(None)
                sock.sendall(LENGTH.pack(attempt))
                while True:
                    (n,) = LENGTH.unpack(recv_exact(sock, LENGTH.size))
                    if n > MAX_LINE:
                        raise CommError(f"log line of {n} bytes exceeds {MAX_LINE}")
                    line = recv_exact(sock, n).decode("utf-8", "replace")
                    if not self.muted:
                        self.sink(rank, line)
            except (OSError, CommError) as exc:
                if "after 0 of" not in str(exc):  # a clean close between records is normal
                    log.debug("log connection ended: %s", exc)
            finally:
                with self._lock:
                    self._live.discard(sock)

    def stop_ranks(self) -> None:
        """Tell every connected rank to stop, and show none of their lines from now on."""
        self.muted = True
        with self._lock:
            live = list(self._live)
        for sock in live:
            try:
                sock.sendall(LENGTH.pack(STOP))
                sock.shutdown(socket.SHUT_RDWR)  # the reader ends; the rank reads STOP, then EOF
            except OSError:
                pass  # that rank is gone already

    def close(self, wait: float = 2.0) -> None:
        """Stop accepting; give open connections up to ``wait`` seconds to finish."""
        if self._admission is not None:
            self._admission.close()
        self.server.close()
        deadline = time.monotonic() + wait
        for reader in list(self.readers):
            reader.join(max(0.0, deadline - time.monotonic()))


class LineSender:
    """Rank side: one authenticated connection to the driver's :class:`LogServer`.

    ``on_stop()`` is called (from a watcher thread) when the driver sends ``STOP``; from
    then on lines are dropped. Without a driver (unreachable at the start, or its end of
    the link broke) lines go to this process's stderr instead.
    """

    def __init__(self, address: tuple[str, int], secret: bytes, rank: int, world_size: int) -> None:
        self.rank = rank
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.attempt: int | None = None  # from the driver; None when it was unreachable
        self.on_stop: Callable[[], None] | None = None
        self.stopped = False
        sock = None
        try:  # dialled again while the driver's waiting line is full (comms/admission)
            deadline = time.monotonic() + CONNECT_SECONDS
            sock = dial_authenticated(address, secret, rank, world_size, deadline)
            (self.attempt,) = LENGTH.unpack(recv_exact(sock, LENGTH.size, deadline))
            sock.settimeout(None)
            self.sock = sock
        except (OSError, CommError) as exc:
            if sock is not None:
                sock.close()
            log.warning("rank %d: driver log server unreachable (%s); logging locally", rank, exc)
            return
        threading.Thread(target=self._watch, args=(sock,), daemon=True, name="log-stop").start()

    def _watch(self, sock: socket.socket) -> None:
        """Wait for the driver's STOP (or the end of the link)."""
        try:
            (word,) = LENGTH.unpack(recv_exact(sock, LENGTH.size))
        except (OSError, CommError):
            return  # closed by us, or the driver went away
        if word != STOP:
            return
        with self.lock:
            if self.sock is None:  # closed meanwhile: the rank is done anyway
                return
            self.stopped = True
        if self.on_stop is not None:
            self.on_stop()

    def send(self, line: str) -> None:
        """Send one line (cut to ``MAX_LINE`` bytes); falls back to stderr if the link broke."""
        data = line.encode("utf-8", "replace")[:MAX_LINE]
        with self.lock:
            if self.stopped:
                return  # the driver asked us to stop: nobody shows these lines
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
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)  # wakes the watcher's recv
                except OSError:
                    pass
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
