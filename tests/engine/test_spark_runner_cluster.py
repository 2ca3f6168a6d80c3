"""SparkRunner on ``local-cluster[2,1,1024]``: two executor JVMs, as on a real cluster.

What it shows: each rank is its own process (here even under its own executor JVM), and the
collectives still connect them: the ranks sit on different executors, report different
process ids, neither is the driver's, and their all_reduce gives the exact sum.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from pyspark import BarrierTaskContext, cloudpickle

import sparkgrad.distributed as dist
from sparkgrad.engine.spark_runner import SparkRunner

pytestmark = pytest.mark.slow
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import tests


def pids_and_sum(ctx):
    pids = np.array([os.getpid()], dtype=np.int64)
    everyone = ctx.pg.all_gather(pids).reshape(-1)
    value = np.array([2.0**ctx.rank], dtype=np.float64)
    dist.all_reduce(value)
    executors = [t.address for t in BarrierTaskContext.get().getTaskInfos()]  # rank order
    return {"pids": everyone, "sum": value, "executors": executors} if ctx.rank == 0 else None


def test_ranks_run_in_different_processes(spark_cluster):
    out = SparkRunner(spark_cluster, world_size=2, timeout=60).run(pids_and_sum)
    first, second = out["pids"].tolist()
    assert first != second
    assert os.getpid() not in (first, second)
    np.testing.assert_array_equal(out["sum"], [1.0 + 2.0])
    assert len(set(out["executors"])) == 2  # in local[2] both tasks share one executor
