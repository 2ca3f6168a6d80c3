"""The ring all-reduce schedule drawn in notebook 3 is right, and is what the real code does.

Truths used: an independent simulation with exact-sum inputs (small integers in float64:
every sum is exact, so "every rank holds the full sum" is an equality), and the messages
that sparkgrad's own ``ring_all_reduce`` sends when run on a recording channel.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparkgrad.comms.algorithms import REGISTRY
from sparkgrad.comms.algorithms.layout import blocks
from sparkgrad.comms.reduce_ops import ReduceOp
from sparkgrad.comms.ring_diagram import (
    contributions,
    draw_ring,
    draw_trace,
    ring_schedule,
    trace_algorithm,
)
from sparkgrad.errors import ConfigError


def _inputs(n: int, chunk: int = 3) -> list[np.ndarray]:
    """Rank r holds small integers times 64**r: every partial sum is exact, and tells which
    ranks it contains (each rank owns its own base-64 digit)."""
    return [(np.arange(n * chunk, dtype=np.float64) + 1) * 64.0**r for r in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8])
def test_schedule_leaves_every_chunk_fully_summed_on_every_rank(n):
    chunk = 3
    inputs = _inputs(n, chunk)
    state = [x.reshape(n, chunk).copy() for x in inputs]  # state[rank][chunk]
    steps = ring_schedule(n)
    assert len(steps) == 2 * (n - 1)
    for s, step in enumerate(steps):
        assert sorted(t.sender for t in step) == list(range(n))  # everyone sends once
        assert sorted(t.receiver for t in step) == list(range(n))  # and receives once
        assert all(t.receiver == (t.sender + 1) % n and t.step == s for t in step)
        sent = [(t, state[t.sender][t.chunk].copy()) for t in step]  # all at once
        for t, data in sent:
            if t.action == "reduce":
                state[t.receiver][t.chunk] += data
            else:
                assert t.action == "copy"
                state[t.receiver][t.chunk] = data
    total = sum(inputs).reshape(n, chunk)
    for r in range(n):
        np.testing.assert_array_equal(state[r], total)


@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_schedule_matches_the_messages_of_the_real_ring_all_reduce(n):
    inputs = _inputs(n, chunk=2)
    messages, out = trace_algorithm(REGISTRY["all_reduce"]["ring"], inputs, ReduceOp.SUM)
    bounds = blocks(inputs[0].size, n)
    traced = sorted(
        (m.index, m.sender, m.receiver, bounds.index((m.lo, m.hi)), m.action) for m in messages
    )
    drawn = sorted(
        (t.step, t.sender, t.receiver, t.chunk, t.action) for step in ring_schedule(n) for t in step
    )
    assert traced == drawn
    for buf in out:
        np.testing.assert_array_equal(buf, sum(inputs))


@pytest.mark.parametrize("name", ["tree", "halving_doubling"])
@pytest.mark.parametrize("n", [3, 4])
def test_trace_runs_other_algorithms_to_the_exact_sum(name, n):
    inputs = _inputs(n)
    messages, out = trace_algorithm(REGISTRY["all_reduce"][name], inputs, ReduceOp.SUM)
    assert messages and {m.action for m in messages} <= {"reduce", "copy"}
    for buf in out:
        np.testing.assert_array_equal(buf, sum(inputs))


def test_contributions_count_up_to_n_and_drawings_have_one_panel_per_step():
    import matplotlib

    matplotlib.use("Agg")
    states = contributions(4)
    assert len(states) == 1 + 2 * 3
    assert (states[0] == 1).all() and (states[-1] == 4).all()
    assert states[3].max() == 4 and states[3].min() < 4  # reduce-scatter done, not gathered
    fig = draw_ring(4)
    assert len(fig.axes) == 7
    messages, _ = trace_algorithm(REGISTRY["all_reduce"]["tree"], _inputs(4), ReduceOp.SUM)
    assert draw_trace(messages, 4, "tree").axes


def test_bad_rank_count_is_a_config_error():
    with pytest.raises(ConfigError, match="expected a number of ranks"):
        ring_schedule(0)
