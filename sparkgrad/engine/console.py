"""``print_error(line)``: the CLI's one error line, on the stderr the user sees.

Under ``python main.py`` that is this process's stderr. Under ``spark-submit main.py`` it
is not: spark-submit starts the Python driver as a child of its JVM with the child's
stderr merged into its stdout (``redirectErrorStream`` in Spark's ``PythonRunner``), so
everything Python prints to stderr comes out on spark-submit's *stdout*, and a script
that reads ``2>errors.txt`` finds nothing there. The JVM's own ``System.err`` is still
spark-submit's stderr, and the driver talks to that JVM anyway (Py4J, reached through
the ``PYSPARK_GATEWAY_PORT`` spark-submit sets), so the line is printed there.

If the JVM cannot be reached (it is gone, or pyspark is not importable) the line goes to
this process's stderr: printed once, somewhere, is better than lost.
"""

from __future__ import annotations

import os
import sys


def _jvm_stderr() -> object | None:
    """``java.lang.System.err`` of spark-submit's JVM, or None outside spark-submit."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # set by spark-submit for Python apps
        return None
    try:
        from pyspark import SparkContext

        SparkContext._ensure_initialized()  # connects to spark-submit's JVM (no new one)
        return SparkContext._jvm.java.lang.System.err
    except Exception:  # noqa: BLE001 - any failure here means: use our own stderr
        return None


def print_error(line: str) -> None:
    """Print ``line`` (one line, no newline in it) where the user's stderr is."""
    line = " ".join(line.splitlines())  # one line, whatever the message held
    err = _jvm_stderr()
    if err is not None:
        try:
            err.println(line)
            err.flush()
            return
        except Exception:  # noqa: BLE001 - the gateway went away: fall back
            pass
    print(line, file=sys.stderr, flush=True)
