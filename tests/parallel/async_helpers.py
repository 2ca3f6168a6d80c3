"""Shared pieces of the asynchronous-training tests: a small config, a hard deadline, leaks.

Every test of a server and its workers runs under :func:`within`: the call runs in a daemon
thread and the test fails if it has not returned after ``seconds`` (a hang is a failure,
never a stuck test run). The deadlines are generous guards, not timing assertions.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

from sparkgrad.engine.config import RunConfig


def small_config(**overrides: Any) -> RunConfig:
    """784-32-10 MLP on the embedded digits, 2 workers, 1 epoch, SGD."""
    base = dict(world_size=2, epochs=1, hidden=(32,), batch_size=64, lr=0.05, momentum=0.9)
    return RunConfig(**{**base, "progress": False, **overrides})


def within(seconds: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, or a test failure if it runs past ``seconds``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="test-deadline")
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{getattr(fn, '__name__', fn)} still ran after {seconds} s (a hang)")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def ps_threads() -> list[str]:
    """Names of live threads that belong to a parameter server or its workers."""
    prefixes = ("ps-worker-", "parameter server-", "async-worker-")
    return [t.name for t in threading.enumerate() if t.name.startswith(prefixes)]


def open_sockets() -> int:
    """How many socket descriptors this process holds (Linux)."""
    fds = os.listdir("/proc/self/fd")
    count = 0
    for fd in fds:
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count
