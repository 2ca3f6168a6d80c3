"""A channel: one rank's end of one collective call, as the algorithms see it.

The communicator makes a fresh channel for every call, carrying the call's sequence
number, its *fingerprint* (``all_reduce(shape=(1024,), dtype=float32, op=SUM,
algo=ring)``) and its deadline. Every frame sent carries both; every frame received is
checked against them, which is how a rank notices that a peer called something else.
Ranks are *group* ranks (0..size-1 of this communicator), mapped here to transport ranks.

The channel also counts what this call really sent (``bytes_sent``, from the transport's
own count), and checks every frame it takes: a frame of another call raises
:class:`FingerprintMismatch`, which the communicator turns into the error every rank sees.

A channel remembers whom it sent to and heard from, for :meth:`Channel.confirm`: the
end of a rooted collective, where a rank that only *sent* to a peer waits for that
peer's small ACK, so that a mismatch found by the peer reaches the sender too.
"""

from __future__ import annotations

import time
from typing import Any

from sparkgrad.comms.framing import ACK, DATA, Frame
from sparkgrad.comms.landing import landed_in_place
from sparkgrad.comms.reduce_ops import ReduceOp, combine
from sparkgrad.errors import CommError


class FingerprintMismatch(CommError):
    """Internal: group rank ``peer`` sent a frame of another call (see the communicator)."""

    def __init__(self, peer: int, frame: Frame) -> None:
        super().__init__(frame.fingerprint)
        self.peer, self.frame = peer, frame


class Channel:
    """``send`` / ``recv_into`` / ``recv_reduce`` / ``segments`` for one call (see algorithms)."""

    def __init__(self, comm: Any, seq: int, fingerprint: str, deadline: float, tag: int) -> None:
        self.comm, self.seq, self.fingerprint = comm, seq, fingerprint
        self.deadline, self.tag = deadline, tag
        self.rank, self.size = comm.rank, comm.size
        self.waiting_on: int | None = None  # the group rank a recv is blocked on, for errors
        self._ahead: list[tuple[int, int | None]] = []  # (source, index) posted by post_ahead
        self.sent_to: set[int] = set()  # group ranks this call sent DATA to
        self.heard_from: set[int] = set()  # group ranks whose DATA this call checked
        self.bytes_sent = 0  # payload bytes this call handed to the transport

    def segments(self, view: Any) -> list[Any]:
        """``view`` cut into pieces of at most ``segment_bytes`` (at least one piece)."""
        step = max(1, self.comm.segment_bytes // max(1, view.itemsize))
        if view.size <= step:
            return [view]
        return [view[i : i + step] for i in range(0, view.size, step)]

    def send(self, peer: int, view: Any) -> None:
        """Send ``view`` to group rank ``peer``, as frames of at most ``max_frame_bytes``."""
        comm = self.comm
        dst = comm.ranks[peer]
        self.sent_to.add(peer)
        step = max(1, comm.max_frame_bytes // max(1, view.itemsize))
        for i in range(0, max(view.size, 1), step):
            if comm.faults is not None:  # an injected slow link
                time.sleep(comm.faults.delay(comm.transport.rank, dst))
            frame = Frame(
                DATA, comm.transport.rank, self.tag, self.seq, self.fingerprint, view[i : i + step]
            )
            self.bytes_sent += comm.transport.send(dst, frame)

    def post_ahead(self, peer: int, views: list[Any]) -> None:
        """Offer ``views`` as the landing places of the next ``len(views)`` frames from ``peer``.

        For a known sequence of receives (the all-gather half of a ring): each frame is read
        by the transport straight into its place, even if it arrives before this rank asks
        for it, instead of into a spare buffer and copied. The caller promises not to read
        or write ``views`` until it receives them. :meth:`close` withdraws what is left.
        """
        src, mailbox = self.comm.ranks[peer], self.comm.transport.mailbox
        for k, view in enumerate(views):
            self._ahead.append((src, mailbox.landing.post(self.tag, src, view, ahead=k)))

    def close(self) -> None:
        """Withdraw every offer of :meth:`post_ahead` that no frame took (end of the call)."""
        mailbox = self.comm.transport.mailbox
        for src, index in self._ahead:
            mailbox.landing.unpost(self.tag, src, index)
        self._ahead.clear()

    def _frames(self, peer: int, out: Any, post: bool) -> Any:
        """Yield ``(offset, array, direct)`` for the frames from ``peer`` that fill ``out``.

        With ``post``, the rest of ``out`` is offered to the transport first, so a TCP frame
        can land in it directly (``direct``: nothing left to copy).
        """
        comm, src, pos = self.comm, self.comm.ranks[peer], 0
        mailbox = comm.transport.mailbox
        while True:
            self.waiting_on = peer
            index = mailbox.landing.post(self.tag, src, out[pos:]) if post and out.size else None
            try:
                frame = self.checked(peer, comm.transport.recv(self.tag, src, self.deadline))
            finally:
                mailbox.landing.unpost(self.tag, src, index)
            self.waiting_on = None
            self.heard_from.add(peer)
            arr = frame.array.reshape(-1)
            if arr.dtype != out.dtype or pos + arr.size > out.size:
                raise CommError(
                    f"rank {self.rank} expected {out.size - pos} more {out.dtype} elements from "
                    f"rank {peer} in {self.fingerprint}, found a frame of {arr.size} {arr.dtype}"
                )
            direct = landed_in_place(frame, arr, out[pos:])  # fast path: nothing to copy
            yield pos, arr, direct
            if not frame.direct:
                comm.transport.recycle(frame.array)  # its bytes are consumed now
            pos += arr.size
            if pos >= out.size:
                return

    def checked(self, peer: int, frame: Frame) -> Frame:
        """``frame`` from group rank ``peer`` if it belongs to this call, else raise."""
        if frame.seq != self.seq or frame.fingerprint != self.fingerprint:
            raise FingerprintMismatch(peer, frame)
        return frame

    def recv_into(self, peer: int, out: Any) -> None:
        """Receive exactly ``out.size`` elements from ``peer`` into ``out``."""
        for pos, arr, direct in self._frames(peer, out, post=True):
            if not direct:
                out[pos : pos + arr.size] = arr

    def recv_reduce(self, peer: int, acc: Any, op: ReduceOp) -> None:
        """Receive ``acc.size`` elements from ``peer`` and combine: ``acc = acc op incoming``."""
        for pos, arr, _ in self._frames(peer, acc, post=False):
            combine(op, acc[pos : pos + arr.size], arr)

    def confirm(self) -> None:
        """End a rooted collective: every rank learns whether its peers agreed.

        In a broadcast, reduce, gather or scatter some ranks only send to a peer and never
        hear from it (the root of a broadcast; the leaves of a reduce). Nothing they
        receive can tell them that the peer called something else, so they would return
        normally and learn of the mismatch only at their next call. Here, first, a rank
        waits for one small ACK from every peer it only sent to; then it sends one to every
        peer it only heard from. A peer acknowledges once *its* part is done, including
        its own waits, so the acks run back up the tree and a rank returns only when the
        ranks it fed (and theirs) got the same call. A mismatch or failure anywhere below
        arrives instead as the notice that makes this rank raise as well.

        Only for tree-shaped algorithms: in a ring every rank hears from every other
        through the data itself, and acks around a cycle would wait on each other forever.
        """
        comm = self.comm
        for peer in sorted(self.sent_to - self.heard_from):
            self.waiting_on = peer
            src = comm.ranks[peer]
            self.checked(peer, comm.transport.mailbox.get_ack(self.tag, src, self.deadline))
        self.waiting_on = None
        for peer in sorted(self.heard_from - self.sent_to):
            ack = Frame(ACK, comm.transport.rank, self.tag, self.seq, self.fingerprint, None)
            comm.transport.send(comm.ranks[peer], ack)
