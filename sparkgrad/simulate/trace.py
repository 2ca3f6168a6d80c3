"""The predicted timeline as a Chrome trace, in the profiler's format (one process per stage).

The same file format :meth:`sparkgrad.profiler.profile.export_chrome_trace` writes
(:mod:`sparkgrad.autodiff.profiler.trace`): ``X`` slices in microseconds, process and thread
names as ``M`` events; ``tid`` 1 "compute" and 2 "communication" as there (here: the
overlapping, asynchronous collectives), plus 3 "blocking communication" (what compute waits
for: tensor-parallel all-reduces, ZeRO's final gathers) and 4 "pipeline send". Open the file in
``chrome://tracing`` or Perfetto next to a measured trace to compare the two.
"""

from __future__ import annotations

import os
from pathlib import Path

from sparkgrad.autodiff.profiler.trace import process_metadata, rounded_span, write_json_atomic
from sparkgrad.simulate.schedule import Event

CATEGORIES = {"forward": "cpu_op"}  # the profiler's name for forward ops (its colour)
LANE_TIDS = {"compute": 1, "async": 2, "blocking": 3, "send": 4}
EXTRA_THREADS = {3: "blocking communication", 4: "pipeline send"}


def build_trace(events: list[Event], stages: int, title: str = "predicted") -> dict:
    """``{"traceEvents": [...]}`` for the events of :func:`.schedule.run_step`."""
    out: list[dict] = []
    for s in range(stages):
        out += process_metadata(s, f"{title}: stage {s}", s)
        for tid, name in EXTRA_THREADS.items():
            out.append(
                {"ph": "M", "name": "thread_name", "pid": s, "tid": tid, "args": {"name": name}}
            )
    for ev in sorted(events, key=lambda e: (e.stage, e.start)):
        start = ev.start * 1e6
        out.append(
            {
                "ph": "X",
                "cat": CATEGORIES.get(ev.category, ev.category),
                "name": ev.name,
                "pid": ev.stage,
                "tid": LANE_TIDS[ev.lane],
                **rounded_span(start, start + ev.seconds * 1e6),
                "args": {"predicted": True},
            }
        )
    return {
        "traceEvents": out,
        "displayTimeUnit": "ms",
        "otherData": {"source": "sparkgrad.simulate"},
    }


def export_chrome_trace(events: list[Event], stages: int, path: str | os.PathLike) -> Path:
    """Write the trace to ``path`` (atomically, as the profiler does)."""
    return write_json_atomic(path, build_trace(events, stages))
