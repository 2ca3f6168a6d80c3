"""SparkRunner on a real local Spark (``local[2,2]``): the launcher every strategy runs under.

What the tests show, one per test:
- two Spark tasks find each other and all_reduce real bytes over TCP;
- a return value far bigger than one Spark record (20 MB) comes back intact, in chunks;
- what the ranks log and print shows up on the driver;
- an error inside a rank reaches the driver as one short error naming the rank;
- a failed barrier stage is rerun as a whole, and the rerun knows it is one;
- the error the driver raises is the root cause (rank 0's own error), not the timeout it
  caused on rank 1, although Spark's final error text is rank 1's;
- an error no retry can fix (a ConfigError, a permission error) fails the stage once;
- asking for more ranks than task slots fails at once instead of hanging.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest
from pyspark import BarrierTaskContext, cloudpickle

import sparkgrad.distributed as dist
from sparkgrad.engine.spark_runner import RankError, SparkRunner
from sparkgrad.errors import CollectiveTimeout, ConfigError, DataFormatError

pytestmark = pytest.mark.slow
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import tests

BASE = np.arange(-6, 6, dtype=np.float32).reshape(3, 4)  # small integers: exact sums


def reduce_known_array(ctx):
    """Rank r contributes BASE * (r + 1); rank 0 returns what every rank ended up with."""
    mine = BASE * (ctx.rank + 1)
    dist.all_reduce(mine)  # the torch-shaped API on the default group
    doubled = np.full(5, ctx.rank, dtype=np.int64)
    ctx.pg.all_reduce(doubled)  # the array-level process group
    everyone = ctx.pg.all_gather(mine)  # row r: what rank r holds after the all_reduce
    if ctx.rank == 0:
        return {"everyone": everyone, "ints": doubled, "world_size": ctx.world_size}
    return None


def test_two_ranks_all_reduce_over_tcp(spark_local):
    out = SparkRunner(spark_local, world_size=2, timeout=60).run(reduce_known_array)
    expected = BASE * 1 + BASE * 2  # computed here, independently of the runner
    assert out["world_size"] == 2
    assert out["everyone"].shape == (2, 3, 4)
    np.testing.assert_array_equal(out["everyone"][0], expected)
    np.testing.assert_array_equal(out["everyone"][1], expected)
    np.testing.assert_array_equal(out["ints"], np.full(5, 0 + 1, dtype=np.int64))


def big_state(seed):
    """~20 MB of arrays of several dtypes, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return {
        "0.weight": rng.standard_normal((2048, 2048), dtype=np.float32),  # 16 MiB
        "0.bias": rng.standard_normal(2048).astype(np.float64),
        "steps": rng.integers(0, 1 << 40, size=(500_000,), dtype=np.int64),  # 4 MB
        "mask": rng.random(1000) < 0.5,
    }


def return_big(ctx, seed):
    if ctx.rank == 0:
        return {"state": big_state(seed), "epoch": 3, "acc": 0.915, "tags": ("dp", 2)}
    return None


def test_large_return_value_comes_back_in_chunks(spark_local):
    runner = SparkRunner(spark_local, world_size=2, chunk_bytes=1 << 20)  # 1 MiB records
    out = runner.run(return_big, 7)
    expected = big_state(7)
    assert sum(a.nbytes for a in expected.values()) > 20e6
    assert (out["epoch"], out["acc"], out["tags"]) == (3, 0.915, ("dp", 2))
    assert out["state"].keys() == expected.keys()
    for key, array in expected.items():
        assert out["state"][key].dtype == array.dtype, key
        np.testing.assert_array_equal(out["state"][key], array, err_msg=key)


def chatty(ctx):
    for step in range(3):
        ctx.log.info("step %d of rank %d", step, ctx.rank)
    print(f"printed by rank {ctx.rank}")
    return None


def test_rank_log_lines_reach_the_driver(spark_local):
    lines = []
    SparkRunner(spark_local, world_size=2, log_sink=lambda r, s: lines.append((r, s))).run(chatty)
    for rank in (0, 1):
        mine = [s for r, s in lines if r == rank]
        assert mine[:3] == [f"step {i} of rank {rank}" for i in range(3)]
        assert f"printed by rank {rank}" in mine


def fail_on_rank_one(ctx, error):
    if ctx.rank == 1:
        raise error
    return "rank 0 was fine"


def test_error_in_a_rank_names_the_rank_and_message(spark_local):
    runner = SparkRunner(spark_local, world_size=2, log_sink=lambda r, s: None)
    with pytest.raises(RankError) as info:
        runner.run(fail_on_rank_one, ValueError("loss became nan at step 12"))
    message = str(info.value)
    assert "rank 1" in message and "ValueError: loss became nan at step 12" in message
    assert "org.apache" not in message and len(message) < 400
    # a sparkgrad error keeps its class, so the CLI can treat it as such
    with pytest.raises(DataFormatError, match="rank 1 .*bad label 11"):
        runner.run(fail_on_rank_one, DataFormatError("bad label 11"))


def crash_on_first_attempt(ctx):
    ctx.log.info("attempt %d starts", ctx.attempt)
    if ctx.attempt == 0 and ctx.rank == 1:
        raise RuntimeError("injected crash")
    total = np.array([ctx.rank + 10.0])
    dist.all_reduce(total)
    spark_says = BarrierTaskContext.get().attemptNumber()  # restarts at 0 in a rerun stage
    return {"attempt": ctx.attempt, "total": total, "spark": spark_says} if ctx.rank == 0 else None


def test_failed_stage_is_retried_as_a_whole(spark_local):
    lines = []
    runner = SparkRunner(spark_local, world_size=2, log_sink=lambda r, s: lines.append((r, s)))
    out = runner.run(crash_on_first_attempt)
    assert out["attempt"] == 1  # the second run of the stage succeeded
    assert out["spark"] == 0  # why the runner counts attempts itself
    np.testing.assert_array_equal(out["total"], [10.0 + 11.0])
    assert (1, "attempt 0 starts") in lines  # rank 1 ran (and crashed) on attempt 0
    assert (0, "[attempt 1] attempt 1 starts") in lines
    assert (1, "[attempt 1] attempt 1 starts") in lines


def never_runs(ctx):
    raise AssertionError("no task may start when the slot check fails")


def test_world_size_above_task_slots_fails_before_launch(spark_local):
    runner = SparkRunner(spark_local, world_size=4)
    with pytest.raises(ConfigError, match=r"world size 4 needs 4 task slots; local\[2,2\] has 2"):
        runner.run(never_runs)
    assert spark_local.sparkContext.statusTracker().getActiveJobsIds() == []


def rank_zero_fails_while_rank_one_waits(ctx, error):
    ctx.log.info("attempt %d starts", ctx.attempt)
    if ctx.rank == 0:
        time.sleep(0.5)  # rank 1 is inside the all_reduce by now
        raise error
    dist.all_reduce(np.ones(3))  # rank 1 fails here: rank 0 is gone
    return None


def test_the_root_cause_is_reported_not_the_timeout_it_caused(spark_local):
    """Issue 17.4: before, the driver said 'rank 1 failed ... CollectiveTimeout ... rank 0
    is gone'. Both attempts fail the same way (a ValueError is retried)."""
    lines = []
    runner = SparkRunner(spark_local, world_size=2, log_sink=lambda r, s: lines.append((r, s)))
    with pytest.raises(RankError) as info:
        runner.run(rank_zero_fails_while_rank_one_waits, ValueError("rank 0's own error"))
    message = str(info.value)
    assert message.startswith("rank 0 failed on attempt 1 with ValueError: rank 0's own error")
    assert not isinstance(info.value, CollectiveTimeout) and "is gone" not in message
    assert (0, "[attempt 1] attempt 1 starts") in lines  # it was retried


@pytest.mark.parametrize(
    "error, cls, needle",
    [
        (ConfigError("--data: the split is empty"), ConfigError, "ConfigError: --data"),
        (
            PermissionError(13, "Permission denied", "/ckpt/step-000005"),
            RankError,
            "PermissionError: [Errno 13] Permission denied: '/ckpt/step-000005'",
        ),
        (OSError(30, "Read-only file system", "/ckpt"), RankError, "[Errno 30] Read-only"),
    ],
    ids=["ConfigError", "EACCES", "EROFS"],
)
def test_an_error_no_retry_can_fix_fails_the_stage_once(spark_local, error, cls, needle):
    lines = []
    runner = SparkRunner(spark_local, world_size=2, log_sink=lambda r, s: lines.append((r, s)))
    with pytest.raises(cls) as info:
        runner.run(rank_zero_fails_while_rank_one_waits, error)
    assert str(info.value).startswith("rank 0 failed on attempt 0 with"), str(info.value)
    assert needle in str(info.value)
    assert (0, "attempt 0 starts") in lines
    assert not [line for _, line in lines if "attempt 1" in line], lines  # never rerun
    assert spark_local.sparkContext.statusTracker().getActiveJobsIds() == []
