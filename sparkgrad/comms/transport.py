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
from typing import Any

from sparkgrad.comms.framing import ACK, DATA, Frame
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
    """Incoming frames of one rank, sorted by (tag, source), with one condition to wait on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queues: dict[tuple[int, int], deque[Frame]] = defaultdict(deque)
        self._acks: dict[tuple[int, int], deque[Frame]] = defaultdict(deque)
        self._control: dict[int, list[Frame]] = defaultdict(list)
        self._lost: dict[int, str] = {}
        self._posted: dict[tuple[int, int, int], Any] = {}  # (tag, src, frame index) -> view
        self._taken: dict[tuple[int, int], int] = defaultdict(int)  # frames handed out by get
        self._announced: dict[tuple[int, int], int] = defaultdict(int)  # frames claimed

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

    def post(self, tag: int, src: int, view: Any, ahead: int = 0) -> int | None:
        """Offer ``view`` as the landing place of a coming DATA frame from ``src`` (zero copy).

        Frames from one source arrive in order, so they are counted: ``ahead=0`` means the
        next frame that :meth:`get` will hand out, ``ahead=k`` the one ``k`` frames later.
        Returns the frame's index (to :meth:`unpost` it), or None when that frame already
        arrived (it is queued, or being read: it will be copied instead).
        """
        key = (tag, src)
        with self._cond:
            index = self._taken[key] + ahead
            if index < self._announced[key]:
                return None
            self._posted[(tag, src, index)] = view
            return index

    def unpost(self, tag: int, src: int, index: int | None) -> None:
        """Withdraw an offer made by :meth:`post` (no-op when it was taken or never made)."""
        if index is not None:
            with self._cond:
                self._posted.pop((tag, src, index), None)

    def claim(self, tag: int, src: int, dtype: Any, count: int) -> Any:
        """For the receiving side, once per arriving DATA frame, in arrival order: the view
        posted for this frame if it fits (``count`` elements of ``dtype``), else None."""
        key = (tag, src)
        with self._cond:
            index = self._announced[key]
            self._announced[key] = index + 1
            view = self._posted.pop((tag, src, index), None)
            if view is None or view.dtype != dtype or view.size < count:
                return None
            return view[:count]

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
                    if queues is self._queues:  # DATA frames are counted (see post)
                        self._taken[key] += 1
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


class Transport(ABC):
    """Moves frames between the ``world_size`` ranks of one job; ``rank`` is this one."""

    rank: int
    world_size: int
    mailbox: Mailbox

    @abstractmethod
    def send(self, peer: int, frame: Frame) -> None:
        """Deliver ``frame`` to ``peer`` (returns once the bytes are handed over).

        Raises :class:`PeerLost` when ``peer`` is gone.
        """

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
