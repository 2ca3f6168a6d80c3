"""Clocks and staleness: what "a worker runs S steps ahead of the slowest" means, measured.

Each worker has a **clock**: how many gradients it has pushed. The server keeps every
worker's clock and its state (expected, live, done, lost). Two numbers describe how old
the weights behind a gradient were:

- the **clock gap** of a push: the pusher's clock minus the lowest clock of the workers
  still training (itself included), measured when the push *arrives*. Stale-synchronous
  parallel (SSP, Ho et al. 2013) bounds exactly this: a worker may start a step (pull)
  only while ``its clock - slowest clock <= S``. Clocks only grow, and a worker that
  finishes or is lost stops counting, so the slowest clock can only rise between the pull
  and the push: every push then arrives with a gap ``<= S``. With ``S = 0`` every worker
  waits for all others at every step (bulk-synchronous, like a barrier), with ``S = inf``
  nobody ever waits (fully asynchronous).
- the **version lag** of a push: how many updates the server applied between the pull
  that read the weights and this push (Downpour / Hogwild's "staleness"). Asynchronous
  training with ``n`` equally fast workers typically sees a lag of about ``n - 1``; even
  SSP with ``S = 0`` sees up to ``n - 1`` (the others' pushes of the same clock land in
  between), while the server's bulk-synchronous mode, which applies one averaged update
  per clock, always sees 0.

:class:`Clocks` is plain bookkeeping (the server holds its own lock around it);
:class:`StalenessLog` keeps one record per push for the histograms and the tests.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

EXPECTED, LIVE, DONE, LOST = "expected", "live", "done", "lost"


class Clocks:
    """Every worker's clock and state; ``staleness`` is SSP's ``S`` (None: unbounded)."""

    def __init__(self, workers: int, staleness: int | None = None) -> None:
        self.workers, self.staleness = workers, staleness
        self.clock = [0] * workers
        self.state = [EXPECTED] * workers

    def training(self) -> list[int]:
        """Workers that count for the slowest clock: expected (not connected yet) or live."""
        return [w for w in range(self.workers) if self.state[w] in (EXPECTED, LIVE)]

    def slowest(self) -> int:
        """The lowest clock among the workers still training (inf when none is)."""
        clocks = [self.clock[w] for w in self.training()]
        return min(clocks) if clocks else math.inf

    def gap(self, worker: int) -> int:
        """``clock[worker] - slowest`` (0 when ``worker`` is the slowest or alone)."""
        slowest = self.slowest()
        return 0 if math.isinf(slowest) else max(0, self.clock[worker] - int(slowest))

    def may_start(self, worker: int) -> bool:
        """SSP's rule: may ``worker`` start its next step (pull) now?"""
        return self.staleness is None or self.gap(worker) <= self.staleness

    def laggards(self, worker: int) -> list[int]:
        """The workers ``worker`` is waiting for under SSP (the slowest ones)."""
        slowest = self.slowest()
        return [w for w in self.training() if w != worker and self.clock[w] == slowest]

    def finished(self) -> bool:
        """True once every worker is done or lost."""
        return all(s in (DONE, LOST) for s in self.state)


@dataclass
class Push:
    """One push as the server saw it."""

    worker: int
    clock: int  # the pusher's clock before this push (its step index, from 0)
    clock_gap: int  # clock - slowest clock, on arrival
    version_lag: int  # updates applied between the pull and this push
    seconds: float  # since the server started


class StalenessLog:
    """One :class:`Push` record per push; histograms and maxima for reports and tests."""

    def __init__(self) -> None:
        self.pushes: list[Push] = []

    def record(self, push: Push) -> None:
        self.pushes.append(push)

    def histogram(self, field: str = "version_lag") -> dict[int, int]:
        """``{value: count}`` of ``field`` ("version_lag" or "clock_gap"), values sorted."""
        counts = Counter(getattr(p, field) for p in self.pushes)
        return dict(sorted(counts.items()))

    def max(self, field: str = "clock_gap") -> int:
        """The largest ``field`` seen (0 with no pushes)."""
        return max((getattr(p, field) for p in self.pushes), default=0)

    def per_worker(self) -> dict[int, int]:
        """How many pushes each worker made."""
        return dict(sorted(Counter(p.worker for p in self.pushes).items()))
