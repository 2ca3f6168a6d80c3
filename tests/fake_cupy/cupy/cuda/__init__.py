"""``cupy.cuda`` of the stand-in: devices, streams, events and the runtime queries.

One GPU by default (``SPARKGRAD_FAKE_CUDA_DEVICES=n`` for more), named "sparkgrad fake
CUDA device (NumPy)". Every ``synchronize()`` is written to the ledger as a ``sync``.
"""

from __future__ import annotations

import time
from typing import Any

from .. import _ledger
from . import runtime
from .runtime import CUDARuntimeError

__all__ = [
    "Device", "Stream", "Event", "runtime", "CUDARuntimeError", "get_current_stream",
    "get_elapsed_time", "is_available",
]  # fmt: skip


def is_available() -> bool:
    return runtime.getDeviceCount() > 0


class Device:
    """``cupy.cuda.Device(id)``: ``.id``, ``.use()``, ``.synchronize()``, a context manager."""

    def __init__(self, device: Any = None) -> None:
        self.id = runtime.getDevice() if device is None else int(device)
        self._previous: list[int] = []

    def use(self) -> None:
        runtime.setDevice(self.id)

    def synchronize(self) -> None:
        _ledger.record("sync", "Device.synchronize()")

    @property
    def compute_capability(self) -> str:
        return "90"

    def __enter__(self) -> Device:
        self._previous.append(runtime.getDevice())
        self.use()
        return self

    def __exit__(self, *exc: Any) -> None:
        runtime.setDevice(self._previous.pop())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"


class Stream:
    """``cupy.cuda.Stream``: work is eager here, so only ``synchronize()`` means anything."""

    null: Stream
    _current: list[Stream] = []

    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False) -> None:
        self.ptr = 0 if null else id(self)

    def synchronize(self) -> None:
        _ledger.record("sync", "Stream.synchronize()")

    def use(self) -> Stream:
        Stream._current[:] = [self]
        return self

    def __enter__(self) -> Stream:
        Stream._current.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        Stream._current.pop()

    @property
    def done(self) -> bool:
        return True


Stream.null = Stream(null=True)


def get_current_stream(device_id: int = -1) -> Stream:
    return Stream._current[-1] if Stream._current else Stream.null


class Event:
    """``cupy.cuda.Event``: ``record()`` takes the host clock, ``synchronize()`` is a sync."""

    def __init__(self, block: bool = False, disable_timing: bool = False,
                 interprocess: bool = False) -> None:  # fmt: skip
        self.t: float | None = None

    def record(self, stream: Any = None) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        _ledger.record("sync", "Event.synchronize()")

    @property
    def done(self) -> bool:
        return True


def get_elapsed_time(start_event: Event, end_event: Event) -> float:
    """Milliseconds between two recorded events (the host waits for the end event)."""
    _ledger.record("sync", "get_elapsed_time()")
    if start_event.t is None or end_event.t is None:
        raise CUDARuntimeError("cudaErrorInvalidResourceHandle: event not recorded")
    return (end_event.t - start_event.t) * 1000.0
