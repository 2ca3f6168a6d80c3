"""Chapter 3 exercise: the ring reduce-scatter, all-gather and all-reduce.

The functions under test run where the project's ring runs: as the ``"ring"`` algorithm
of a real ProcessGroup on thread ranks (``pg.all_reduce(buf, algorithm="ring")``), each
on its own channel. Truths, as nccl-tests checks collectives: small-integer inputs whose
sums are exact in float32, so the result must equal a NumPy sum with 0 wrong elements;
every rank bit-identical on random floats; and the traffic of a ring — every send to the
right neighbour, every receive from the left, ``2(n-1)`` blocks per rank for an
all-reduce (recorded on the channel).
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest

from exercises.reference import ReduceOp, blocks, ring_algorithm, run_comm_ranks
from tests.exercises.catching import assert_caught

EXERCISE = "ring"
pytestmark = pytest.mark.exercise_ring

WORLDS = (1, 2, 3, 4, 5)
COUNTS = (0, 3, 7, 1000)  # empty, fewer elements than ranks (empty blocks), uneven blocks


class RecordingChannel:
    """A channel that notes every send and receive (peer, elements) and passes it on."""

    def __init__(self, ch: Any) -> None:
        self._ch, self.sent, self.heard = ch, [], []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ch, name)

    def send(self, peer: int, view: Any) -> None:
        self.sent.append((peer, int(view.size)))
        self._ch.send(peer, view)

    def recv_into(self, peer: int, out: Any) -> None:
        self.heard.append((peer, int(out.size)))
        self._ch.recv_into(peer, out)

    def recv_reduce(self, peer: int, acc: Any, op: Any) -> None:
        self.heard.append((peer, int(acc.size)))
        self._ch.recv_reduce(peer, acc, op)


def exact_input(rank: int, count: int, dtype: Any) -> np.ndarray:
    """Small integers: their sums over <= 5 ranks are exact in every dtype."""
    return np.random.default_rng(100 * rank + count).integers(-8, 9, count).astype(dtype)


def run(collective: str, fn: Any, world: int, inputs: list[np.ndarray], op: Any = None) -> list:
    """``pg.<collective>`` with ``fn`` as its ring, on ``world`` thread ranks.

    Returns per rank ``(result, sent, heard)``.
    """
    records: dict[int, RecordingChannel] = {}

    def algorithm(ch: Any, buf: Any, *rest: Any) -> None:
        rec = records[ch.rank] = RecordingChannel(ch)
        fn(rec, buf, *rest)

    def body(pg: Any) -> Any:
        x = inputs[pg.rank].copy()
        if collective == "all_reduce":
            out = pg.all_reduce(x, op, algorithm="ring")
        elif collective == "reduce_scatter":
            out = pg.reduce_scatter(x, op, algorithm="ring")
        else:
            out = pg.all_gather(x, algorithm="ring").reshape(-1)
        rec = records.get(pg.rank)
        return out, (rec.sent if rec else []), (rec.heard if rec else [])

    with ring_algorithm(collective, algorithm):
        return run_comm_ranks(world, body)


def assert_ring_traffic(results: list, world: int, blocks_per_rank: int, count: int) -> None:
    """Only neighbours talk, and each rank sends ``blocks_per_rank`` blocks' worth."""
    biggest = -(-count // world)
    total = 0
    for rank, (_, sent, heard) in enumerate(results):
        right, left = (rank + 1) % world, (rank - 1) % world
        assert all(p == right for p, _ in sent), f"rank {rank} sent to {sent}: only to {right}"
        assert all(p == left for p, _ in heard), f"rank {rank} heard {heard}: only from {left}"
        mine = sum(n for _, n in sent)
        assert mine <= blocks_per_rank * biggest, (
            f"rank {rank} sent {mine} elements of {count}: a ring sends {blocks_per_rank} blocks"
        )
        total += mine
    assert total == blocks_per_rank * count, (
        f"the ranks sent {total} elements in all; a ring sends {blocks_per_rank} x {count}"
    )


# ---- the checks ---------------------------------------------------------------------------
def check_all_reduce_is_exact(impl: Any) -> None:
    for world in WORLDS:
        for count in COUNTS:
            for dtype, op in ((np.float32, ReduceOp.SUM), (np.int64, ReduceOp.MAX)):
                xs = [exact_input(r, count, dtype) for r in range(world)]
                want = np.sum(xs, axis=0) if op is ReduceOp.SUM else np.max(xs, axis=0)
                results = run("all_reduce", impl.ring_all_reduce, world, xs, op)
                for rank, (out, _, _) in enumerate(results):
                    wrong = int(np.count_nonzero(out != want))
                    assert wrong == 0, (
                        f"{world} ranks, {count} {op.name}: rank {rank} #wrong {wrong}"
                    )
                assert_ring_traffic(results, world, 2 * (world - 1), count)


def check_all_reduce_is_bit_identical_on_every_rank(impl: Any) -> None:
    """Random floats: the ring fixes the order of the sums, so every rank gets the same bits."""
    rng = np.random.default_rng(7)
    for world in (3, 4):
        xs = [rng.standard_normal(999).astype(np.float32) for _ in range(world)]
        results = run("all_reduce", impl.ring_all_reduce, world, xs, ReduceOp.SUM)
        for rank, (out, _, _) in enumerate(results):
            assert np.array_equal(out, results[0][0]), f"rank {rank} differs from rank 0"
        np.testing.assert_allclose(results[0][0], np.sum(xs, axis=0), rtol=1e-5, atol=1e-5)


def check_reduce_scatter(impl: Any) -> None:
    """Rank r ends with block r of the sum (the blocks ``pg.reduce_scatter`` hands back)."""
    for world in WORLDS:
        for per_rank in (0, 1, 5):
            count = per_rank * world
            xs = [exact_input(r, count, np.float32) for r in range(world)]
            results = run("reduce_scatter", impl.ring_reduce_scatter, world, xs, ReduceOp.SUM)
            total = np.sum(xs, axis=0)
            for rank, (out, _, _) in enumerate(results):
                lo, hi = blocks(count, world)[rank]
                assert np.array_equal(out, total[lo:hi]), f"{world} ranks: rank {rank}'s block"
            assert_ring_traffic(results, world, world - 1, count)


def check_all_gather(impl: Any) -> None:
    """Every rank ends with every rank's block, in rank order."""
    for world in WORLDS:
        for per_rank in (0, 1, 5):
            xs = [exact_input(r, per_rank, np.int32) for r in range(world)]
            results = run("all_gather", impl.ring_all_gather, world, xs)
            want = np.concatenate(xs)
            for rank, (out, _, _) in enumerate(results):
                assert np.array_equal(out, want), f"{world} ranks: rank {rank} gathered {out}"
            assert_ring_traffic(results, world, world - 1, per_rank * world)


CHECKS = [
    check_all_reduce_is_exact,
    check_all_reduce_is_bit_identical_on_every_rank,
    check_reduce_scatter,
    check_all_gather,
]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[6:] for c in CHECKS])
def test_ring(impl: Any, check: Any) -> None:
    check(impl)


# ---- the checks catch wrong versions ------------------------------------------------------
def _everyone_sends_everything(ch: Any, buf: Any, op: Any) -> None:
    """Wrong for a ring (right sums): every rank sends its whole buffer to every other."""
    n, r = ch.size, ch.rank
    mine = buf.copy()
    for peer in range(n):
        if peer != r:
            ch.send(peer, mine)
    buf[...] = 0
    for peer in range(n):  # in rank order, so every rank adds alike
        if peer == r:
            buf += mine
        else:
            incoming = np.empty_like(buf)
            ch.recv_into(peer, incoming)
            buf += incoming


def _reduce_scatter_only(ch: Any, buf: Any, op: Any) -> None:
    """Wrong: stops half way (each rank holds one reduced block, the rest partial)."""
    from exercises.reference import SOLUTIONS

    SOLUTIONS["ring"].ring_reduce_scatter(ch, buf, op)


def _block_off_by_one(ch: Any, buf: Any, op: Any) -> None:
    """Wrong: leaves block r + 1 complete on rank r (the all-reduce's own half-way point)."""
    n = ch.size
    right, left = (ch.rank + 1) % n, (ch.rank - 1) % n
    bounds = blocks(buf.size, n)
    for s in range(n - 1):
        lo, hi = bounds[(ch.rank - s) % n]
        ch.send(right, buf[lo:hi])
        lo, hi = bounds[(ch.rank - s - 1) % n]
        ch.recv_reduce(left, buf[lo:hi], op)


def _reference(name: str) -> Any:
    from exercises.reference import SOLUTIONS

    return getattr(SOLUTIONS["ring"], name)


WRONG = {  # name -> (implementation, the checks that must catch it at least)
    "everyone sends everything": (
        types.SimpleNamespace(
            ring_all_reduce=_everyone_sends_everything,
            ring_reduce_scatter=_reference("ring_reduce_scatter"),
            ring_all_gather=_reference("ring_all_gather"),
        ),
        {"all_reduce_is_exact"},
    ),
    "reduce-scatter only": (
        types.SimpleNamespace(
            ring_all_reduce=_reduce_scatter_only,
            ring_reduce_scatter=_reference("ring_reduce_scatter"),
            ring_all_gather=_reference("ring_all_gather"),
        ),
        {"all_reduce_is_exact", "all_reduce_is_bit_identical_on_every_rank"},
    ),
    "block off by one": (
        types.SimpleNamespace(
            ring_all_reduce=_reference("ring_all_reduce"),
            ring_reduce_scatter=_block_off_by_one,
            ring_all_gather=_reference("ring_all_gather"),
        ),
        {"reduce_scatter"},
    ),
}


@pytest.mark.parametrize("wrong", list(WRONG))
def test_the_checks_catch_a_wrong_ring(wrong: str) -> None:
    impl, must_catch = WRONG[wrong]
    assert_caught(wrong, impl, CHECKS, must_catch)
