"""The one transport interface: send a frame to a peer rank, receive frames from peers.

A transport moves :class:`~sparkgrad.comms.framing.Frame` objects between the ranks of
one job and knows nothing about collectives. Two implementations exist:

- :class:`~sparkgrad.comms.threads_transport.ThreadsTransport`: ranks are threads of one
  process, frames are handed over in memory (notebooks, fast tests);
- :class:`~sparkgrad.comms.tcp_transport.TcpTransport`: ranks are processes, frames cross
  authenticated TCP sockets (Spark tasks, ``multiprocessing``, separate shells).

Both deliver incoming frames into a :class:`Mailbox`: one FIFO queue per (communicator
tag, source rank), one more for acknowledgements (ACK: "my part of call #k is done"),
plus a list of *control* frames (a peer saying "I am stuck" or "we called different
collectives"). ``send`` never waits for the receiver to call ``recv``
(the receiving side always drains its connections), so no pattern of sends and receives
can deadlock; ``recv`` waits with a deadline, and wakes early when a control frame
arrives or a peer is lost, so a doomed collective stops on every rank instead of hanging.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import defaultdict, deque

from sparkgrad.comms.framing import ACK, DATA, Frame
from sparkgrad.comms.landing import LandingZones
from sparkgrad.errors import CommError

P2P_TAG_BIT = 1 << 31  # send/recv frames of a group travel apart from its collective frames


def group_tag(tag: int) -> int:
    """The group a frame tag belongs to: its collectives and its send/recv share notices."""
    return tag & ~P2P_TAG_BIT


class PeerLost(CommError):
    """The connection to a peer closed (its process or thread is gone)."""

    def __init__(self, peer: int, reason: str) -> None:
        super().__init__(f"rank {peer} is gone: {reason}")
        self.peer, self.reason = peer, reason


class WaitTimeout(CommError):
    """Internal: the deadline of one ``recv`` passed (the communicator names the call)."""


class ControlArrived(CommError):
    """Internal: a control frame (STUCK or MISMATCH) arrived for this communicator."""

    def __init__(self, frame: Frame) -> None:
        super().__init__(frame.fingerprint)
        self.frame = frame


class Mailbox:
    """Incoming frames of one rank, sorted by (tag, source), with one condition to wait on.

    The plain idea: the transport :meth:`put` s every frame it reads into a queue, and a
    collective :meth:`get` s them in order. (A fast path lets the TCP reader write a
    frame's bytes straight into the collective's buffer instead: :attr:`landing`.)
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queues: dict[tuple[int, int], deque[Frame]] = defaultdict(deque)
        self._acks: dict[tuple[int, int], deque[Frame]] = defaultdict(deque)
        self._control: dict[int, list[Frame]] = defaultdict(list)
        self._lost: dict[int, str] = {}
        self.landing = LandingZones()  # fast path: receive buffers offered ahead of frames

    def put(self, frame: Frame) -> None:
        """Deliver one frame (called by the transport's receiving side)."""
        with self._cond:
            if frame.kind == DATA:
                self._queues[(frame.tag, frame.src)].append(frame)
            elif frame.kind == ACK:
                self._acks[(frame.tag, frame.src)].append(frame)
            else:  # a notice concerns the whole group, collectives and send/recv alike
                self._control[group_tag(frame.tag)].append(frame)
            self._cond.notify_all()

    def mark_lost(self, peer: int, reason: str) -> None:
        """Remember that ``peer`` is gone; waiters watching it wake up and raise."""
        with self._cond:
            self._lost.setdefault(peer, reason)
            self._cond.notify_all()

    def lost(self) -> dict[int, str]:
        """Peers known to be gone, with the reason."""
        with self._cond:
            return dict(self._lost)

    def get(self, tag: int, src: int, deadline: float) -> Frame:
        """The next DATA frame from ``src`` for ``tag``; wait until ``deadline`` (monotonic).

        Raises :class:`ControlArrived` if nothing is queued and a control frame is pending,
        :class:`PeerLost` if ``src`` is gone (after its last frames were taken), and
        :class:`WaitTimeout` when the deadline passes. Only ``src`` matters: a rank that
        finished its part of a collective and left is no error for the others.
        """
        return self._wait(self._queues, tag, src, deadline)

    def get_ack(self, tag: int, src: int, deadline: float) -> Frame:
        """The next ACK frame from ``src`` for ``tag``; waits and raises as :meth:`get`."""
        return self._wait(self._acks, tag, src, deadline)

    def _wait(
        self, queues: dict[tuple[int, int], deque[Frame]], tag: int, src: int, deadline: float
    ) -> Frame:
        key = (tag, src)
        with self._cond:
            while True:
                queue = queues.get(key)
                if queue:  # data first: a notice about a *later* call must not spoil this one
                    if queues is self._queues:  # DATA frames are counted (see LandingZones)
                        self.landing.taken(key)
                    return queue.popleft()
                notices = self._control[group_tag(tag)]
                if notices:
                    raise ControlArrived(notices[0])
                if src in self._lost:
                    raise PeerLost(src, self._lost[src])
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(f"no frame from rank {src} before the deadline")
                self._cond.wait(remaining)

    def pending_control(self, tag: int) -> Frame | None:
        """The first control frame waiting for ``tag``'s group, if any (not removed)."""
        with self._cond:
            frames = self._control.get(group_tag(tag))
            return frames[0] if frames else None

    def collect_control(self, tag: int, kind: int, until: float, expect: int) -> set[int]:
        """Ranks that sent a control frame of ``kind`` for ``tag``, waiting until ``until``.

        Returns early once ``expect`` distinct ranks have answered.
        """
        with self._cond:
            while True:
                seen = {f.src for f in self._control[group_tag(tag)] if f.kind == kind}
                remaining = until - time.monotonic()
                if len(seen) >= expect or remaining <= 0:
                    return seen
                self._cond.wait(remaining)


class Traffic:
    """What one rank's transport really sent: payload bytes and frames, counted per frame.

    This is the one place communication is measured in bytes. Every strategy and report
    reads these numbers (through the communicator's call records), so a tree all-reduce
    or a halving-doubling one is counted as what it moved, never by a formula.
    Headers and control frames (ACK, STUCK, MISMATCH) carry no payload and add 0 bytes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # DDP's bucket thread and the training thread both send
        self.bytes_sent = 0
        self.frames_sent = 0

    def count(self, frame: Frame) -> int:
        """Count one frame handed to the wire; returns its payload bytes."""
        nbytes = 0 if frame.array is None else int(frame.array.nbytes)
        with self._lock:
            self.bytes_sent += nbytes
            self.frames_sent += 1
        return nbytes


class Transport(ABC):
    """Moves frames between the ``world_size`` ranks of one job; ``rank`` is this one.

    Subclasses implement :meth:`deliver` (move the bytes) and :meth:`close`; :meth:`send`
    is the same for all: deliver, then count the frame in :attr:`traffic`.
    """

    rank: int
    world_size: int
    mailbox: Mailbox

    def __init__(self) -> None:
        self.traffic = Traffic()  # bytes and frames this rank has sent so far

    def send(self, peer: int, frame: Frame) -> int:
        """Deliver ``frame`` to ``peer`` and count it; returns the payload bytes sent.

        Raises :class:`PeerLost` when ``peer`` is gone (nothing is counted then).
        """
        self.deliver(peer, frame)
        return self.traffic.count(frame)

    @abstractmethod
    def deliver(self, peer: int, frame: Frame) -> None:
        """Hand ``frame`` to ``peer`` (returns once the bytes are handed over)."""

    def recv(self, tag: int, peer: int, deadline: float) -> Frame:
        """The next DATA frame from ``peer`` for communicator ``tag`` (see :meth:`Mailbox.get`)."""
        return self.mailbox.get(tag, peer, deadline)

    def recycle(self, array: object) -> None:  # noqa: B027 - optional hook, no-op by default
        """The receiver is done with a received array; a transport may reuse its memory."""

    def send_control(self, peers: list[int], frame: Frame) -> None:
        """Best effort: tell every peer in ``peers``; a peer already gone is skipped."""
        for peer in peers:
            try:
                self.send(peer, frame)
            except CommError:
                pass

    @abstractmethod
    def close(self) -> None:
        """Release connections; peers see this rank as lost."""
