"""Host memory: keep freed arrays' pages for the next array, as a caching allocator does.

A training step allocates and frees the same few hundred arrays every step. NumPy asks
the C library (glibc's ``malloc``) for each one. glibc serves a *large* request (more than
its ``mmap`` threshold, 128 KiB to start with) with a fresh ``mmap`` and gives it back to
the kernel with ``munmap`` on free, so every new activation or gradient of the default
GPT (2048 x 256 float32 = 2 MiB) costs ~500 page faults while the kernel zeroes its pages
-- in a 30 ms step that is several milliseconds of nothing but bookkeeping. PyTorch keeps
a caching allocator for CUDA for the same reason; CuPy has its memory pool.

:func:`keep_freed_memory` asks glibc (``mallopt``) to serve requests up to 32 MiB from
its heap and to keep up to 512 MiB of freed heap instead of trimming it: the pages of
one step's arrays are reused by the next step's. Nothing is computed differently; only
where the bytes come from. ``import sparkgrad`` calls it once on Linux with glibc; set
``SPARKGRAD_SYSTEM_MALLOC=1`` to keep the C library's defaults. It is process-wide, so a
PyTorch model in the same process (the benchmarks) gets the same allocator behaviour.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h> parameter numbers
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 512 << 20


def keep_freed_memory() -> bool:
    """Tell glibc to reuse freed pages (see the module docstring); False where it cannot."""
    if not sys.platform.startswith("linux") or os.environ.get("SPARKGRAD_SYSTEM_MALLOC") == "1":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
