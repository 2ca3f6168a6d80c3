"""In-process transport: every rank is a thread, frames are handed over in memory.

A :class:`ThreadWorld` holds one :class:`~sparkgrad.comms.transport.Mailbox` per rank;
``send`` copies the array (the sender may overwrite its buffer right after) and drops the
frame into the peer's mailbox. No sockets, no serialisation: the fastest way to run and
test every collective algorithm, and what ``spawn(fn, n, backend="threads")`` uses.
"""

from __future__ import annotations

import threading

import numpy as np

from sparkgrad.comms.framing import Frame
from sparkgrad.comms.transport import Mailbox, PeerLost, Transport
from sparkgrad.errors import CommError


class ThreadWorld:
    """The shared state of ``world_size`` thread ranks: one mailbox each."""

    def __init__(self, world_size: int) -> None:
        if world_size < 1:
            raise CommError(f"expected world_size >= 1, found {world_size}")
        self.world_size = world_size
        self.mailboxes = [Mailbox() for _ in range(world_size)]
        self._closed: set[int] = set()
        self._lock = threading.Lock()

    def transport(self, rank: int) -> ThreadsTransport:
        """The transport of ``rank`` (call once per rank, from its thread)."""
        if not 0 <= rank < self.world_size:
            raise CommError(f"expected 0 <= rank < {self.world_size}, found {rank}")
        return ThreadsTransport(self, rank)

    def close_rank(self, rank: int, reason: str) -> None:
        """Mark ``rank`` as gone in every other rank's mailbox."""
        with self._lock:
            if rank in self._closed:
                return
            self._closed.add(rank)
        for other, box in enumerate(self.mailboxes):
            if other != rank:
                box.mark_lost(rank, reason)

    def is_closed(self, rank: int) -> bool:
        """True once ``rank`` closed its transport."""
        return rank in self._closed


class ThreadsTransport(Transport):
    """One thread rank's view of a :class:`ThreadWorld`."""

    def __init__(self, world: ThreadWorld, rank: int) -> None:
        super().__init__()
        self.world, self.rank, self.world_size = world, rank, world.world_size
        self.mailbox = world.mailboxes[rank]

    def deliver(self, peer: int, frame: Frame) -> None:
        """Copy the payload and deliver the frame to ``peer``'s mailbox."""
        if self.world.is_closed(peer):
            raise PeerLost(peer, "it closed the communicator or failed")
        if frame.array is not None:
            frame.array = np.array(frame.array, copy=True)
        self.world.mailboxes[peer].put(frame)

    def close(self) -> None:
        """Leave the world; peers waiting on this rank raise instead of hanging."""
        self.world.close_rank(self.rank, "its thread closed the communicator or failed")
