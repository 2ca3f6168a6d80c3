"""What the profiler costs a training step when it is off, and when it is on.

The profiler's promise (:mod:`sparkgrad.autodiff.profiler.hooks`) is that, switched off, it
costs each op, backward node, optimizer step and collective **one read of a module flag**::

    span = hooks.begin_op(cls, args) if hooks.active else None   # profiler off: one read

This measures that promise instead of asserting it:

1. one profiled step counts the places that read the flag (each recorded span is one read
   that found the flag up; switched off, the same places read it and find it down);
2. a tight loop times one read of the flag as the hot paths write it (``if ... else None``
   on a module attribute), in nanoseconds;
3. reads x ns/read is the profiler's whole cost when off; it is set against the step time
   measured with the profiler off, and the step time measured with the profiler on is
   shown beside it (recording every span costs real time: that is the price of looking).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from sparkgrad.autodiff.profiler import hooks as _prof
from sparkgrad.autodiff.profiler.profile import profile


def flag_read_ns(reads: int = 1_000_000) -> float:
    """Nanoseconds of one ``x if _prof.active else None`` (the loop's own cost removed)."""

    def with_read() -> None:
        for _ in range(reads):
            _ = 1 if _prof.active else None

    def without_read() -> None:
        for _ in range(reads):
            _ = None

    def best(fn: Callable[[], None]) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter_ns()
            fn()
            times.append(time.perf_counter_ns() - start)
        return min(times)

    return max(0.0, (best(with_read) - best(without_read)) / reads)


def spans_per_step(step: Callable[[], None]) -> int:
    """How many hooked places one ``step()`` passes (each records one span when on)."""
    with profile() as prof:
        step()
    return len(prof.events())


def _ms_per_step(step: Callable[[], None], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps * 1e3


def step_ms_off_and_on(step: Callable[[], None], steps: int, repeats: int) -> tuple[float, float]:
    """Median milliseconds per ``step()`` with the profiler off and on, in interleaved
    rounds (off, on, off, on, ...) so background load hits both alike."""
    off, on = [], []
    for _ in range(repeats):
        off.append(_ms_per_step(step, steps))
        with profile():
            on.append(_ms_per_step(step, steps))
    return statistics.median(off), statistics.median(on)


def measure(step: Callable[[], None], steps: int = 10, repeats: int = 7) -> dict:
    """The numbers of the module docstring for one training ``step``."""
    step()  # warm-up
    reads = spans_per_step(step)
    ns = flag_read_ns()
    off_ms, on_ms = step_ms_off_and_on(step, steps, repeats)
    off_cost_ms = reads * ns / 1e6
    return {
        "flag_reads_per_step": reads,
        "ns_per_read": ns,
        "profiler_off_cost_ms": off_cost_ms,
        "step_ms_profiler_off": off_ms,
        "off_cost_share": off_cost_ms / off_ms,
        "step_ms_profiler_on": on_ms,
    }


def format_line(m: dict) -> str:
    """One paragraph a learner can read."""
    return (
        f"profiler off: {m['flag_reads_per_step']} flag reads per step x "
        f"{m['ns_per_read']:.0f} ns = {m['profiler_off_cost_ms'] * 1e3:.1f} us, "
        f"{100 * m['off_cost_share']:.2f}% of the {m['step_ms_profiler_off']:.2f} ms step; "
        f"profiler on (recording every span): {m['step_ms_profiler_on']:.2f} ms per step"
    )
