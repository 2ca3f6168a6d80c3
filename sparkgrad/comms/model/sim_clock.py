"""A per-rank simulated clock: what the same calls would have cost on a modelled cluster.

Every collective a rank runs advances its wall clock by the *measured* time and its
``SimClock`` by the time :func:`sparkgrad.comms.model.predict` gives on a modelled
topology (say ``2x8-h100``). A training run can then print both side by side:
"measured here: 1.9 s of collectives, predicted on 2 nodes x 8 H100: 4.1 ms".

    >>> clock = SimClock()
    >>> clock.advance(2e-6, "all_reduce#0")
    >>> clock.advance(3e-6, "broadcast#1")
    >>> clock.now
    5e-06
    >>> clock.events[1]
    ('broadcast#1', 2e-06, 3e-06)
"""

from __future__ import annotations

from sparkgrad.errors import ConfigError


class SimClock:
    """Simulated seconds since :meth:`reset`, with a log of ``(label, start, duration)``."""

    def __init__(self) -> None:
        self._now = 0.0
        self.events: list[tuple[str, float, float]] = []

    @property
    def now(self) -> float:
        """Simulated seconds elapsed so far."""
        return self._now

    def advance(self, seconds: float, label: str = "") -> None:
        """Move the clock forward by ``seconds`` (>= 0) and log the event under ``label``."""
        seconds = float(seconds)
        if not seconds >= 0.0:  # also refuses NaN
            raise ConfigError(f"SimClock.advance: expected seconds >= 0, found {seconds}")
        self.events.append((label, self._now, seconds))
        self._now += seconds

    def reset(self) -> None:
        """Back to zero with an empty event log."""
        self._now = 0.0
        self.events = []

    def totals(self) -> dict[str, float]:
        """Simulated seconds per label prefix (``"all_reduce#3"`` counts as ``"all_reduce"``)."""
        out: dict[str, float] = {}
        for label, _, duration in self.events:
            key = label.split("#", 1)[0]
            out[key] = out.get(key, 0.0) + duration
        return out

    def __repr__(self) -> str:
        return f"SimClock(now={self._now:.6g} s, events={len(self.events)})"
