"""Spark fixtures for the engine tests: one session per master, stopped after its module.

A JVM hosts one SparkContext at a time, so sessions on different masters cannot coexist:
each fixture stops a session left on another master, starts its own (~5 s; ~15 s for
``local-cluster``) and stops it when the module's tests are done.

A test module whose rank functions run on Spark calls
``cloudpickle.register_pickle_by_value(sys.modules[__name__])``: the Spark workers cannot
import a test module by name, so its functions must travel by value.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # loopback only


def _session(master: str, **conf: str) -> Iterator[Any]:
    from pyspark.sql import SparkSession

    from sparkgrad.engine.spark_session import local_session

    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master != master:
        active.stop()
    spark = local_session(master, app_name="sparkgrad-tests", **conf)
    assert spark.sparkContext.master == master
    yield spark
    spark.stop()


@pytest.fixture(scope="module")
def spark_local() -> Iterator[Any]:
    """``local[2,2]``: 2 task slots; a failed barrier stage runs at most twice.

    ``F = 2`` in ``local[N,F]`` lets a task fail without aborting the job at once, so Spark
    reruns the barrier stage; ``spark.stage.maxConsecutiveAttempts`` caps the reruns.
    """
    yield from _session("local[2,2]", **{"spark.stage.maxConsecutiveAttempts": "2"})


@pytest.fixture(scope="module")
def spark_cluster() -> Iterator[Any]:
    """``local-cluster[2,1,1024]``: 2 executor JVMs with 1 core each: ranks in 2 processes."""
    yield from _session("local-cluster[2,1,1024]")
