"""``profile``, ``record_function`` and ``schedule``: the ``torch.profiler`` API on sparkgrad.

::

    import sparkgrad as sg
    with sg.profiler.profile(record_shapes=True) as prof:
        with sg.profiler.record_function("model_inference"):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
    prof.export_chrome_trace("trace.json")       # open in ui.perfetto.dev or chrome://tracing

What is recorded (see :mod:`.hooks` for where): every op's forward (the Function's name,
e.g. ``Matmul``) and backward (``MatmulBackward``) with input shapes and bytes, every
optimizer step (``Optimizer.step#SGD.step``), every collective and send/recv (on its own
"communication" track, with algorithm, bytes, peers, measured time and the cost model's
predicted time on the modelled cluster), your ``record_function`` labels, and one
``ProfilerStep#N`` per :meth:`profile.step`.

``activities`` accepts ``ProfilerActivity.CPU`` (the default); ``ProfilerActivity.CUDA``
is accepted and means the same wall-clock times (CuPy kernels are timed from the host, as
``time.perf_counter`` sees them: without a synchronise they are launch times).

``schedule(wait=, warmup=, active=, repeat=, skip_first=)`` works as in PyTorch: steps
are counted by ``prof.step()``; during wait and warm-up nothing is recorded, after the
last active step of a cycle ``on_trace_ready(prof)`` is called and the next cycle starts
with an empty record.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable
from typing import Any

from sparkgrad.autodiff.profiler import hooks
from sparkgrad.autodiff.profiler.events import EventList, FunctionEvent
from sparkgrad.autodiff.profiler.trace import build_trace, write_json_atomic


class ProfilerActivity(enum.Enum):
    CPU = "cpu"
    CUDA = "cuda"


class ProfilerAction(enum.Enum):
    NONE = 0
    WARMUP = 1
    RECORD = 2
    RECORD_AND_SAVE = 3


def schedule(
    *, wait: int, warmup: int, active: int, repeat: int = 0, skip_first: int = 0
) -> Callable[[int], ProfilerAction]:
    """PyTorch's schedule: the action for step number ``step`` (counted from 0)."""
    if wait < 0 or warmup < 0 or active <= 0 or repeat < 0 or skip_first < 0:
        raise ValueError(
            f"schedule: expected wait, warmup, repeat, skip_first >= 0 and active > 0, found "
            f"wait={wait}, warmup={warmup}, active={active}, repeat={repeat}, "
            f"skip_first={skip_first}"
        )

    def action(step: int) -> ProfilerAction:
        if step < skip_first:
            return ProfilerAction.NONE
        step -= skip_first
        cycle = wait + warmup + active
        if repeat > 0 and step // cycle >= repeat:
            return ProfilerAction.NONE
        mod = step % cycle
        if mod < wait:
            return ProfilerAction.NONE
        if mod < wait + warmup:
            return ProfilerAction.WARMUP
        return ProfilerAction.RECORD if mod < cycle - 1 else ProfilerAction.RECORD_AND_SAVE

    return action


def _recording(action: ProfilerAction) -> bool:
    return action in (ProfilerAction.RECORD, ProfilerAction.RECORD_AND_SAVE)


class profile:  # noqa: N801 - PyTorch's name
    """Record what this thread runs while the ``with`` block is open (see the module doc).

    ``rank``: the trace's process id and name (``"rank r"``); the engine sets it, a plain
    script gets the OS process id.
    """

    def __init__(
        self,
        *,
        activities: Any = None,
        schedule: Callable[[int], ProfilerAction] | None = None,
        on_trace_ready: Callable[[profile], Any] | None = None,
        record_shapes: bool = False,
        profile_memory: bool = False,
        with_stack: bool = False,
        rank: int | None = None,
    ) -> None:
        for activity in activities or (ProfilerActivity.CPU,):
            if not isinstance(activity, ProfilerActivity):
                raise ValueError(
                    f"activities: expected ProfilerActivity.CPU or .CUDA, found {activity!r}"
                )
        self.record_shapes = record_shapes
        self.schedule, self.on_trace_ready = schedule, on_trace_ready
        self.rank = rank
        self.step_num = 0
        self.origin_ns = 0  # perf_counter_ns at start: ts 0 of the trace
        self.origin_unix_ns = 0
        self._recorder: hooks.Recorder | None = None
        self._previous: hooks.Recorder | None = None
        self._saved: list | None = None  # spans of the last finished cycle
        self._step_span: hooks.Span | None = None

    # -- lifetime ------------------------------------------------------------------------------
    def start(self) -> None:
        self.origin_ns, self.origin_unix_ns = time.perf_counter_ns(), time.time_ns()
        self._recorder = hooks.Recorder(self.record_shapes)
        self._recorder.recording = _recording(self._action())
        self._previous = hooks.install(self._recorder)
        self._open_step()

    def stop(self) -> None:
        if self._recorder is None:
            return
        first = self._step_span
        self._close_step()
        if self.step_num == 0 and first is not None:  # step() never called: no step label
            self._recorder.spans.remove(first)
        hooks.install(self._previous)
        if self.schedule is None:
            self._saved = self._recorder.finished_spans()
        elif self._recorder.recording and self._recorder.spans:  # a cycle cut short
            self._saved = self._recorder.finished_spans()
            if self.on_trace_ready is not None:
                self.on_trace_ready(self)
        self._recorder = None

    def __enter__(self) -> profile:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- steps ---------------------------------------------------------------------------------
    def _action(self) -> ProfilerAction:
        return ProfilerAction.RECORD if self.schedule is None else self.schedule(self.step_num)

    def _open_step(self) -> None:
        rec = self._recorder
        if rec is not None and rec.recording:
            shapes = [] if rec.record_shapes else None
            self._step_span = rec.begin(
                hooks.Span(f"ProfilerStep#{self.step_num}", "step", shapes=shapes)
            )

    def _close_step(self) -> None:
        if self._step_span is not None and self._recorder is not None:
            self._recorder.end(self._step_span)
        self._step_span = None

    def step(self) -> None:
        """The end of a training step: close ``ProfilerStep#N``, apply the schedule."""
        if self._recorder is None:
            return
        self._close_step()
        before = self._action()
        self.step_num += 1
        after = self._action()
        if before is ProfilerAction.RECORD_AND_SAVE:
            self._saved = self._recorder.finished_spans()
            self._recorder.spans, self._recorder.stack = [], []
            if self.on_trace_ready is not None:
                self.on_trace_ready(self)
        self._recorder.recording = _recording(after)
        self._open_step()

    # -- results -------------------------------------------------------------------------------
    def _spans(self) -> list:
        if self._saved is not None:
            return self._saved
        return self._recorder.finished_spans() if self._recorder is not None else []

    def events(self) -> EventList:
        """Every recorded span as a :class:`FunctionEvent`, in start order."""
        return EventList(FunctionEvent(s, self.origin_ns) for s in self._spans())

    def key_averages(self, group_by_input_shape: bool = False) -> EventList:
        return self.events().key_averages(group_by_input_shape)

    def trace(self) -> dict:
        """The Trace Event JSON object (what :meth:`export_chrome_trace` writes)."""
        pid = self.rank if self.rank is not None else os.getpid()
        name = f"rank {self.rank}" if self.rank is not None else f"python {os.getpid()}"
        other = {
            "sparkgrad": {
                "rank": self.rank,
                "origin_perf_ns": self.origin_ns,
                "origin_unix_ns": self.origin_unix_ns,
                "host": os.uname().nodename if hasattr(os, "uname") else "",
            }
        }
        return build_trace(self.events(), pid, name, other)

    def export_chrome_trace(self, path: str | os.PathLike) -> None:
        """Write the trace (Trace Event JSON) to ``path``, atomically."""
        write_json_atomic(path, self.trace())


class record_function:  # noqa: N801 - PyTorch's name
    """Label a region: ``with record_function("data"):`` (or as a decorator)."""

    def __init__(self, name: str, args: str | None = None) -> None:
        self.name = name
        self._span: hooks.Span | None = None

    def __enter__(self) -> record_function:
        self._span = hooks.begin(self.name, "user_annotation") if hooks.active else None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._span is not None:
            hooks.end(self._span)
            self._span = None

    def __call__(self, fn: Callable) -> Callable:
        import functools

        @functools.wraps(fn)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with record_function(self.name):
                return fn(*args, **kwargs)

        return wrapped
