"""The SparkSession a run uses, and the checks that a barrier stage can start on it.

:func:`local_session` returns the active session if there is one (a notebook, a test
fixture, ``spark-submit``), otherwise builds one: on the master given by ``spark-submit
--master`` when there is one, else on ``master`` (``local[2]`` by default). Local masters
get settings that make a laptop run just work:

- the Python workers run this very interpreter (``PYSPARK_PYTHON`` and
  ``spark.pyspark.python`` = ``sys.executable``), so they see the same packages;
- the driver binds to 127.0.0.1 (``SPARK_LOCAL_IP``), so nothing listens beyond loopback;
- no web UI, and dynamic allocation off.

Every master gets ``spark.barrier.sync.timeout`` = 300 s instead of Spark's default of a
year (a rank that never reaches the rendezvous fails the stage instead of hanging it) and
no console progress bar (it would garble the ranks' log lines), unless ``spark-submit
--conf`` says otherwise.

Two helpers keep the console readable when things go wrong (``main.py`` uses them):
:func:`quiet_task_failures` silences Spark's per-task copies of a failing rank's traceback
(the runner reports each failure itself, in one line), and :func:`stop_quietly` ends the
session after Ctrl-C with nothing printed: Spark's logging off, the context stopped, and
the JVM that PySpark started waited for, so no process outlives ``main.py``.

:func:`check_barrier_capacity` runs before every launch. A barrier stage needs one free
task slot per rank *at the same time*; asked for more than the cluster has, Spark keeps
retrying for minutes before it gives up. We count the slots from the master URL
(``local[N]``, ``local[N,F]``, ``local[*]``, ``local-cluster[E,C,M]``) or, on a real
cluster, from the executors' cores, divide by ``spark.task.cpus``, and fail at once.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from sparkgrad.errors import ConfigError

BARRIER_SYNC_TIMEOUT = "300s"
_LOCAL = re.compile(r"local(?:\[(\*|\d+)(?:\s*,\s*(\d+))?\])?$")
_CLUSTER = re.compile(r"local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]$")


def is_local_master(master: str) -> bool:
    """True for ``local``, ``local[...]`` and ``local-cluster[...]``: all on this machine."""
    return master.startswith("local")


def _submitted_conf() -> Any:
    """The settings ``spark-submit`` gave this driver (a SparkConf), or None outside it."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # set by spark-submit for Python apps
        return None
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connects to spark-submit's JVM
    return SparkConf()  # loads the JVM's spark.* properties: --master, --conf, ...


def local_session(master: str | None = None, app_name: str = "sparkgrad", **conf: str) -> Any:
    """The active SparkSession, or a new one (see the module docstring).

    ``conf`` adds Spark settings, e.g. ``local_session("local[4]", **{"spark.task.cpus":
    "1"})``. A master from ``spark-submit`` wins over ``master``, and a setting given to
    ``spark-submit --conf`` wins over our defaults.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    submitted = _submitted_conf()
    given = submitted.get("spark.master", None) if submitted is not None else None
    chosen = given or master or "local[2]"
    defaults = {
        "spark.barrier.sync.timeout": BARRIER_SYNC_TIMEOUT,
        "spark.ui.showConsoleProgress": "false",  # it would garble the ranks' log lines
    }
    if is_local_master(chosen):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        defaults.update(
            {
                "spark.pyspark.python": os.environ["PYSPARK_PYTHON"],
                "spark.driver.host": "127.0.0.1",
                "spark.driver.bindAddress": "127.0.0.1",
                "spark.ui.enabled": "false",
                "spark.dynamicAllocation.enabled": "false",
            }
        )
    if submitted is not None:
        defaults = {k: v for k, v in defaults.items() if not submitted.contains(k)}
    builder = SparkSession.builder.appName(app_name).master(chosen)
    for key, value in {**defaults, **conf}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


#: The JVM loggers that print every failed task's whole traceback (executor, scheduler).
TASK_FAILURE_LOGGERS = (
    "org.apache.spark.executor.Executor",
    "org.apache.spark.scheduler.TaskSetManager",
)


def _set_jvm_log_level(sc: Any, names: tuple[str, ...], level: str) -> None:
    jvm = sc._jvm
    value = jvm.org.apache.logging.log4j.Level.toLevel(level)
    for name in names:
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(name, value)


def quiet_task_failures(sc: Any) -> None:
    """Turn off the JVM loggers of :data:`TASK_FAILURE_LOGGERS` (best effort)."""
    try:
        _set_jvm_log_level(sc, TASK_FAILURE_LOGGERS, "OFF")
    except Exception:  # noqa: BLE001 - another logging backend: keep Spark's logs then
        pass


def quiet_spark_logs(sc: Any) -> None:
    """All of Spark's logging off (the JVM is about to end the job, or itself)."""
    try:
        sc.setLogLevel("OFF")
    except Exception:  # noqa: BLE001 - the JVM may be gone already
        pass


def stop_quietly(timeout: float = 20.0) -> None:
    """Stop the active SparkContext without a line of output, and wait for PySpark's JVM.

    For the end of a process (after Ctrl-C): logging off, ``sc.stop()`` (its executors
    and Python workers end), then the JVM PySpark launched is told to exit (its stdin
    closes, as when Python exits) and awaited, at most ``timeout`` seconds. Under
    ``spark-submit`` the JVM is spark-submit itself, our parent: it is left alone.
    """
    import sys

    if "pyspark" not in sys.modules:
        return  # Spark never started in this process
    from pyspark import SparkContext

    sc = SparkContext._active_spark_context
    if sc is not None:
        quiet_spark_logs(sc)
        try:
            sc.stop()
        except Exception:  # noqa: BLE001 - stopping a broken context: nothing to report
            pass
    proc = getattr(SparkContext._gateway, "proc", None)
    if proc is None:
        return
    try:
        SparkContext._gateway.shutdown()
    except Exception:  # noqa: BLE001
        pass
    try:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout)
    except Exception:  # noqa: BLE001 - it outlived the wait: kill it rather than orphan it
        proc.kill()


def _task_cpus(conf: Any) -> int:
    text = conf.get("spark.task.cpus", "1")
    if not str(text).isdigit() or int(text) < 1:
        raise ConfigError(f"expected spark.task.cpus to be a positive integer, found {text!r}")
    return int(text)


def task_slots(master: str, conf: Any, default_parallelism: int) -> tuple[int, str]:
    """``(slots, how)``: how many tasks can run at once, and a phrase saying why.

    ``conf`` is a ``SparkConf``-like object (``get(key, default)``). A pure function of
    the master URL and the settings, so it is tested without starting Spark.
    """
    cpus = _task_cpus(conf)
    local = _LOCAL.match(master)
    if local:
        n = local.group(1) or "1"
        cores = (os.cpu_count() or 1) if n == "*" else int(n)
        return cores // cpus, f"{master} has {cores} cores"
    cluster = _CLUSTER.match(master)
    if cluster:
        executors, cores = int(cluster.group(1)), int(cluster.group(2))
        slots = executors * (cores // cpus)
        return slots, f"{master} has {executors} executors x {cores} cores"
    instances, cores = (
        conf.get("spark.executor.instances", ""),
        conf.get("spark.executor.cores", ""),
    )
    if str(instances).isdigit() and str(cores).isdigit():
        slots = int(instances) * (int(cores) // cpus)
        return slots, f"{instances} executors x {cores} cores"
    return default_parallelism // cpus, f"the cluster reports {default_parallelism} cores"


def check_barrier_capacity(spark: Any, world_size: int) -> None:
    """Raise :class:`ConfigError` unless a barrier stage of ``world_size`` tasks can start."""
    sc = spark.sparkContext
    conf = sc.getConf()
    if world_size < 1:
        raise ConfigError(f"expected a world size >= 1, found {world_size}")
    if str(conf.get("spark.dynamicAllocation.enabled", "false")).lower() == "true":
        raise ConfigError(
            "Spark barrier stages need a fixed set of executors, found "
            "spark.dynamicAllocation.enabled=true; set it to false (--conf "
            "spark.dynamicAllocation.enabled=false)"
        )
    slots, how = task_slots(sc.master, conf, sc.defaultParallelism)
    if slots < world_size:
        cpus = _task_cpus(conf)
        per_task = f" and spark.task.cpus={cpus}" if cpus > 1 else ""
        fix = (
            f"Use --master local[{world_size * cpus}]"
            if is_local_master(sc.master)
            else "Add executors or cores"
        )
        raise ConfigError(
            f"world size {world_size} needs {world_size} task slots; {how}{per_task}, "
            f"so {slots} slots. {fix} or a smaller --world-size"
        )
