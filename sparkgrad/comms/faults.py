"""Fault injection, for teaching and tests: slow links and ranks that vanish.

A :class:`FaultPlan` is given to every rank's communicator (the same plan everywhere).
It is seeded, so a failing run can be replayed exactly:

- ``link_delay={(0, 1): 0.05}``: every frame rank 0 sends to rank 1 waits a random
  ``0.5..1 x 0.05`` s first (a slow or congested link);
- ``drop_rank=2, drop_at_call=3``: rank 2 vanishes when it starts its 4th collective call
  (``k`` counts from 0). ``drop_mode="exit"`` closes its connections (a crashed process:
  peers notice at once); ``"hang"`` keeps them open and stays silent for ``hang_seconds``
  (a stuck process: peers notice when their timeout fires).

Either way the surviving ranks must raise :class:`~sparkgrad.errors.CollectiveTimeout`
naming the missing rank, and the dropped rank raises :class:`RankDropped`.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

from sparkgrad.errors import CommError, ConfigError


class RankDropped(CommError):
    """Raised on the rank that a :class:`FaultPlan` drops (it is the injected failure)."""


@dataclass
class FaultPlan:
    """What goes wrong, where and when; the same plan is passed to every rank."""

    seed: int = 0
    link_delay: dict[tuple[int, int], float] = field(default_factory=dict)
    drop_rank: int | None = None
    drop_at_call: int | None = None
    drop_mode: str = "exit"
    hang_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.drop_mode not in ("exit", "hang"):
            raise ConfigError(f"drop_mode: expected 'exit' or 'hang', found {self.drop_mode!r}")
        if (self.drop_rank is None) != (self.drop_at_call is None):
            raise ConfigError("drop_rank and drop_at_call go together: give both or neither")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def delay(self, src: int, dst: int) -> float:
        """Seconds to wait before a frame from ``src`` to ``dst`` (0 for healthy links)."""
        base = self.link_delay.get((src, dst), 0.0)
        if base <= 0:
            return 0.0
        with self._lock:
            return base * (0.5 + 0.5 * self._rng.random())

    def drops(self, rank: int, call_index: int) -> bool:
        """True when ``rank`` must vanish at the start of its call number ``call_index``."""
        return rank == self.drop_rank and call_index == self.drop_at_call
