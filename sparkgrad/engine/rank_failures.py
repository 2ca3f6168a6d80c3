"""Rank failures: what a failing rank reports, which errors are final, what the user sees.

A Spark job of ``world_size`` ranks fails in a cascade: one rank raises, its peers then
fail in their next collective (a ``CollectiveTimeout`` or ``PeerLost``: "rank 0 is gone"),
Spark reruns the stage, and its final error text holds one of those failures, often a
consequence. This module keeps the cause in view:

- *On the rank*, :func:`failure` turns the exception into one JSON record (rank, attempt,
  class, message, where, time, and whether a retry can help: :func:`is_permanent`). The
  rank sends it to the driver over its log connection *before* raising, so the record
  precedes every consequence, and raises it inside a :class:`RankFailed` for Spark's text.
- *On the driver*, :class:`JobWatch` collects the records as they arrive, stops the job
  at once on a permanent one (a rerun would fail the same way: the ranks are told to
  stop, the job is cancelled), and handles Ctrl-C the same way. :func:`driver_error`
  picks the root cause (:func:`root_cause`) and raises it as one short error of the
  rank's own class when it is a :mod:`sparkgrad.errors` class, :class:`RankError`
  otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import re
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

from sparkgrad import errors
from sparkgrad.engine.spark_session import quiet_spark_logs
from sparkgrad.engine.task_logging import LogServer, Sink
from sparkgrad.errors import SparkgradError

FAILURE_MARK = "sparkgrad-rank-failure "
CONSEQUENCES = {"CollectiveTimeout", "CommError", "PeerLost"}  # of another rank's failure
#: Errors a rerun of the stage would meet again: the job fails at once instead.
PERMANENT = (
    errors.ConfigError,
    errors.DataFormatError,
    errors.CheckpointError,
    errors.NonFiniteLossError,
    errors.DeviceError,
    # issue 20: the parameter server stopped the run, or refuses a rerun's workers
    errors.WorkerLost,
    errors.ServerLost,
)
PERMANENT_ERRNO = {errno.EACCES, errno.EPERM, errno.EROFS}  # permission, read-only FS
log = logging.getLogger("sparkgrad.engine")


class RankError(SparkgradError, RuntimeError):
    """A rank raised an error that is not one of sparkgrad's (the message names the rank)."""


class RankFailed(RuntimeError):
    """Raised in a task: one line of JSON the driver can find inside Spark's error text."""


def is_permanent(exc: BaseException) -> bool:
    """True for an error that a rerun of the stage cannot fix (see :data:`PERMANENT`)."""
    if isinstance(exc, PERMANENT):
        return True
    return isinstance(exc, OSError) and exc.errno in PERMANENT_ERRNO


def failure(rank: int, attempt: int, exc: BaseException) -> RankFailed:
    """The record of ``exc`` on ``rank``, as the exception the task raises (``str()`` of it
    is the line the rank sends to the driver first)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    info = {
        "rank": rank,
        "attempt": attempt,
        "type": type(exc).__name__,
        "message": str(exc),
        "where": where,
        "time": time.time(),
        "retry": not is_permanent(exc),
    }
    return RankFailed(FAILURE_MARK + json.dumps(info))


def parse_failures(text: str) -> list[dict]:
    """Every rank-failure record inside ``text`` (Spark's error text, a log line), in order."""
    found, decoder = [], json.JSONDecoder()
    for match in re.finditer(re.escape(FAILURE_MARK), text):
        try:
            info, _ = decoder.raw_decode(text, match.end())
            if {"rank", "attempt", "type", "message"} <= set(info):
                found.append(info)
        except (ValueError, TypeError):
            continue
    return found


def root_cause(found: list[dict]) -> dict:
    """The failure to report: of the last attempt, the first (by time) that is not the
    consequence of another rank's failure; the first of all when every one is."""
    last = max(int(f["attempt"]) for f in found)
    found = [f for f in found if int(f["attempt"]) == last]
    causes = [f for f in found if f["type"] not in CONSEQUENCES] or found

    def when(info: dict) -> float:
        t = info.get("time")
        return float(t) if isinstance(t, (int, float)) and math.isfinite(t) else math.inf

    return min(causes, key=when)  # min is stable: without times, the first found wins


def driver_error(exc: BaseException, reported: list[dict] = ()) -> SparkgradError:
    """The short error to raise on the driver for a failed Spark job ``exc``.

    ``reported``: the failure records the ranks sent over their log connections (Spark's
    error text holds only the one that failed the job). When several ranks failed, a
    rank's own error wins over a peer's timeout or lost connection, which are usually its
    consequence (:func:`root_cause`).
    """
    text = str(exc)
    found = list(reported) + parse_failures(text)
    if found:
        info = root_cause(found)
        cls = getattr(errors, str(info["type"]), None)
        if not (isinstance(cls, type) and issubclass(cls, SparkgradError)):
            cls = RankError
        where = f" (at {info['where']})" if info.get("where") else ""
        return cls(
            f"rank {info['rank']} failed on attempt {info['attempt']} with "
            f"{info['type']}: {info['message']}{where}"
        )
    # Not raised by the rank function: e.g. the worker could not start or import.
    python = re.findall(r"^(\w+(?:Error|Exception)): (.+)$", text, re.MULTILINE)
    stage = re.search(r"(Job aborted due to stage failure: [^\n]{0,300})", text)
    parts = [f"{name}: {msg}" for name, msg in python[-1:]] + ([stage.group(1)] if stage else [])
    return RankError("the Spark job failed: " + (" | ".join(parts) or text[:500]))


class JobWatch:
    """The driver's side of one job: failure records, the stop on a permanent error or on
    Ctrl-C, and the lines shown to the user (see the module docstring)."""

    def __init__(self, sc: Any, tag: str, sink: Sink, quiet: bool) -> None:
        self.sc, self.tag, self.user_sink, self.quiet = sc, tag, sink, quiet
        self.logs: LogServer | None = None
        self.failures: list[dict] = []
        self.interrupted = threading.Event()
        self._stopping = threading.Event()

    def sink(self, rank: int, line: str) -> None:
        """Log lines from the ranks: failure records are kept, the rest shown."""
        if not line.startswith(FAILURE_MARK):
            self.user_sink(rank, line)
            return
        for info in parse_failures(line):
            self.failures.append(info)
            if info.get("retry") is False:
                self.stop(f"rank {info['rank']} hit {info['type']}, which no retry can fix")
            elif info["type"] not in CONSEQUENCES:
                self.user_sink(
                    rank, f"failed on attempt {info['attempt']} with {info['type']}: "
                    f"{info['message']}"
                )  # fmt: skip

    def stop(self, why: str) -> None:
        """Stop the ranks and cancel the job, once; in a thread of its own (py4j calls)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        log.debug("stopping the job: %s", why)
        threading.Thread(target=self._stop, daemon=True, name="sparkgrad-stop").start()

    def _stop(self) -> None:
        try:
            if self.quiet and self.interrupted.is_set():
                quiet_spark_logs(self.sc)  # the tasks' ends would log pages of traces
            if self.logs is not None:
                self.logs.stop_ranks()
            self.sc.cancelJobsWithTag(self.tag)
        except Exception as exc:  # noqa: BLE001 - the JVM may be going away; nothing to add
            log.debug("stopping the job failed: %s", exc)

    @contextlib.contextmanager
    def on_ctrl_c(self) -> Iterator[None]:
        """While the job runs, Ctrl-C stops it (a second one raises at once)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self.interrupted.is_set():
                raise KeyboardInterrupt
            self.interrupted.set()
            self.stop("interrupted (Ctrl-C)")

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
