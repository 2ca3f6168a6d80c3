"""Run ``main.py`` as a user would, in a subprocess, with no Spark to be found.

``SPARK_HOME`` points nowhere, so a run that reaches Spark fails loudly: what the tests
call through here must be decided on the driver (or run ``--strategy single``).
"""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main_no_spark(*args: str, cwd: str = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python main.py --no-progress ARGS``; stdout and stderr captured as text."""
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", SPARK_HOME="/nonexistent-spark-home")
    env.pop("PYSPARK_GATEWAY_PORT", None)
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "main.py"), "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )
