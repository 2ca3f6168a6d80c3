"""How many threads sparkgrad's matrix products may use: PyTorch's ``set_num_threads``.

A NumPy ufunc runs on one core; NumPy's BLAS (every ``@``) may run on several. PyTorch has
one knob for its intra-op threads, ``torch.set_num_threads``; sparkgrad has the same one,
so that "n threads" means the same for both engines in a benchmark:

- the default is ``OMP_NUM_THREADS`` when set (PyTorch and OpenBLAS read it too), else
  the number of cores this process may run on;
- :func:`set_num_threads` limits NumPy's (and SciPy's) BLAS pools through
  ``threadpoolctl`` when it is installed.
"""

from __future__ import annotations

import os

from sparkgrad.errors import ConfigError


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _default_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return usable_cores()


_num_threads = _default_threads()


def get_num_threads() -> int:
    """Threads sparkgrad's matrix products may use (see :func:`set_num_threads`)."""
    return _num_threads


def set_num_threads(n: int) -> None:
    """Let NumPy's BLAS use ``n`` threads (through threadpoolctl, when installed)."""
    global _num_threads
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"set_num_threads expects a positive int, found {n!r}")
    _num_threads = n
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it NumPy's BLAS keeps its own setting
        return
    threadpool_limits(n, user_api="blas")
