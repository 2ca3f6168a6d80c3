"""A profiler shaped like ``torch.profiler`` (``sg.profiler``): see :mod:`.profile`.

- :mod:`.hooks`      the one flag the hot paths read, and the per-thread recorder
- :mod:`.profile`    ``profile``, ``record_function``, ``schedule``, ``ProfilerActivity``
- :mod:`.events`     ``FunctionEvent``, ``key_averages()`` and PyTorch's table
- :mod:`.trace`      Trace Event JSON (``export_chrome_trace``) and a strict checker
- :mod:`.merge`      per-rank traces into one, with send/recv flow arrows
- :mod:`.predicted`  the same run laid out on the modelled cluster (cost model times)
- :mod:`.draw`       a matplotlib picture of a merged trace's tracks
"""

from sparkgrad.autodiff.profiler.events import EventList, FunctionEvent, FunctionEventAvg
from sparkgrad.autodiff.profiler.profile import (
    ProfilerAction,
    ProfilerActivity,
    profile,
    record_function,
    schedule,
)
from sparkgrad.autodiff.profiler.trace import validate_trace

__all__ = [
    "EventList",
    "FunctionEvent",
    "FunctionEventAvg",
    "ProfilerAction",
    "ProfilerActivity",
    "profile",
    "record_function",
    "schedule",
    "validate_trace",
]
