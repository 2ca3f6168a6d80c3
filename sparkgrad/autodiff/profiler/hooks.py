"""The profiler's hooks: ONE flag the hot paths read, and the recorder behind it.

Every op runs through :meth:`sparkgrad.autodiff.function.Function.apply`, every backward
step through the engine's loop (:mod:`sparkgrad.autodiff.graph`), every optimizer step
through :meth:`Optimizer.step`, every collective through the communicator. Each of those
places reads :data:`active` and, only when it is true, calls a function of this module::

    span = hooks.begin_op(cls, args) if hooks.active else None   # profiler off: one read
    ...                                                           # the op itself
    if span is not None:
        hooks.end(span)

With no profiler running, the cost is one module-attribute read per op (and a local
``None`` test): nothing is allocated, no clock is read.

A profiler records the thread that started it (a recorder lives in a ``threading.local``),
so two thread ranks of the threads transport each profile themselves, as two processes
would. Spans nest with a stack: a span's *self* time is its duration minus the durations
of the spans that ran inside it (PyTorch's "Self CPU").
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

active = False  # True while a profiler records on some thread: the only thing hot paths read
# the modelled cluster a collective's predicted time is asked for (the engine sets it from
# --sim-topology; the communicator asks sparkgrad.comms.model, this layer only stores it)
topology = os.environ.get("SPARKGRAD_TOPOLOGY", "2x8-h100")
_local = threading.local()
_lock = threading.Lock()
_recording_threads = 0

COMPUTE, COMM = "compute", "comm"  # the two thread tracks of a trace


class Span:
    """One timed region: an op, a backward node, an optimizer step, a collective, a label."""

    __slots__ = ("name", "cat", "track", "start", "end", "shapes", "nbytes", "args", "child_ns")

    def __init__(
        self,
        name: str,
        cat: str,
        track: str = COMPUTE,
        shapes: list | None = None,
        nbytes: int = 0,
        args: dict | None = None,
    ) -> None:
        self.name, self.cat, self.track = name, cat, track
        self.shapes, self.nbytes, self.args = shapes, nbytes, args
        self.start = self.end = 0  # perf_counter_ns
        self.child_ns = 0  # time spent in spans nested inside this one

    @property
    def dur(self) -> int:
        return self.end - self.start

    def __repr__(self) -> str:
        return f"Span({self.name!r}, {self.cat}, {self.dur / 1e3:.1f} us)"


class Recorder:
    """The spans of one thread while a profiler is on (``recording`` False: paused by a
    schedule's wait/warm-up steps)."""

    def __init__(self, record_shapes: bool) -> None:
        self.record_shapes = record_shapes
        self.recording = True
        self.spans: list[Span] = []
        self.stack: list[Span] = []

    def begin(self, span: Span) -> Span:
        self.stack.append(span)
        self.spans.append(span)
        span.start = time.perf_counter_ns()
        return span

    def end(self, span: Span) -> None:
        span.end = time.perf_counter_ns()
        stack = self.stack
        if span in stack:  # pop it, and any span an exception left open above it
            while stack.pop() is not span:
                pass
        if stack:
            stack[-1].child_ns += span.dur

    def add_finished(self, span: Span, start_ns: int, end_ns: int) -> None:
        """A span timed by someone else (a collective measures itself): record it as is."""
        span.start, span.end = start_ns, end_ns
        self.spans.append(span)
        if self.stack:
            self.stack[-1].child_ns += span.dur

    def finished_spans(self) -> list[Span]:
        """Spans that ended (an op that raised leaves none), in start order."""
        return sorted((s for s in self.spans if s.end), key=lambda s: s.start)


def install(recorder: Recorder | None) -> Recorder | None:
    """Make ``recorder`` this thread's (None: stop); returns the one it replaces."""
    global active, _recording_threads
    with _lock:
        previous = getattr(_local, "recorder", None)
        _local.recorder = recorder
        _recording_threads += (recorder is not None) - (previous is not None)
        active = _recording_threads > 0
    return previous


def current() -> Recorder | None:
    """This thread's recorder while it records, else None."""
    rec = getattr(_local, "recorder", None)
    return rec if rec is not None and rec.recording else None


# -- what the hot paths call (only when ``active``) ---------------------------------------------
def _shape(a: Any) -> list:
    shape = getattr(a, "shape", None)
    return list(shape) if isinstance(shape, tuple) else []


def _nbytes(values: Any) -> int:
    total = 0
    for a in values:
        total += getattr(getattr(a, "array", a), "nbytes", 0) or 0
    return int(total)


def begin(name: str, cat: str, shapes: list | None = None, nbytes: int = 0) -> Span | None:
    """Open a span on this thread (None when this thread does not record)."""
    rec = current()
    if rec is None:
        return None
    if rec.record_shapes and shapes is None:
        shapes = []  # a label has no inputs: PyTorch shows []
    return rec.begin(Span(name, cat, COMPUTE, shapes if rec.record_shapes else None, nbytes))


def begin_op(cls: type, args: tuple) -> Span | None:
    """An op's forward: its name (the Function's class), input shapes and input bytes."""
    rec = current()
    if rec is None:
        return None
    shapes = [_shape(a) for a in args] if rec.record_shapes else None
    return rec.begin(Span(cls.__name__, "cpu_op", COMPUTE, shapes, _nbytes(args)))


def end(span: Span) -> None:
    """Close ``span`` (opened by :func:`begin` or :func:`begin_op` on this thread)."""
    rec = getattr(_local, "recorder", None)
    if rec is not None:
        rec.end(span)


def run_backward(node: Any, grad: Any) -> tuple:
    """``node.run_backward(grad)``, timed as ``<Op>Backward`` with the gradient's shape."""
    rec = current()
    if rec is None:
        return node.run_backward(grad)
    grads = [g for g in (grad if isinstance(grad, list) else [grad]) if g is not None]
    shapes = [_shape(g) for g in grads] if rec.record_shapes else None
    span = rec.begin(Span(node.name(), "backward", COMPUTE, shapes, _nbytes(grads)))
    try:
        return node.run_backward(grad)
    finally:
        rec.end(span)


def on_comm(
    pg: Any, record: dict, t0: float, peer: int | None = None, predicted: float = 0.0
) -> None:
    """A collective (or send/recv) that just finished on ``pg``: ``record`` is the
    communicator's history entry (collective, algorithm, nbytes, seq, measured),
    ``t0`` its ``time.perf_counter()`` start, ``peer`` the group rank of a send/recv,
    ``predicted`` the seconds the cost model gives on :data:`topology`."""
    rec = current()
    if rec is None:
        return
    kind = record["collective"]
    me, ranks = pg.transport.rank, list(pg.ranks)
    args = {
        "collective": kind,
        "algorithm": record["algorithm"],
        "bytes": int(record["nbytes"]),
        "seq": int(record["seq"]),
        "tag": int(pg.tag),
        "ranks": ranks,
        "peers": [r for r in ranks if r != me] if peer is None else [ranks[peer]],
        "measured_us": float(record["measured"]) * 1e6,
        "bytes_sent": int(record["bytes_sent"]),
        "predicted_us": float(predicted) * 1e6,
        "topology": topology,
    }
    if peer is not None:  # both ends compute the same key: (tag, sender, receiver, nth)
        src, dst = (me, ranks[peer]) if kind == "send" else (ranks[peer], me)
        args["pair"] = f"{pg.tag}:{src}->{dst}#{record['seq']}"
    span = Span(kind, "comm", COMM, None, int(record["nbytes"]), args)
    start_ns = int(t0 * 1e9)  # the slice is the communicator's own measurement
    rec.add_finished(span, start_ns, start_ns + int(float(record["measured"]) * 1e9))
