"""Work handles: what an ``async_op=True`` call returns (``torch.distributed.Work``).

The call runs on a background thread that belongs to its process group; ``wait()``
blocks until it is done and re-raises its error, ``is_completed()`` asks without waiting.
Calls of one group run one after the other in call order (a sync call first waits for
the async ones before it), so every rank still sees the same sequence of collectives.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any


class Work:
    """A pending (or finished) collective or point-to-point call."""

    def __init__(self, future: Future) -> None:
        self._future = future

    @classmethod
    def done(cls, value: Any = None) -> Work:
        """An already completed handle (for calls that finish immediately, such as isend)."""
        future: Future = Future()
        future.set_result(value)
        return cls(future)

    def wait(self, timeout: float | timedelta | None = None) -> bool:
        """Block until the call finished; re-raise its error. Returns True, as PyTorch."""
        if isinstance(timeout, timedelta):
            timeout = timeout.total_seconds()
        self._future.result(timeout=timeout)
        return True

    def is_completed(self) -> bool:
        """True once the call finished (successfully or not)."""
        return self._future.done()

    def is_success(self) -> bool:
        """True once the call finished without an error."""
        return self._future.done() and self._future.exception() is None

    def result(self) -> Any:
        """What the call returned (after waiting for it)."""
        return self._future.result()


class WorkQueue:
    """One background thread per kind of call, running submitted calls in order."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: list[Future] = []

    def submit(self, fn: Callable[[], Any]) -> Work:
        """Queue ``fn``; returns its :class:`Work` handle."""
        future = self._pool.submit(fn)
        self._pending = [f for f in self._pending if not f.done()] + [future]
        return Work(future)

    def drain(self) -> None:
        """Wait for every queued call (errors stay with their handles)."""
        for future in self._pending:
            future.exception()
        self._pending = []

    def shutdown(self) -> None:
        """Stop the thread once queued calls are done."""
        self._pool.shutdown(wait=True)
