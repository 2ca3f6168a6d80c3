"""Start one real process per rank on 127.0.0.1 and wait for them: the benchmarks' launcher.

The collectives benchmark (:mod:`.collectives`) and the simulator's TCP validation
(:mod:`sparkgrad.simulate.local_worker`) both run ``python -m <worker> --rank r ...`` once
per rank. Every child gets the same fresh random job secret (the TCP transport refuses
connections without one), ``SPARK_LOCAL_IP=127.0.0.1`` and one OpenMP/BLAS thread (a rank
is one core's worth of work, as in a Spark task). Results come back as JSON files the
children write; nothing is pickled.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from sparkgrad.errors import CommError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The children's environment: this one, loopback, one thread, a fresh job secret."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "OMP_NUM_THREADS": "1"}
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["SPARKGRAD_SECRET"] = secrets.token_hex(32)  # random per job (TCP)
    return {**env, **(extra or {})}


def run_ranks(
    module: str,
    args_of_rank: Sequence[Sequence[str]],
    what: str,
    timeout: float = 300.0,
    env: dict[str, str] | None = None,
) -> None:
    """``python -m module *args_of_rank[r]`` for every rank r, all at once; wait.

    Raises :class:`~sparkgrad.errors.CommError` naming the ranks that exited non-zero
    or ran past ``timeout`` seconds, with the tail of each one's output.
    """
    env = env or rank_env()
    with tempfile.TemporaryDirectory(prefix="sg-ranks-") as tmp:
        procs, logs = [], []
        for rank, args in enumerate(args_of_rank):
            log = open(os.path.join(tmp, f"rank{rank}.log"), "w+", encoding="utf-8")  # noqa: SIM115
            cmd = [sys.executable, "-m", module, *args]
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=log))
            logs.append(log)
        deadline = time.monotonic() + timeout
        try:
            for p in procs:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        failed = [r for r, p in enumerate(procs) if p.returncode != 0]
        tails = []
        for rank, log in enumerate(logs):
            log.seek(0)
            if rank in failed:
                tails.append(f"rank {rank}: " + log.read()[-600:].strip())
            log.close()
        if failed:
            raise CommError(
                f"{what} with {len(procs)} ranks failed (ranks {failed} exited non-zero or "
                f"timed out after {timeout:.0f} s):\n" + "\n".join(tails)
            )
