"""``Timeline``: what one rank spent its time on -- forward, backward, communication, idle.

Every strategy records spans on its rank's timeline; the strategies benchmark draws them
one row per rank (:func:`sparkgrad.parallel.timeline_plot.plot_timelines`), so a learner
*sees* the bubble of naive model parallelism and how 1F1B shrinks it::

    tl = Timeline(rank=0)
    with tl.span("forward", "mb0"):
        out = stage(x)
    with tl.span("idle", "wait for grad"):   # blocked on a recv from the next stage
        comm.recv(buf, peer)
    tl.totals()                              # {"forward": 0.0012, "idle": 0.0040, ...}

Kinds: ``forward``, ``backward``, ``comm`` (moving bytes we could not overlap), ``idle``
(waiting for another rank: the pipeline bubble), ``optimizer``. Times are seconds from
the timeline's start (:meth:`reset`), so ranks started together line up in a picture.

Communication is not timed here but read from the communicator: :meth:`Timeline.watch`
subscribes to a process group's call records. Every call this rank's transport sent
bytes for adds them to :attr:`bytes_sent` (whatever the algorithm, whatever the thread);
a call made on the timeline's own thread, outside any open span, becomes a ``comm`` span.
A call inside an open span belongs to it (a pipeline's blocked ``recv`` is ``idle``), and
a call on another thread overlaps the work (DDP's buckets: the strategy records the
waits). :func:`timed` records work minus the ``comm`` spans that happened inside it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

KINDS = ("forward", "backward", "comm", "idle", "optimizer")


@dataclass(frozen=True)
class Span:
    """One stretch of time on one rank: ``kind`` from ``start`` for ``duration`` seconds."""

    kind: str
    start: float
    duration: float
    label: str = ""


@dataclass
class Timeline:
    """The spans of one rank, in the order they ended."""

    rank: int = 0
    spans: list[Span] = field(default_factory=list)
    origin: float = field(default_factory=time.perf_counter)
    bytes_sent: int = 0  # payload bytes this rank's transport sent (see watch)
    _open: int = 0  # spans open right now (calls inside them are not comm spans)
    _watched: set = field(default_factory=set)

    def watch(self, group: Any) -> None:
        """Read communication from ``group``'s call records (see the module docstring).

        ``group``: a ``sparkgrad.distributed`` group or a ``ProcessGroup``. Its subgroups
        share its observers, so one watch covers every group of this rank's world.
        """
        pg = getattr(group, "pg", group)
        if id(pg.observers) in self._watched:
            return
        self._watched.add(id(pg.observers))
        pg.observers.append(self._observer(threading.get_ident()))

    def _observer(self, thread: int) -> Callable[[dict], None]:
        def observe(record: dict) -> None:
            self.bytes_sent += record["bytes_sent"]
            if record["thread"] == thread and self._open == 0:
                start = record["start"] - self.origin
                self.spans.append(Span("comm", start, record["measured"], record["collective"]))

        return observe

    def reset(self, origin: float | None = None) -> None:
        """Forget every span; times now count from ``origin`` (default: now)."""
        self.spans = []
        self.bytes_sent = 0
        self.origin = time.perf_counter() if origin is None else origin

    @contextmanager
    def span(self, kind: str, label: str = "") -> Iterator[None]:
        """Record the time the ``with`` body takes as one span of ``kind``."""
        if kind not in KINDS:
            raise ValueError(f"Timeline.span: expected a kind in {KINDS}, found {kind!r}")
        start = time.perf_counter()
        self._open += 1
        try:
            yield
        finally:
            self._open -= 1
            end = time.perf_counter()
            self.spans.append(Span(kind, start - self.origin, end - start, label))

    def add(self, kind: str, start: float, duration: float, label: str = "") -> None:
        """Record a span measured elsewhere (``start`` in ``time.perf_counter()`` seconds)."""
        if kind not in KINDS:
            raise ValueError(f"Timeline.add: expected a kind in {KINDS}, found {kind!r}")
        self.spans.append(Span(kind, start - self.origin, duration, label))

    def totals(self) -> dict[str, float]:
        """Seconds per kind (every kind present, 0.0 when none was recorded)."""
        out = dict.fromkeys(KINDS, 0.0)
        for s in self.spans:
            out[s.kind] += s.duration
        return out

    def as_dict(self) -> dict:
        """JSON-friendly: rank, bytes sent, totals and the spans as lists."""
        return {
            "rank": self.rank,
            "bytes_sent": self.bytes_sent,
            "totals": self.totals(),
            "spans": [[s.kind, s.start, s.duration, s.label] for s in self.spans],
        }


def timed(timeline: Timeline, kind: str, fn: Callable[[], Any], label: str = "") -> Any:
    """Run ``fn``; record its time as ``kind`` minus the ``comm`` spans recorded inside it.

    For work with collectives in the middle (tensor parallel's all-reduces in forward,
    ZeRO-3's gathers): the picture shows the computing and the communicating apart.
    """
    mark, start = len(timeline.spans), time.perf_counter()
    result = fn()
    comm = sum(s.duration for s in timeline.spans[mark:] if s.kind == "comm")
    timeline.add(kind, start, time.perf_counter() - start - comm, label)
    return result
