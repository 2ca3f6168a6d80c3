"""The pipeline schedules as pure functions: complete, causal, bounded in memory.

The bubble formula is checked against an independent event simulation of all stages
(which also proves the schedules cannot deadlock with blocking receives).
"""

from __future__ import annotations

import pytest

from sparkgrad.errors import ConfigError
from sparkgrad.parallel.pipeline.schedules import (
    SCHEDULES,
    bubble_fraction,
    gpipe_schedule,
    one_f_one_b_schedule,
    peak_live,
    simulate,
)

CASES = [(p, m) for p in range(1, 6) for m in (1, 2, 3, 4, 8)]


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize(("stages", "micro_batches"), CASES)
def test_each_micro_batch_has_one_forward_then_one_backward(
    name: str, stages: int, micro_batches: int
) -> None:
    for stage in range(stages):
        actions = SCHEDULES[name](stage, stages, micro_batches)
        assert sorted(actions) == sorted([(k, i) for k in ("F", "B") for i in range(micro_batches)])
        for i in range(micro_batches):
            assert actions.index(("F", i)) < actions.index(("B", i))
        # micro-batches go through a stage in order, both ways (the gradients add up in
        # the same order under every schedule)
        assert [i for k, i in actions if k == "F"] == list(range(micro_batches))
        assert [i for k, i in actions if k == "B"] == list(range(micro_batches))


@pytest.mark.parametrize(("stages", "micro_batches"), CASES)
def test_live_activations(stages: int, micro_batches: int) -> None:
    for stage in range(stages):
        assert peak_live(gpipe_schedule(stage, stages, micro_batches)) == micro_batches
        one_f = peak_live(one_f_one_b_schedule(stage, stages, micro_batches))
        assert one_f <= stages - stage
        assert one_f == min(stages - stage, micro_batches)


def test_last_stage_of_1f1b_alternates() -> None:
    actions = one_f_one_b_schedule(3, 4, 5)
    assert [k for k, _ in actions] == ["F", "B"] * 5


def test_peak_live_counts_outstanding_forwards() -> None:
    assert peak_live([("F", 0), ("B", 0), ("F", 1), ("F", 2), ("B", 1), ("B", 2)]) == 2


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize(("stages", "micro_batches"), CASES)
@pytest.mark.parametrize("backward_cost", [1.0, 2.0])
def test_simulated_bubble_is_the_theoretical_one(
    name: str, stages: int, micro_batches: int, backward_cost: float
) -> None:
    got = simulate(name, stages, micro_batches, forward=1.0, backward=backward_cost)
    assert got == pytest.approx(bubble_fraction(stages, micro_batches), abs=1e-12)


def test_more_micro_batches_shrink_the_bubble() -> None:
    values = [bubble_fraction(4, m) for m in (1, 2, 4, 8, 16)]
    assert values == sorted(values, reverse=True)
    assert bubble_fraction(1, 4) == 0.0
    assert bubble_fraction(4, 1) == pytest.approx(3 / 4)  # naive model parallelism


def test_simulate_with_uneven_stages_matches_a_timeline_worked_by_hand():
    """p=2, m=1, stage 1 three times slower: F0 0-1, F1 1-4, B1 4-10, B0 10-12.

    The step takes 12; stage 0 works 3 of them, stage 1 works 9: idle (9 + 3) / 24 = 0.5.
    """
    assert simulate("gpipe", 2, 1, forward=[1.0, 3.0], backward=[2.0, 6.0]) == 0.5
    with pytest.raises(ConfigError, match="expected 2 forward"):
        simulate("gpipe", 2, 1, forward=[1.0], backward=[2.0, 6.0])
