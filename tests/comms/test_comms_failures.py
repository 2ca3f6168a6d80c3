"""Failure behaviour: no hang, and errors that say what went wrong, on every rank.

- a silent rank (alive, but not calling) -> every other rank raises CollectiveTimeout
  naming the collective, its call number and the missing rank, after about ``timeout``;
- a dead rank (connections closed) -> the same error, at once;
- ranks calling different collectives, or the same one with different shapes or dtypes
  -> every rank raises CollectiveMismatch naming what each side called, in that call,
  also a rank that only sends in it (the root of a broadcast, a leaf of a reduce);
- after an error the communicator refuses further calls instead of hanging.
Fault injection (:class:`FaultPlan`) makes the failures happen on purpose.
"""

import time

import numpy as np
import pytest
from comms_helpers import run_group

from sparkgrad.comms.faults import FaultPlan, RankDropped
from sparkgrad.errors import CollectiveMismatch, CollectiveTimeout, CommError, ConfigError


def _outcomes(nranks, body, **options):
    """Run ``body`` on every rank; return each rank's exception (or None)."""

    def wrapped(pg):
        try:
            body(pg)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            return exc
        return None

    return run_group(nranks, wrapped, **options)


def _three_all_reduces(pg):
    for _ in range(3):
        pg.all_reduce(np.ones(1000, np.float32))


@pytest.mark.parametrize(
    "algo",
    [
        "ring",
        pytest.param("tree", marks=pytest.mark.slow),
        pytest.param("halving_doubling", marks=pytest.mark.slow),
    ],
)
def test_a_silent_rank_makes_every_other_rank_time_out_naming_it(algo):
    plan = FaultPlan(drop_rank=2, drop_at_call=1, drop_mode="hang", hang_seconds=1.5)
    start = time.monotonic()
    errors = _outcomes(
        4, _three_all_reduces, timeout=0.8, faults=plan, algorithms={"all_reduce": algo}
    )
    assert isinstance(errors[2], RankDropped)
    for rank in (0, 1, 3):
        err = errors[rank]
        assert isinstance(err, CollectiveTimeout), (rank, err)
        text = str(err)
        assert "all_reduce" in text and "call #2" in text and "missing ranks [2]" in text, text
    assert time.monotonic() - start < 8  # bounded: no hang (generous, the machine is shared)


def test_a_dead_rank_is_noticed_at_once():
    plan = FaultPlan(drop_rank=1, drop_at_call=0, drop_mode="exit")
    errors = _outcomes(3, _three_all_reduces, timeout=30.0, faults=plan)
    assert isinstance(errors[1], RankDropped)
    for rank in (0, 2):
        assert isinstance(errors[rank], CollectiveTimeout)
        assert "missing ranks [1]" in str(errors[rank]) and "call #1" in str(errors[rank])


def _mismatch_body(kind):
    def body(pg):
        x = np.zeros(8, np.float32)
        if pg.rank == 0:
            pg.all_reduce(x)
        elif kind == "op":
            pg.broadcast(x, root=0)
        elif kind == "shape":
            pg.all_reduce(np.zeros(9, np.float32))
        else:
            pg.all_reduce(np.zeros(8, np.float64))

    return body


@pytest.mark.parametrize(
    "kind, other",
    [("op", "broadcast(shape=(8,)"), ("shape", "shape=(9,)"), ("dtype", "dtype=float64")],
)
def test_mismatched_calls_raise_on_every_rank_naming_both_sides(kind, other):
    errors = _outcomes(3, _mismatch_body(kind), timeout=5.0)
    for rank, err in enumerate(errors):
        assert isinstance(err, CollectiveMismatch), (rank, err)
        text = str(err)
        assert "all_reduce(shape=(8,), dtype=float32" in text and other in text, text


def _rooted_mismatch_body(call, algorithm):
    """Rank 0 calls all_reduce; the others call ``call``, in which rank 1 only *sends*."""

    def body(pg):
        x = np.arange(8, dtype=np.float32)
        if pg.rank == 0:
            pg.all_reduce(x)
        elif call == "broadcast":  # rank 1 is the source: it never hears from rank 0
            pg.broadcast(x, root=1, algorithm=algorithm)
        elif call == "scatter":
            pg.scatter(np.empty(8, np.float32), np.zeros((pg.size, 8), np.float32), root=1)
        elif call == "gather":  # rank 1 is a leaf sending to the root 0
            pg.gather(x, root=0)
        else:
            pg.reduce(x, root=0, algorithm=algorithm)

    return body


@pytest.mark.parametrize(
    "call, algorithm",
    [
        ("broadcast", "chain"),
        ("broadcast", "binomial"),
        ("scatter", None),
        ("gather", None),
        ("reduce", "chain"),
        ("reduce", "binomial"),
    ],
)
def test_a_rank_that_only_sends_in_a_mismatched_call_raises_in_that_call(call, algorithm):
    # issue 17.14: before, rank 1 returned normally and raised only at its next call
    errors = _outcomes(2, _rooted_mismatch_body(call, algorithm), timeout=5.0)
    for rank, err in enumerate(errors):
        assert isinstance(err, CollectiveMismatch), (rank, err)
        assert "all_reduce(shape=(8,)" in str(err) and f"{call}(" in str(err), str(err)


@pytest.mark.parametrize("call", ["broadcast", "reduce", "gather"])
def test_a_mismatch_two_hops_away_reaches_every_rank_of_a_rooted_call(call):
    """Ranks 0 and 1 agree, rank 2 called all_reduce: 0 and 1 raise too, not only 2.

    (chain broadcast 0 -> 1 -> 2 and chain reduce 1 -> 2 -> 0: rank 0 or 1 never talks
    to the odd rank directly; the acks running back up the chain carry the news.)
    """

    def body(pg):
        x = np.ones(8, np.float32)
        if pg.rank == 2 and call != "reduce" or pg.rank == 0 and call == "reduce":
            pg.all_reduce(x)
        elif call == "broadcast":
            pg.broadcast(x, root=0, algorithm="chain")
        elif call == "reduce":
            pg.reduce(x, root=0, algorithm="chain")
        else:
            pg.gather(x, root=0)

    errors = _outcomes(3, body, timeout=5.0)
    for rank, err in enumerate(errors):
        assert isinstance(err, CollectiveMismatch), (rank, err)


def test_the_sender_of_a_mismatched_send_raises_at_its_next_call():
    def body(pg):
        if pg.rank == 0:
            pg.send(np.zeros(4, np.float32), 1)  # returns once handed over, as in NCCL
            with pytest.raises(CollectiveMismatch, match=r"shape=\(5,\)"):
                pg.barrier()
        else:
            with pytest.raises(CollectiveMismatch, match=r"shape=\(4,\)"):
                pg.recv(np.zeros(5, np.float32), 0)
        return True

    assert run_group(2, body, timeout=5.0) == [True, True]


def test_communicator_refuses_calls_after_an_error():
    def body(pg):
        with pytest.raises(CollectiveMismatch):
            _mismatch_body("shape")(pg)
        with pytest.raises(CommError, match="aborted"):
            pg.barrier()
        return True

    assert run_group(2, body, timeout=5.0) == [True, True]


def test_recv_without_a_sender_times_out_naming_the_peer():
    def body(pg):
        if pg.rank == 0:
            with pytest.raises(CollectiveTimeout, match=r"missing ranks \[1\]"):
                pg.recv(np.empty(3), 1)
        return True

    assert run_group(2, body, timeout=0.5) == [True, True]


def test_slow_links_change_timing_but_not_one_bit_of_the_result():
    rng = np.random.default_rng(0)
    data = [rng.standard_normal(5000).astype(np.float32) for _ in range(4)]  # inexact sums

    def body(pg):
        out = {}
        for algo in ("ring", "tree", "halving_doubling"):
            x = data[pg.rank].copy()
            pg.all_reduce(x, algorithm=algo)
            out[algo] = x
        return out

    calm = run_group(4, body, segment_bytes=2048)
    plan = FaultPlan(seed=3, link_delay={(0, 1): 0.002, (2, 3): 0.003, (3, 0): 0.001})
    slow = run_group(4, body, segment_bytes=2048, faults=plan)
    for algo in calm[0]:
        for rank in range(4):
            assert calm[rank][algo].tobytes() == calm[0][algo].tobytes()  # same on every rank
            assert slow[rank][algo].tobytes() == calm[0][algo].tobytes()  # same every run


def test_fault_plan_checks_its_arguments():
    with pytest.raises(ConfigError):
        FaultPlan(drop_rank=1)
    with pytest.raises(ConfigError):
        FaultPlan(drop_rank=1, drop_at_call=0, drop_mode="explode")
