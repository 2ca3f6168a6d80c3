"""The ledger of the stand-in: every host↔device transfer and every synchronisation.

On a real GPU the costly, easy-to-miss events are the ones that cross PCIe or make the
host wait for the device: ``float(x)``, ``x.item()``, ``x.get()``, ``cupy.asarray(host)``,
a NumPy index array on device data, a boolean mask (its result's size lives on the
device). The stand-in cannot be slow in the same way, so it writes each such event here,
with the line of the caller outside the stand-in, and tests read it:

    import cupy
    with cupy.fake.watch() as events:
        train_step()
    assert [e.kind for e in events] == ["to_host"]      # the one loss.item() we asked for

Kinds: ``"to_device"`` (host → device copy), ``"to_host"`` (device → host copy; the host
waits for the device as well), ``"sync"`` (a wait without a copy: ``synchronize()``, or an
op whose output shape depends on device data). The ledger is per process.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

_HERE = os.path.dirname(os.path.abspath(__file__))
_FAKE_ROOT = os.path.dirname(_HERE)  # tests/fake_cupy: cupy/ and cupyx/ live here

KINDS = ("to_device", "to_host", "sync")


@dataclass(frozen=True)
class Event:
    """One transfer or synchronisation: what caused it and the first caller outside cupy."""

    kind: str
    what: str
    nbytes: int
    where: str
    thread: int = 0  # threading.get_ident() of the caller (thread ranks share one ledger)

    def __str__(self) -> str:
        size = f" {self.nbytes} B" if self.nbytes else ""
        return f"{self.kind}: {self.what}{size} at {self.where}"


events: list[Event] = []


def _caller() -> str:
    """``file:line in function`` of the innermost frame outside the stand-in."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_FAKE_ROOT):
        frame = frame.f_back
    if frame is None:  # pragma: no cover - always called from somewhere
        return "?"
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"


def record(kind: str, what: str, nbytes: int = 0) -> None:
    """Write one event (``kind`` one of :data:`KINDS`)."""
    events.append(Event(kind, what, int(nbytes), _caller(), threading.get_ident()))


def counts() -> Counter:
    """How many events of each kind so far (every kind present, zero included)."""
    out = Counter({k: 0 for k in KINDS})
    out.update(e.kind for e in events)
    return out


def reset() -> None:
    """Forget every event recorded so far."""
    events.clear()


@contextlib.contextmanager
def watch() -> Iterator[list[Event]]:
    """The events recorded inside the ``with`` block (a list filled when it ends)."""
    start = len(events)
    seen: list[Event] = []
    try:
        yield seen
    finally:
        seen.extend(events[start:])
