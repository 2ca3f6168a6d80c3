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
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

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
    bytes_sent: int = 0

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
        try:
            yield
        finally:
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
