"""Output files written whole or not at all: a temporary name first, then a rename.

A reader (or a crash) never sees half a report: ``os.replace`` swaps the finished file in.
PNGs go through :func:`sparkgrad.benchmark.report.plots.save`, which does the same.
"""

from __future__ import annotations

import os


def write_text(path: str, text: str) -> str:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
