"""Admitting connections: one listener, a bounded waiting line, a few handshake workers.

Every listening socket of sparkgrad (rank 0's rendezvous store, each rank's mesh
listener) must let its real peers in quickly even while strangers connect to it: a port
scanner, a client that never speaks, one that sends a byte every few seconds. An
:class:`Admission` serves a listener by three rules:

- **one deadline per handshake**: a connection gets ``handshake_s`` seconds from the
  moment it is accepted to finish its whole handshake, however its bytes trickle in
  (the handshake reads with :func:`~sparkgrad.comms.auth.recv_exact` and that deadline);
- **a fixed pool**: handshakes run on ``workers`` threads, so a slow client holds one
  worker, not the listener, and a flood of connections starts no new threads;
- **a bounded line**: at most ``pending`` accepted connections wait for a worker; one more
  is closed at once (refused, and counted). A real rank that is refused dials again
  (:func:`~sparkgrad.comms.tcp_transport.dial_authenticated`).

``handshake(sock, addr, deadline)`` is the caller's: it authenticates the peer and keeps
the socket (returns normally), or raises ``OSError``/``CommError`` and the socket is
closed and the refusal logged.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable

from sparkgrad.errors import CommError

log = logging.getLogger("sparkgrad.comms")
HANDSHAKE_SECONDS = 10.0  # the longest any one handshake may take (less if the timeout is)
WORKERS = 4  # handshake threads per listener
PENDING = 64  # accepted connections that may wait for a worker
KEEP_REFUSALS = 100  # refusal lines kept in ``refused`` (the count goes on)

Handshake = Callable[[socket.socket, tuple, float], None]


class Admission:
    """Serve ``listener`` with ``handshake`` (see the module docstring); ``close()`` stops it."""

    def __init__(
        self,
        listener: socket.socket,
        handshake: Handshake,
        *,
        name: str,
        handshake_s: float = HANDSHAKE_SECONDS,
        workers: int = WORKERS,
        pending: int = PENDING,
    ) -> None:
        self.listener, self.handshake, self.name = listener, handshake, name
        self.handshake_s, self.pending = handshake_s, pending
        self.refused: list[str] = []  # the first KEEP_REFUSALS refusal lines
        self.accepted = 0  # connections accepted so far
        self.refusals = 0  # every refusal, counted
        self._busy = 0  # refusals because the line was full
        self._line: queue.Queue = queue.Queue(maxsize=pending)
        self._in_handshake: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._threads = [threading.Thread(target=self._accept_loop, name=f"{name}-accept")]
        self._threads += [
            threading.Thread(target=self._work, name=f"{name}-handshake-{i}")
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, addr = self.listener.accept()
            except OSError:
                return  # listener closed
            self.accepted += 1
            try:
                self._line.put_nowait((sock, addr, time.monotonic() + self.handshake_s))
            except queue.Full:
                self._refuse(sock, addr, f"{self.pending} connections already wait", busy=True)

    def _work(self) -> None:
        while True:
            item = self._line.get()
            if item is None:
                return
            sock, addr, deadline = item
            if self._closed or time.monotonic() >= deadline:
                self._refuse(sock, addr, "its handshake deadline passed while it waited")
                continue
            with self._lock:
                self._in_handshake.add(sock)
            try:
                self.handshake(sock, addr, deadline)
            except (OSError, CommError) as exc:
                reason = str(exc) or type(exc).__name__
                self._refuse(sock, addr, "cut off, the listener closed" if self._closed else reason)
            finally:
                with self._lock:
                    self._in_handshake.discard(sock)

    def _refuse(self, sock: socket.socket, addr: tuple, reason: str, busy: bool = False) -> None:
        line = f"{self.name} refused a connection from {addr[0]}:{addr[1]}: {reason}"
        with self._lock:
            self.refusals += 1
            self._busy += busy
            if len(self.refused) < KEEP_REFUSALS:
                self.refused.append(line)
            quiet = busy and self._busy > 1  # a flood is one story: told once, then counted
        (log.info if quiet else log.warning)(line)
        sock.close()

    def close(self) -> None:
        """Stop accepting; cut handshakes in progress and those still waiting."""
        self._closed = True
        _shut(self.listener)  # wakes the accept loop (close alone does not, on Linux)
        self.listener.close()
        with self._lock:
            for sock in self._in_handshake:
                _shut(sock)
        for _ in self._threads[1:]:
            try:
                self._line.put_nowait(None)
            except queue.Full:
                self._drain_one()
                self._line.put_nowait(None)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the accept and handshake threads to end (after :meth:`close`)."""
        for thread in self._threads:
            thread.join(timeout)

    def _drain_one(self) -> None:
        try:
            item = self._line.get_nowait()
        except queue.Empty:
            return
        if item is not None:
            item[0].close()

    def __enter__(self) -> Admission:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
