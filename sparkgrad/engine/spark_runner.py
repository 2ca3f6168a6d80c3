"""``SparkRunner``: run one function on ``world_size`` Spark tasks, one task per rank.

This is how every parallel strategy gets its processes, in the spirit of pyspark's
``TorchDistributor``::

    def train(ctx, lr):                      # runs on every rank, in a Spark task
        ctx.log.info("rank %d of %d", ctx.rank, ctx.world_size)
        grads = np.ones(3, np.float32)
        dist.all_reduce(grads)               # real bytes over real sockets
        return {"weights": grads} if ctx.rank == 0 else None

    weights = SparkRunner(spark, world_size=2).run(train, 0.01)["weights"]

What happens in :meth:`SparkRunner.run`:

1. *Driver*: check that the cluster has ``world_size`` free task slots and no dynamic
   allocation (:mod:`sparkgrad.engine.spark_session`); make a per-job secret
   (``secrets.token_bytes``), which travels to the tasks inside the function's closure
   and is never logged; open the :class:`~sparkgrad.engine.task_logging.LogServer`.
2. *Spark*: a **barrier** stage, ``rdd.barrier().mapPartitions(...)``, starts all
   ``world_size`` tasks together (or none), and partition ``i`` is rank ``i``.
3. *Each task*: listen on a port, exchange ``host:port`` through
   ``BarrierTaskContext.allGather`` and connect to every peer with HMAC-authenticated
   sockets (:func:`~sparkgrad.comms.rendezvous.spark_rendezvous`); that transport becomes
   the default ``sparkgrad.distributed`` group; then ``fn(ctx, *args)`` runs with a
   :class:`RankContext`, its ``ctx.log`` lines and ``print`` output streaming to the driver.
4. *Rank 0* encodes its return value without pickle (safetensors + JSON,
   :mod:`sparkgrad.engine.result_payload`) and yields it as chunks of a few MiB; the
   driver joins them, checks length and SHA-256, and decodes. Other ranks return nothing.

Data for the ranks (``run(fn, inputs=...)``): by default the stage runs over a dummy RDD of
``world_size`` partitions and every rank reads its own data. ``inputs`` hands each rank
its partition instead, so no row passes through the driver:

- an **RDD** with ``world_size`` partitions (e.g. :func:`sparkgrad.dataset.shard_uri`):
  the stage is ``rdd.barrier().mapPartitions(...)``; ``ctx.records`` is partition ``r``'s
  records as a list;
- a **DataFrame** with ``world_size`` partitions (e.g. ``df.repartition(n, key)``, see
  :mod:`sparkgrad.spark.ml.shards`): the stage is ``df.mapInArrow(..., barrier=True)``;
  ``ctx.records`` is partition ``r``'s rows as one ``pyarrow.Table`` (columnar, no Python
  object per row), and rank 0's result chunks travel back as Arrow rows
  (:data:`RESULT_SCHEMA`). Everything else (rendezvous, secret, logs, failures) is the same.

Failures: a rank that raises fails its task, and the runner never swallows that. In a
barrier stage one failed task fails the whole stage; Spark reruns it as a whole, at most
``spark.stage.maxConsecutiveAttempts`` times (default 4). Every rank then starts again,
and ``ctx.attempt`` (0, then 1, ...) tells it so, e.g. to resume from a checkpoint. The
driver counts the attempts (see :mod:`~sparkgrad.engine.task_logging`): Spark's
``BarrierTaskContext.attemptNumber()`` restarts at 0 in a rerun stage.

- **Which error the user sees.** A failing rank first sends its failure record (rank,
  attempt, class, message, where, time) to the driver over its log connection, then
  raises. One rank's error makes the others fail too (a ``CollectiveTimeout`` or
  ``PeerLost``: "rank 0 is gone"), and Spark's own error text holds just one of them, often
  such a consequence. So the driver picks the root cause from every record of the last
  attempt: the first by time that is not a consequence (:data:`CONSEQUENCES`), else the
  first. It raises one short error naming the rank and the original message, not a
  200-line Java trace: the same class when it was a :mod:`sparkgrad.errors` class (a
  ``ConfigError`` stays a ``ConfigError``), :class:`RankError` otherwise.
- **Errors no retry can fix** (:func:`is_permanent`: a wrong configuration, bad data, a
  damaged checkpoint, a diverged loss, a missing device, a permission or read-only file
  system error) are not retried: on such a record the driver stops the ranks and cancels
  the job, so the stage fails once and the error is raised at once.
- **Ctrl-C** while the job runs: the runner (not PySpark's handler, whose py4j call from
  inside the signal handler breaks the connection it interrupts and prints pages of py4j
  tracebacks) stops the ranks (``STOP`` down the log connections: each rank's main thread
  is interrupted and unwinds through its ``finally`` blocks, so no rank trains or logs on),
  cancels the job, and raises ``KeyboardInterrupt``. A second Ctrl-C raises at once.
- ``quiet=True`` (what ``main.py`` uses) silences Spark's own per-task failure logs (the
  executor's and the task scheduler's copies of every traceback): each failure is already
  in a record, and the one line the driver raises names the root cause.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import sparkgrad.distributed as dist
from sparkgrad import errors
from sparkgrad.comms.process_group import ProcessGroup
from sparkgrad.comms.reduce_ops import ReduceOp
from sparkgrad.comms.rendezvous import spark_rendezvous
from sparkgrad.engine import result_payload
from sparkgrad.engine.rank_failures import (  # noqa: F401 - RankError, driver_error: API
    JobWatch,
    RankError,
    driver_error,
    failure,
)
from sparkgrad.engine.spark_session import (
    check_barrier_capacity,
    local_session,
    quiet_task_failures,
)
from sparkgrad.engine.task_logging import (
    LineSender,
    LineWriter,
    LogServer,
    Sink,
    print_sink,
    rank_logger,
    release_logger,
)
from sparkgrad.errors import SparkgradError

ATTEMPT_TAG = 0x7FFF0000  # communicator tag of the attempt agreement, far from new_group's
log = logging.getLogger("sparkgrad.engine")


@dataclass
class RankContext:
    """What a rank function receives as ``ctx``.

    ``group`` is the default ``sparkgrad.distributed`` group (so ``dist.all_reduce(t)``
    works without a ``group=``), ``pg`` its comms ``ProcessGroup`` for array collectives
    (``ctx.pg.all_reduce(arr)``), ``log`` a logger whose lines appear on the driver,
    ``attempt`` how many times the stage ran before (0, then 1, ... after a failed stage
    was rerun; the same on every rank).
    """

    rank: int
    world_size: int
    attempt: int
    group: Any
    log: logging.Logger
    records: Any = None  # this rank's partition of ``run(..., inputs=...)``: list or Arrow table
    # issue 20: ``run(..., service=...)``: where the driver's service (the parameter server)
    # listens, and the job secret that authenticates the ranks to it
    service_address: tuple[str, int] | None = None
    secret: bytes = field(default=b"", repr=False)

    @property
    def pg(self) -> Any:
        """The array-level process group (``ctx.pg.all_reduce(array)``)."""
        return self.group.pg

    @property
    def transport(self) -> Any:
        """The connected TCP transport under the group."""
        return self.group.pg.transport


@dataclass
class _Job:
    """Everything a task needs, shipped to the executors inside the closure."""

    fn: Callable[..., Any]
    args: tuple
    world_size: int
    timeout: float
    log_address: tuple[str, int]
    chunk_bytes: int
    secret: bytes = field(repr=False)
    has_inputs: bool = False
    service_address: tuple[str, int] | None = None  # issue 20: the driver's service
    arrow_schema: Any = None  # inputs is a DataFrame: its partitions' Arrow schema


def _interrupt_main(thread_id: int) -> None:
    """Raise KeyboardInterrupt in the rank's main thread, even inside a blocking wait.

    ``pthread_kill`` delivers a real SIGINT to that thread, so a wait on a lock or a socket
    returns at once (``_thread.interrupt_main`` alone would only be noticed after it).
    PySpark's workers keep Python's default SIGINT handler; where it was replaced, the
    flag is set without a signal.
    """
    import _thread

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.pthread_kill(thread_id, signal.SIGINT)
    else:
        _thread.interrupt_main()


def _run_rank(job: _Job, partition: Iterator[Any]) -> Iterator[tuple]:
    """The body of one barrier task over an RDD: its records are a list (or None)."""
    yield from _rank_body(job, list(partition) if job.has_inputs else None)


#: The rows a DataFrame stage yields: :func:`result_payload.split`'s records as columns.
RESULT_SCHEMA = "kind string, i long, n long, digest string, data binary"


def _run_rank_arrow(job: _Job, batches: Iterator[Any]) -> Iterator[Any]:
    """The body of one ``mapInArrow`` barrier task: this partition's rows as one Arrow table,
    rank 0's result records as Arrow record batches of :data:`RESULT_SCHEMA`."""
    import pyarrow as pa

    batches = list(batches)  # Spark's own Arrow types; the schema only for an empty partition
    table = pa.Table.from_batches(batches) if batches else job.arrow_schema.empty_table()
    for record in _rank_body(job, table):
        kind, i, rest = record[0], int(record[1]), record[2:]
        row = {"kind": kind, "i": i, "n": None, "digest": None, "data": None}
        if kind == "head":
            row.update(n=int(rest[0]), digest=str(rest[1]))
        else:
            row["data"] = rest[0]
        yield pa.RecordBatch.from_pylist([row], schema=_result_arrow_schema())


def _result_arrow_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [("kind", pa.string()), ("i", pa.int64()), ("n", pa.int64()), ("digest", pa.string())]
        + [("data", pa.binary())]
    )


def _result_records(rows: list) -> list[tuple]:
    """Collected :data:`RESULT_SCHEMA` rows back into :func:`result_payload.join`'s tuples."""
    return [
        ("head", r.i, r.n, r.digest) if r.kind == "head" else ("chunk", r.i, bytes(r.data))
        for r in rows
    ]


def _rank_body(job: _Job, records: Any) -> Iterator[tuple]:
    """One barrier task: rendezvous, run ``fn``, yield rank 0's result records."""
    from pyspark import BarrierTaskContext

    context = BarrierTaskContext.get()
    rank = context.partitionId()
    sender = LineSender(job.log_address, job.secret, rank, job.world_size)
    sender.on_stop = functools.partial(_interrupt_main, threading.main_thread().ident)
    attempt = sender.attempt if sender.attempt is not None else context.attemptNumber()
    logger, payload = None, None
    try:
        tasks = len(context.getTaskInfos())
        if tasks != job.world_size:
            raise errors.CommError(
                f"the barrier stage runs {tasks} tasks, expected {job.world_size}: Spark "
                "reran only part of a failed stage (a rank had already finished)"
            )
        transport = spark_rendezvous(context, job.secret, job.timeout)
        attempt = _agreed_attempt(transport, attempt, job.timeout)
        dist.init_process_group("tcp", store=transport, timeout=job.timeout)
        group = dist.state.default_group()
        logger = rank_logger(sender, attempt)
        ctx = RankContext(rank, job.world_size, attempt, group, logger, records)
        ctx.service_address, ctx.secret = job.service_address, job.secret
        writer = LineWriter(sender)
        with contextlib.redirect_stdout(writer):
            value = job.fn(ctx, *job.args)
        writer.flush()
        if rank == 0:
            payload = result_payload.encode(value)
    except Exception as exc:
        record = failure(rank, attempt, exc)
        sender.send(str(record))  # before the peers see this rank go: the driver's first
        raise record from exc
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        if logger is not None:
            release_logger(logger)
        sender.close()
    # Nobody finishes before everybody has: when a barrier stage fails after one task has
    # finished, Spark keeps that task's output and reruns only the others, which then can
    # never meet all their peers. Waiting here makes a failure kill every rank instead.
    context.barrier()
    if payload is not None:
        yield from result_payload.split(payload, job.chunk_bytes)


@contextlib.contextmanager
def _closing(served: Any) -> Iterator[Any]:
    """Close the driver's service (if any) when the job ends, however it ends."""
    try:
        yield served
    finally:
        if served is not None:
            served.close()


def _agreed_attempt(transport: Any, attempt: int, timeout: float) -> int:
    """The highest attempt any rank counted (a rank killed early may have missed a count).

    A one-off group on its own tag, so the default group's call numbers and simulated
    clock start clean.
    """
    counts = np.array([attempt], dtype=np.int64)
    ProcessGroup(transport, tag=ATTEMPT_TAG, timeout=timeout).all_reduce(counts, ReduceOp.MAX)
    return int(counts[0])


class SparkRunner:
    """Launch ``fn(ctx, *args)`` on ``world_size`` Spark barrier tasks; see the module doc.

    ``spark``: a SparkSession (default: :func:`local_session` on ``local[world_size]``,
    which respects an active session and ``spark-submit --master``). ``timeout``: seconds
    for the rendezvous and for each collective. ``log_sink(rank, line)``: where the ranks'
    log lines go on the driver (default: stderr as ``[rank r] line``). ``quiet``: silence
    Spark's per-task failure logs, and all of Spark's logging once interrupted.
    """

    def __init__(
        self,
        spark: Any = None,
        world_size: int = 2,
        timeout: float = 120.0,
        log_sink: Sink = print_sink,
        chunk_bytes: int = result_payload.CHUNK_BYTES,
        quiet: bool = False,
    ) -> None:
        if not isinstance(world_size, int) or world_size < 1:
            raise errors.ConfigError(f"expected a world size >= 1, found {world_size!r}")
        if timeout <= 0 or chunk_bytes < 1:
            raise errors.ConfigError(
                f"expected a positive timeout and chunk size, found {timeout!r}, {chunk_bytes!r}"
            )
        self.spark = spark if spark is not None else local_session(f"local[{world_size}]")
        self.world_size, self.timeout = world_size, float(timeout)
        self.log_sink, self.chunk_bytes = log_sink, chunk_bytes
        self.quiet = quiet

    def run(
        self, fn: Callable[..., Any], *args: Any, inputs: Any = None, service: Any = None
    ) -> Any:
        """Run ``fn(ctx, *args)`` on every rank; return rank 0's return value.

        ``inputs``: an RDD or a DataFrame with ``world_size`` partitions (e.g. the per-rank
        shards of :func:`sparkgrad.dataset.shard_uri`); rank ``r`` finds partition ``r`` in
        ``ctx.records`` (a list, or a ``pyarrow.Table`` for a DataFrame), so a task reads
        only its own shard.
        ``service(secret, bind_host)``: a server to run on the driver for the job's length
        (issue 20: the parameter server); it returns an object with ``address`` and
        ``close()``, the ranks find ``(driver host, its port)`` in ``ctx.service_address``
        and authenticate to it with ``ctx.secret``.
        """
        is_frame = inputs is not None and hasattr(inputs, "mapInArrow")
        if inputs is not None:
            parts = (inputs.rdd if is_frame else inputs).getNumPartitions()
            if parts != self.world_size:
                raise errors.ConfigError(
                    f"inputs has {parts} partitions, expected one per rank ({self.world_size})"
                )
        check_barrier_capacity(self.spark, self.world_size)
        sc = self.spark.sparkContext
        if self.quiet:
            quiet_task_failures(sc)
        conf = sc.getConf()
        driver_host = conf.get("spark.driver.host", "127.0.0.1")
        bind_host = conf.get("spark.driver.bindAddress", driver_host)
        secret = secrets.token_bytes(32)
        tag = f"sparkgrad-{secrets.token_hex(4)}"
        watch = JobWatch(sc, tag, self.log_sink, self.quiet)
        served = service(secret, bind_host) if service is not None else None
        with LogServer(secret, self.world_size, bind_host, watch.sink) as logs, _closing(served):
            watch.logs = logs
            job = _Job(
                fn,
                args,
                self.world_size,
                self.timeout,
                (driver_host, logs.address[1]),
                self.chunk_bytes,
                secret,
                has_inputs=inputs is not None,
                service_address=(driver_host, served.address[1]) if served is not None else None,
            )
            if is_frame:
                from pyspark.sql.pandas.types import to_arrow_schema

                job.arrow_schema = to_arrow_schema(inputs.schema)
                ranks = inputs.mapInArrow(
                    functools.partial(_run_rank_arrow, job), RESULT_SCHEMA, barrier=True
                )
            else:
                rdd = inputs or sc.parallelize(range(self.world_size), self.world_size)
                ranks = rdd.barrier().mapPartitions(functools.partial(_run_rank, job))
            # Spark reruns a failed barrier stage only if it is a map stage (it never
            # reruns a result stage), so the records cross one small shuffle.
            stage = ranks.repartition(1)
            sc.addJobTag(tag)
            failed: BaseException | None = None
            try:
                with watch.on_ctrl_c():
                    records = stage.collect()
            except KeyboardInterrupt:  # a second Ctrl-C, or one outside the main thread
                watch.interrupted.set()
                watch.stop("interrupted")
                raise
            except Exception as exc:
                if isinstance(exc, SparkgradError):
                    raise
                log.debug("the Spark job failed:\n%s", exc)
                failed = exc
            finally:
                sc.removeJobTag(tag)
        # the log readers have ended (or waited their time): every record sent is in
        if watch.interrupted.is_set():
            raise KeyboardInterrupt
        if failed is not None:
            raise driver_error(failed, watch.failures) from None
        if is_frame:
            records = _result_records(records)
        return result_payload.decode(result_payload.join(records))
