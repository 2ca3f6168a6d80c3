"""Run one function on every rank: as threads of this process, or as separate processes.

``run_threads(fn, n)`` calls ``fn(rank, n, *args)`` in ``n`` threads sharing one
:class:`~sparkgrad.comms.threads_transport.ThreadWorld` (found again by
:func:`current_launch`, so ``init_process_group(backend="threads")`` needs no address).
``run_processes(fn, n)`` starts ``n`` fresh Python processes (``multiprocessing`` "spawn")
with ``MASTER_ADDR=127.0.0.1``, a free ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE`` and a new
``SPARKGRAD_SECRET`` in their environment: what ``env://`` rendezvous reads.

Both return the list of return values, or re-raise the *first* failure (in time); the
other ranks' failures are attached as notes. A thread rank that fails leaves its world,
so its peers raise at once instead of waiting for their timeout.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sparkgrad.errors as errors_module
from sparkgrad.comms.auth import SECRET_ENV, new_secret
from sparkgrad.comms.threads_transport import ThreadWorld
from sparkgrad.errors import CommError

_local = threading.local()


@dataclass
class LaunchContext:
    """What a thread rank started by :func:`run_threads` knows about its launch."""

    rank: int
    world_size: int
    world: ThreadWorld


def current_launch() -> LaunchContext | None:
    """The launch context of the calling thread, if :func:`run_threads` started it."""
    return getattr(_local, "context", None)


def _raise_first(failures: list[tuple[float, int, BaseException]]) -> None:
    failures.sort(key=lambda f: (f[0], f[1]))
    _, rank, first = failures[0]
    for _, other, exc in failures[1:]:
        first.add_note(f"rank {other} also failed: {type(exc).__name__}: {exc}")
    first.add_note(f"(raised on rank {rank})")
    raise first


def run_threads(fn: Callable[..., Any], world_size: int, args: tuple = ()) -> list[Any]:
    """``fn(rank, world_size, *args)`` on ``world_size`` threads; results in rank order."""
    world = ThreadWorld(world_size)
    results: list[Any] = [None] * world_size
    failures: list[tuple[float, int, BaseException]] = []

    def target(rank: int) -> None:
        _local.context = LaunchContext(rank, world_size, world)
        try:
            results[rank] = fn(rank, world_size, *args)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the launcher
            failures.append((time.monotonic(), rank, exc))
            world.close_rank(rank, f"it raised {type(exc).__name__}: {exc}")
        finally:
            _local.context = None

    threads = [
        threading.Thread(target=target, args=(r,), name=f"rank-{r}") for r in range(world_size)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        _raise_first(failures)
    return results


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process_main(fn: Callable[..., Any], rank: int, env: dict, args: tuple, out: Any) -> None:
    os.environ.update(env)
    try:
        out.put((rank, "ok", fn(rank, int(env["WORLD_SIZE"]), *args), "", time.monotonic()))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as text
        text = "".join(traceback.format_exception(exc))
        out.put((rank, type(exc).__name__, str(exc), text, time.monotonic()))


def run_processes(
    fn: Callable[..., Any],
    world_size: int,
    args: tuple = (),
    timeout: float = 120.0,
    env: dict | None = None,
) -> list[Any]:
    """``fn(rank, world_size, *args)`` in ``world_size`` processes (``fn`` importable)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    base = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "WORLD_SIZE": str(world_size),
        SECRET_ENV: new_secret().hex(),
        **(env or {}),
    }
    procs = [
        ctx.Process(target=_process_main, args=(fn, r, {**base, "RANK": str(r)}, args, out))
        for r in range(world_size)
    ]
    for p in procs:
        p.start()
    results: list[Any] = [None] * world_size
    failures: list[tuple[float, int, BaseException]] = []
    deadline = time.monotonic() + timeout
    try:
        for _ in range(world_size):
            try:
                rank, kind, value, text, when = out.get(
                    timeout=max(0.1, deadline - time.monotonic())
                )
            except queue.Empty:
                raise errors_module.CollectiveTimeout(
                    f"run_processes: not every rank finished within {timeout:g} s"
                ) from None
            if kind == "ok":
                results[rank] = value
                continue
            cls = getattr(errors_module, kind, None)
            exc = cls(value) if isinstance(cls, type) else CommError(f"{kind}: {value}")
            exc.add_note(text)
            failures.append((when, rank, exc))
    finally:
        for p in procs:
            p.join(timeout=max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
    if failures:
        _raise_first(failures)
    return results
