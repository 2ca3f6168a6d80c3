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

:func:`silence_py4j` keeps py4j's own reports off the console: when a Ctrl-C or a
stopping JVM breaks a call in flight, py4j logs the broken call with its traceback on
Python's *root* logger (``logging.exception``, ~40 lines each) before the error reaches
us, and the CLI says what happened in one line anyway.
"""

from __future__ import annotations

import logging
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


class _NotFromPy4J(logging.Filter):
    """Drops records that py4j's modules log (on the root logger, by ``logging.exception``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "py4j" not in os.path.normpath(record.pathname).split(os.sep)


def silence_py4j() -> None:
    """No py4j log record reaches the console (see the module docstring); idempotent."""
    logging.getLogger("py4j").setLevel(logging.CRITICAL + 1)
    root = logging.getLogger()
    if not any(isinstance(f, _NotFromPy4J) for f in root.filters):
        root.addFilter(_NotFromPy4J())
