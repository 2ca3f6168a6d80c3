"""The SparkRunner's parts, without Spark: result payload, log link, slot count, errors.

What the tests show:
- a return value travels as safetensors + JSON, comes back equal (dtypes, shapes,
  tuples), and damaged bytes are refused, never unpickled;
- the driver's log server only takes lines from holders of the job secret, and counts
  each rank's connections: that count is the attempt number of a rerun stage;
- the task slots of a master URL, and the clear error when a world size does not fit;
- the driver can stop every rank over that link (Ctrl-C, an error no retry can fix);
- Spark's long failure text is boiled down to one line naming the rank, and among the
  records of several failing ranks the root cause wins (first by time, last attempt).
"""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparkgrad as sg
from sparkgrad.comms.auth import AuthError, client_handshake
from sparkgrad.engine import result_payload as rp
from sparkgrad.engine.rank_failures import (
    RankError,
    driver_error,
    is_permanent,
    parse_failures,
    root_cause,
)
from sparkgrad.engine.rank_failures import failure as _failure
from sparkgrad.engine.spark_session import check_barrier_capacity, task_slots
from sparkgrad.engine.task_logging import LineSender, LineWriter, LogServer
from sparkgrad.errors import (
    CheckpointError,
    CollectiveTimeout,
    CommError,
    ConfigError,
    DataFormatError,
    NonFiniteLossError,
)

# -- result payload ---------------------------------------------------------------------------
DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.uint8, np.bool_]


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(0, 5), max_size=3),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**31),
)
def test_arrays_round_trip_exactly(shape, dtype, seed):
    array = np.asarray(np.abs(np.random.default_rng(seed).standard_normal(shape)) * 100).astype(
        dtype
    )
    back = rp.decode(rp.join(list(rp.split(rp.encode({"x": array}), chunk_bytes=7))))
    assert back["x"].dtype == array.dtype and back["x"].shape == array.shape
    np.testing.assert_array_equal(back["x"], array)


def test_nested_values_round_trip():
    weight = np.arange(12, dtype=np.float32).reshape(3, 4).T  # not contiguous
    value = {
        "state": {"0.weight": weight, "0.bias": sg.tensor([1.5, -2.0])},
        "metrics": [{"epoch": 1, "acc": 0.5}, {"epoch": 2, "acc": np.float32(0.75)}],
        "pair": (None, True, "dp"),
        "nothing": None,
    }
    back = rp.decode(rp.encode(value))
    np.testing.assert_array_equal(back["state"]["0.weight"], weight)
    np.testing.assert_array_equal(back["state"]["0.bias"], np.array([1.5, -2.0], np.float32))
    assert back["metrics"] == [{"epoch": 1, "acc": 0.5}, {"epoch": 2, "acc": 0.75}]
    assert back["pair"] == (None, True, "dp") and back["nothing"] is None
    assert rp.decode(rp.encode(None)) is None


@pytest.mark.parametrize(
    "bad",
    [object(), {"x": {1: 2}}, np.array(["a", "b"]), {"__ndarray__": "a0"}, {1.5, 2.5}],
    ids=["object", "int-key", "str-array", "reserved-key", "set"],
)
def test_unsupported_values_are_refused_with_a_clear_error(bad):
    with pytest.raises(ConfigError, match="return value"):
        rp.encode(bad)


def test_damaged_payloads_are_refused():
    payload = rp.encode({"w": np.ones(1000, np.float32), "step": 3})
    records = list(rp.split(payload, chunk_bytes=1024))
    assert len(records) == 1 + -(-len(payload) // 1024)  # a header and the chunks
    assert rp.join(records[::-1]) == payload  # arrival order does not matter
    with pytest.raises(CommError, match="chunks"):
        rp.join(records[:-1])  # a chunk lost
    flipped = records[:2] + [(records[2][0], records[2][1], b"\0" * len(records[2][2]))]
    with pytest.raises(CommError, match="SHA-256"):
        rp.join(flipped + records[3:])
    with pytest.raises(DataFormatError):
        rp.decode(b"SGRV" + payload[4:10])  # truncated
    with pytest.raises(DataFormatError):
        rp.decode(b"PKL!" + payload[4:])  # not our format
    with pytest.raises(DataFormatError, match="corrupt"):
        rp.decode(payload[:-100])  # safetensors part cut short


# -- log link -----------------------------------------------------------------------------------
def test_log_lines_arrive_and_attempts_are_counted():
    secret, lines = b"k" * 32, []
    with LogServer(secret, world_size=2, sink=lambda r, s: lines.append((r, s))) as server:
        first = LineSender(server.address, secret, rank=1, world_size=2)
        first.send("hello")
        LineWriter(first).write("printed\npartial")
        first.close()
        again = LineSender(server.address, secret, rank=1, world_size=2)
        other = LineSender(server.address, secret, rank=0, world_size=2)
        again.close()
        other.close()
    assert lines == [(1, "hello"), (1, "printed")]
    assert (first.attempt, again.attempt, other.attempt) == (0, 1, 0)


def test_idle_and_slow_clients_do_not_hold_the_log_server_or_start_threads():
    """The driver's log server admits connections as every listener does (comms/admission):
    100 silent connections and a client dripping one byte at a time start no thread each;
    each is cut at its handshake deadline (1 s here), so a real rank gets its line through."""
    import threading

    secret, lines = b"s" * 32, []
    sink = lambda r, s: lines.append(s)  # noqa: E731
    with LogServer(secret, world_size=1, sink=sink, handshake_s=1.0) as server:
        threads_before = threading.active_count()
        idle = [socket.create_connection(server.address, timeout=5) for _ in range(100)]
        drip = socket.create_connection(server.address, timeout=5)
        drip.sendall(b"S")  # the first byte of a hello, and nothing more
        rank = LineSender(server.address, secret, rank=0, world_size=1)
        assert rank.attempt == 0  # connected, not logging locally
        rank.send("through")
        rank.close()
        threads_during = threading.active_count()
        for sock in [*idle, drip]:
            sock.close()
    assert lines == ["through"]
    assert threads_during - threads_before <= 2  # at most the one reader of the real rank


def test_log_server_refuses_a_wrong_secret():
    lines = []
    with LogServer(b"right" * 8, world_size=2, sink=lambda r, s: lines.append(s)) as server:
        sock = socket.create_connection(server.address, timeout=5)
        with sock, pytest.raises(AuthError):
            client_handshake(sock, b"wrong" * 8, 0, 2)
        stranger = LineSender(server.address, b"wrong" * 8, rank=0, world_size=2)
        assert stranger.attempt is None  # could not connect: it logs locally instead
    assert lines == [] and server.connections == {}


def test_the_driver_stops_every_rank_and_shows_none_of_their_later_lines(capfd):
    secret, lines, stopped = b"t" * 32, [], []
    with LogServer(secret, world_size=2, sink=lambda r, s: lines.append((r, s))) as server:
        senders = [LineSender(server.address, secret, rank=r, world_size=2) for r in (0, 1)]
        for sender in senders:
            sender.on_stop = lambda rank=sender.rank: stopped.append(rank)
        senders[0].send("before")
        deadline = time.monotonic() + 10
        while not lines and time.monotonic() < deadline:
            time.sleep(0.01)
        server.stop_ranks()
        while len(stopped) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        for sender in senders:
            sender.send("after the stop")  # dropped: not sent, not printed locally
            sender.close()
    assert sorted(stopped) == [0, 1]
    assert lines == [(0, "before")]
    assert "after the stop" not in capfd.readouterr().err


def test_a_rank_that_closed_its_link_is_not_stopped_later():
    secret, stopped = b"u" * 32, []
    with LogServer(secret, world_size=1, sink=lambda r, s: None) as server:
        sender = LineSender(server.address, secret, rank=0, world_size=1)
        sender.on_stop = lambda: stopped.append(0)
        sender.close()
        server.stop_ranks()
    assert stopped == []


def test_log_server_close_waits_for_late_lines():
    secret, lines = b"s" * 32, []
    with LogServer(secret, world_size=1, sink=lambda r, s: lines.append(s)) as server:
        sender = LineSender(server.address, secret, rank=0, world_size=1)

        def late() -> None:
            time.sleep(0.2)
            sender.send("last words")
            sender.close()

        threading.Thread(target=late).start()
    assert lines == ["last words"]


# -- slots --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "master, conf, parallelism, slots",
    [
        ("local[2]", {}, 2, 2),
        ("local[4,3]", {}, 4, 4),
        ("local[4]", {"spark.task.cpus": "2"}, 4, 2),
        ("local", {}, 1, 1),
        ("local-cluster[2,1,1024]", {}, 2, 2),
        ("local-cluster[3,4,1024]", {"spark.task.cpus": "2"}, 12, 6),
        ("spark://h:7077", {"spark.executor.instances": "4", "spark.executor.cores": "2"}, 2, 8),
        ("yarn", {}, 6, 6),
    ],
)
def test_task_slots_of_a_master(master, conf, parallelism, slots):
    assert task_slots(master, conf, parallelism)[0] == slots


class _FakeSpark:
    """Just what check_barrier_capacity reads: master, conf, default parallelism."""

    def __init__(self, master: str, conf: dict) -> None:
        self.sparkContext = self
        self.master, self._conf, self.defaultParallelism = master, conf, 2

    def getConf(self) -> dict:
        return self._conf


def test_capacity_errors_say_what_to_do():
    with pytest.raises(ConfigError, match=r"world size 4 needs 4 task slots; local\[2\] has 2"):
        check_barrier_capacity(_FakeSpark("local[2]", {}), 4)
    with pytest.raises(ConfigError, match=r"Use --master local\[4\] or a smaller --world-size"):
        check_barrier_capacity(_FakeSpark("local[2]", {}), 4)
    with pytest.raises(ConfigError, match="dynamicAllocation.enabled=false"):
        check_barrier_capacity(_FakeSpark("yarn", {"spark.dynamicAllocation.enabled": "true"}), 2)
    check_barrier_capacity(_FakeSpark("local[2]", {}), 2)  # fits: no error


# -- errors -------------------------------------------------------------------------------------
def _raised(exc: Exception) -> Exception:
    try:
        raise exc
    except Exception as caught:
        return caught


def _spark_text(line: str) -> str:
    """What Spark's failure text looks like around the line our task raised."""
    java = "\n".join(f"\tat org.apache.spark.Frame{i}(X.scala:{i})" for i in range(200))
    return (
        "An error occurred while calling o1.collectAndServe.\n: org.apache.spark.SparkException: "
        "Job aborted due to stage failure: Task 1 in stage 0.1 failed\nTraceback (most recent "
        f'call last):\n  File "w.py", line 9\n{line}\n{java}'
    )


def test_driver_error_names_the_rank_and_keeps_sparkgrad_classes():
    plain = _failure(1, 0, _raised(ValueError("loss is nan\nat step 3")))
    err = driver_error(Exception(_spark_text(f"x._RankFailed: {plain}")))
    assert type(err) is RankError
    assert str(err).startswith("rank 1 failed on attempt 0 with ValueError: loss is nan\nat step 3")
    assert "org.apache" not in str(err)
    timeout = _failure(0, 2, _raised(CollectiveTimeout("all_reduce #7: missing ranks [1]")))
    err = driver_error(Exception(_spark_text(f"x._RankFailed: {timeout}")))
    assert type(err) is CollectiveTimeout and "rank 0" in str(err) and "[1]" in str(err)


def test_driver_error_without_our_marker_keeps_the_python_error():
    text = _spark_text("ModuleNotFoundError: No module named 'sparkgrad'")
    err = driver_error(Exception(text))
    assert type(err) is RankError
    assert "ModuleNotFoundError: No module named 'sparkgrad'" in str(err)
    assert "Job aborted due to stage failure" in str(err) and len(str(err)) < 600


def test_driver_error_prefers_the_cause_over_a_peers_timeout():
    peer = _failure(0, 0, _raised(CollectiveTimeout("all_reduce #3: rank 1 lost")))
    cause = _failure(1, 0, _raised(KeyError("fc1.weight")))
    err = driver_error(Exception(_spark_text(f"A: {peer}\nB: {cause}")))
    assert type(err) is RankError and str(err).startswith("rank 1 failed")
    assert "KeyError: 'fc1.weight'" in str(err)


def test_the_first_failure_by_time_of_the_last_attempt_is_the_root_cause():
    def record(rank, attempt, exc, t):
        (info,) = parse_failures(str(_failure(rank, attempt, _raised(exc))))
        return {**info, "time": t}

    found = [
        record(1, 0, KeyError("old attempt"), 1.0),
        record(1, 1, CollectiveTimeout("rank 0 is gone"), 2.0),  # a consequence, earlier
        record(0, 1, OSError(28, "No space left"), 3.0),
        record(1, 1, ValueError("later own error"), 4.0),
    ]
    assert (root_cause(found)["rank"], root_cause(found)["type"]) == (0, "OSError")
    only_timeouts = [found[1], record(0, 1, CollectiveTimeout("rank 1 is gone"), 1.5)]
    assert root_cause(only_timeouts)["time"] == 1.5  # all consequences: the first of them
    err = driver_error(
        Exception("Job aborted: " + str(_failure(1, 1, _raised(KeyError("x"))))), found
    )
    assert str(err).startswith("rank 0 failed on attempt 1 with OSError: [Errno 28]")


@pytest.mark.parametrize(
    "exc, permanent",
    [
        (ConfigError("x"), True),
        (DataFormatError("x"), True),
        (CheckpointError("x"), True),
        (NonFiniteLossError("x"), True),
        (PermissionError(13, "Permission denied"), True),
        (OSError(30, "Read-only file system"), True),
        (OSError(1, "Operation not permitted"), True),
        (OSError(28, "No space left on device"), False),
        (CollectiveTimeout("x"), False),
        (CommError("x"), False),
        (ValueError("x"), False),
        (RuntimeError("injected"), False),
    ],
)
def test_which_errors_a_rerun_cannot_fix(exc, permanent):
    assert is_permanent(exc) is permanent
    (info,) = parse_failures(str(_failure(0, 0, _raised(exc))))
    assert info["retry"] is not permanent
