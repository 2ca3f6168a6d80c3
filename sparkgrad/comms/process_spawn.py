"""``torch.multiprocessing.spawn``: run ``fn(rank, *args)`` in ``nprocs`` fresh processes.

The PyTorch tutorials start their ranks like this, and so does sparkgrad::

    def run(rank, world_size):
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", "29500"
        dist.init_process_group("gloo", rank=rank, world_size=world_size)
        ...

    if __name__ == "__main__":
        sparkgrad.multiprocessing.spawn(run, args=(2,), nprocs=2)

As in PyTorch, the *user* sets ``MASTER_ADDR``/``MASTER_PORT`` (in the parent before
``spawn``, or in ``fn``) and passes ``rank``/``world_size`` to ``init_process_group``;
``fn`` must be importable (defined at the top level of a module). What sparkgrad adds is
the job secret that authenticates every connection between ranks: if ``SPARKGRAD_SECRET``
is not set, the parent makes one random secret (once per parent process) and hands it to
every child it starts, through the child's environment. Nothing about it can be computed
by someone else.

If a child raises, its traceback is written (as text, never pickled) to a file the parent
reads; the parent then stops the other children (SIGTERM, then SIGKILL) and raises
:class:`ProcessRaisedException` with the child's traceback in the message. A child that
dies without a Python exception (``os._exit(3)``, a signal) gives
:class:`ProcessExitedException` with its exit code or signal name. ``join=False`` returns
a :class:`ProcessContext` whose :meth:`~ProcessContext.join` does the waiting.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any

from sparkgrad.comms.auth import SECRET_ENV, new_secret
from sparkgrad.errors import SparkgradError

log = logging.getLogger("sparkgrad.multiprocessing")
_parent_secret: str | None = None


class ProcessException(SparkgradError):
    """A child process of :func:`spawn` failed (``error_index``: its rank, ``error_pid``)."""

    def __init__(self, msg: str, error_index: int, error_pid: int) -> None:
        super().__init__(msg)
        self.msg = msg
        self.error_index = error_index
        self.error_pid = error_pid

    def __reduce__(self) -> tuple:
        return type(self), (self.msg, self.error_index, self.error_pid)


class ProcessRaisedException(ProcessException):
    """The child raised an exception; the message ends with its traceback."""


class ProcessExitedException(ProcessException):
    """The child exited with a non-zero code or was killed by a signal."""

    def __init__(
        self,
        msg: str,
        error_index: int,
        error_pid: int,
        exit_code: int,
        signal_name: str | None = None,
    ) -> None:
        super().__init__(msg, error_index, error_pid)
        self.exit_code = exit_code
        self.signal_name = signal_name

    def __reduce__(self) -> tuple:
        args = (self.msg, self.error_index, self.error_pid, self.exit_code, self.signal_name)
        return type(self), args


def job_secret_env() -> dict[str, str]:
    """``{SPARKGRAD_SECRET: hex}`` for a child: the parent's own, or one made here once."""
    global _parent_secret
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        if _parent_secret is None:
            _parent_secret = new_secret().hex()
        secret = _parent_secret
    return {SECRET_ENV: secret}


def _die_with_parent() -> None:
    """Ask Linux to send this process SIGINT when its parent dies (as PyTorch does)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):  # pragma: no cover - not essential
            pass


def _wrap(fn: Callable[..., Any], i: int, args: tuple, error_file: str, env: dict) -> None:
    """The child's entry point: environment, then ``fn(i, *args)``; errors go to a file."""
    _die_with_parent()
    os.environ.update(env)
    try:
        fn(i, *args)
    except KeyboardInterrupt:
        pass  # stopped by the parent
    except Exception:
        with open(error_file, "w", encoding="utf-8") as fh:
            fh.write(traceback.format_exc())
        sys.exit(1)


class ProcessContext:
    """The children of one :func:`start_processes` call, and how to wait for them."""

    def __init__(self, processes: list[Any], error_files: list[str]) -> None:
        self.error_files = error_files
        self.processes = processes
        self.sentinels = {p.sentinel: index for index, p in enumerate(processes)}

    def pids(self) -> list[int]:
        """The children's process ids, in rank order."""
        return [int(p.pid) for p in self.processes]

    def _join_all(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        for p in self.processes:
            p.join(max(0.0, end - time.monotonic()))

    def join(self, timeout: float | None = None, grace_period: float | None = None) -> bool:
        """Wait for children (up to ``timeout`` s); True once all have exited cleanly.

        When one exits with a non-zero status, the others get ``grace_period`` seconds,
        then SIGTERM, then (30 s or ``grace_period`` later) SIGKILL, and the first failure
        is raised as :class:`ProcessRaisedException` or :class:`ProcessExitedException`.
        """
        if not self.sentinels:
            return True
        ready = multiprocessing.connection.wait(list(self.sentinels), timeout=timeout)
        error_index = None
        for sentinel in ready:
            index = self.sentinels.pop(sentinel)
            self.processes[index].join()
            if self.processes[index].exitcode != 0:
                error_index = index
                break
        if error_index is None:
            return not self.sentinels
        self._stop_the_others(grace_period)
        self._raise(error_index)
        return False  # pragma: no cover - _raise always raises

    def _stop_the_others(self, grace_period: float | None) -> None:
        if grace_period is not None:
            self._join_all(grace_period)
        for p in self.processes:
            if p.is_alive():
                log.warning("Terminating process %s via signal SIGTERM", p.pid)
                p.terminate()
        self._join_all(30 if grace_period is None else grace_period)
        for p in self.processes:
            if p.is_alive():
                log.warning("Process %s ignored SIGTERM; killing it with SIGKILL", p.pid)
                p.kill()
            p.join()

    def _raise(self, error_index: int) -> None:
        failed = self.processes[error_index]
        try:
            with open(self.error_files[error_index], encoding="utf-8") as fh:
                original_trace = fh.read()
        except OSError:
            code = failed.exitcode
            if code < 0:
                try:
                    name = signal.Signals(-code).name
                except ValueError:
                    name = f"<Unknown signal {-code}>"
                raise ProcessExitedException(
                    f"process {error_index} terminated with signal {name}",
                    error_index,
                    failed.pid,
                    code,
                    name,
                ) from None
            raise ProcessExitedException(
                f"process {error_index} terminated with exit code {code}",
                error_index,
                failed.pid,
                code,
            ) from None
        finally:
            self._remove_error_files()
        msg = f"\n\n-- Process {error_index} terminated with the following error:\n"
        raise ProcessRaisedException(msg + original_trace, error_index, failed.pid)

    def _remove_error_files(self) -> None:
        for path in self.error_files:
            if os.path.exists(path):
                os.remove(path)


def _error_file() -> str:
    """A fresh path for a child's traceback (the child creates the file only on failure)."""
    fd, path = tempfile.mkstemp(prefix="sparkgrad-errorfile-", suffix=".txt")
    os.close(fd)
    os.unlink(path)
    return path


def start_processes(
    fn: Callable[..., Any],
    args: tuple = (),
    nprocs: int = 1,
    join: bool = True,
    daemon: bool = False,
    start_method: str = "spawn",
) -> ProcessContext | None:
    """:func:`spawn` with any ``multiprocessing`` start method (``fork``, ``forkserver``)."""
    ctx = multiprocessing.get_context(start_method)
    env = job_secret_env()
    error_files, processes = [], []
    for i in range(nprocs):
        error_files.append(_error_file())
        p = ctx.Process(target=_wrap, args=(fn, i, args, error_files[-1], env), daemon=daemon)
        p.start()
        processes.append(p)
    context = ProcessContext(processes, error_files)
    if not join:
        return context
    while not context.join():
        pass
    return None


def spawn(
    fn: Callable[..., Any],
    args: tuple = (),
    nprocs: int = 1,
    join: bool = True,
    daemon: bool = False,
    start_method: str = "spawn",
) -> ProcessContext | None:
    """Start ``nprocs`` processes running ``fn(i, *args)``; wait for them if ``join``.

    Returns None once every child has finished (``join=True``), or a
    :class:`ProcessContext` (``join=False``). The return values of ``fn`` are dropped, as
    in PyTorch: write results to files (``sg.save``) or use a ``Queue``. Only the
    ``"spawn"`` start method is used here (another gives PyTorch's FutureWarning); use
    :func:`start_processes` for others.
    """
    if start_method != "spawn":
        warnings.warn(
            f"This method only supports start_method=spawn (got: {start_method}).\n"
            "To use a different start_method use:\n\t\t"
            " sparkgrad.multiprocessing.start_processes(...)",
            FutureWarning,
            stacklevel=2,
        )
    return start_processes(fn, args, nprocs, join, daemon, start_method="spawn")


class Process(multiprocessing.Process):
    """``multiprocessing.Process`` that also carries the job secret to the child.

    It starts with the start method set by :func:`set_start_method` (as the stdlib class
    does). A ``Process`` from ``get_context(...).Process`` does not carry the secret: use
    this class or :func:`spawn`, or set ``SPARKGRAD_SECRET`` before starting children.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sparkgrad_env = job_secret_env()

    def run(self) -> None:
        os.environ.update(self._sparkgrad_env)
        super().run()
