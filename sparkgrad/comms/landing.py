"""Fast path: zero-copy receives -- a frame's bytes read straight into their final place.

The plain receive is "the TCP reader reads a frame into a fresh array, queues it, the
collective copies it into its buffer". For large tensors that copy costs as much as the
socket. So a collective may *post* the slice of its buffer where the next frame from a
peer belongs (:meth:`LandingZones.post`), and the reader, before reading a DATA frame's
payload, asks whether a place was posted for it (:meth:`LandingZones.claim`). Frames from
one source arrive in order, so they are numbered: ``taken`` counts the frames the
mailbox handed out, ``announced`` those the reader has started to read; a post for a
frame that already started arriving is refused (it is copied the plain way).

Nothing here changes a value: with every post refused, the collectives still work.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any


class LandingZones:
    """Buffers posted for coming DATA frames, per (tag, source) and frame number."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._posted: dict[tuple[int, int, int], Any] = {}  # (tag, src, frame index) -> view
        self._taken: dict[tuple[int, int], int] = defaultdict(int)  # frames handed out by get
        self._announced: dict[tuple[int, int], int] = defaultdict(int)  # frames claimed

    def taken(self, key: tuple[int, int]) -> None:
        """The mailbox handed out one more DATA frame of ``key = (tag, src)``."""
        with self._lock:
            self._taken[key] += 1

    def post(self, tag: int, src: int, view: Any, ahead: int = 0) -> int | None:
        """Offer ``view`` as the landing place of a coming DATA frame from ``src`` (zero copy).

        Frames from one source arrive in order, so they are counted: ``ahead=0`` means the
        next frame that :meth:`get` will hand out, ``ahead=k`` the one ``k`` frames later.
        Returns the frame's index (to :meth:`unpost` it), or None when that frame already
        arrived (it is queued, or being read: it will be copied instead).
        """
        key = (tag, src)
        with self._lock:
            index = self._taken[key] + ahead
            if index < self._announced[key]:
                return None
            self._posted[(tag, src, index)] = view
            return index

    def unpost(self, tag: int, src: int, index: int | None) -> None:
        """Withdraw an offer made by :meth:`post` (no-op when it was taken or never made)."""
        if index is not None:
            with self._lock:
                self._posted.pop((tag, src, index), None)

    def claim(self, tag: int, src: int, dtype: Any, count: int) -> Any:
        """For the receiving side, once per arriving DATA frame, in arrival order: the view
        posted for this frame if it fits (``count`` elements of ``dtype``), else None."""
        key = (tag, src)
        with self._lock:
            index = self._announced[key]
            self._announced[key] = index + 1
            view = self._posted.pop((tag, src, index), None)
            if view is None or view.dtype != dtype or view.size < count:
                return None
            return view[:count]


def landed_in_place(frame: Any, arr: Any, dest: Any) -> bool:
    """True when ``frame``'s bytes were read straight into ``dest`` (checked by address:
    the claimed view must be this very slice of the collective's buffer)."""
    return bool(frame.direct) and arr.ctypes.data == dest.ctypes.data
