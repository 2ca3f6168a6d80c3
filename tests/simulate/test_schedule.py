"""Overlap never makes a step faster than its critical path, nor slower than running serially."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparkgrad.errors import ConfigError
from sparkgrad.parallel.pipeline.schedules import simulate
from sparkgrad.simulate.schedule import StagePlan, StepPlan, run_step

times = st.floats(min_value=0.0, max_value=5.0, allow_nan=False)


def _plan(stages, layers, f, b, tp, grad_s, gather_s, p2p, micro, zero, schedule):
    seg_f = [("compute", "f", f), ("blocking", "tp", tp)]
    seg_b = [("compute", "b", b), ("blocking", "tp", tp)]
    plans = [
        StagePlan(
            forward=[seg_f] * layers,
            backward=[seg_b] * layers,
            layer_grad_bytes=1.0,
            gather_seconds=gather_s,
            optimizer_seconds=0.1,
        )
        for _ in range(stages)
    ]
    return StepPlan(
        plans, micro, schedule, p2p, zero, bucket_bytes=1.0, reduce_seconds=lambda c, n: grad_s
    )


@settings(max_examples=60, deadline=None)
@given(
    stages=st.integers(1, 4),
    layers=st.integers(1, 3),
    f=times,
    b=times,
    tp=times,
    grad_s=times,
    gather_s=times,
    p2p=times,
    micro=st.integers(1, 5),
    zero=st.sampled_from([0, 2, 3]),
    schedule=st.sampled_from(["1f1b", "gpipe"]),
)
def test_step_lies_between_critical_path_and_serial_sum(
    stages, layers, f, b, tp, grad_s, gather_s, p2p, micro, zero, schedule
):
    plan = _plan(stages, layers, f, b, tp, grad_s, gather_s, p2p, micro, zero, schedule)
    step, events = run_step(plan)
    per_stage_work = micro * layers * (f + b + 2 * tp) + 0.1  # compute + blocking + optimizer
    reductions = layers * (micro if zero >= 2 else 1)  # one bucket per layer
    async_work = reductions * grad_s + (2 * micro * layers * gather_s if zero == 3 else 0.0)
    # the critical path: no stage finishes before its own lane work, nor before its async lane
    assert step >= per_stage_work - 1e-9
    assert step >= async_work - 1e-9
    serial = stages * (per_stage_work + async_work) + 2 * micro * (stages - 1) * p2p
    assert step <= serial + 1e-9
    # a lane never runs two things at once
    for stage in range(stages):
        for lane in ("compute", "blocking", "async", "send"):
            spans = sorted(
                (e.start, e.start + e.seconds)
                for e in events
                if e.stage == stage and e.lane == lane
            )
            assert all(a[1] <= c[0] + 1e-9 for a, c in zip(spans, spans[1:]))


@pytest.mark.parametrize("schedule", ["1f1b", "gpipe"])
@pytest.mark.parametrize("p, m", [(2, 3), (4, 8), (3, 1)])
def test_free_communication_gives_the_pipeline_bubble(schedule, p, m):
    plan = _plan(p, 1, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, m, 0, schedule)
    for stage in plan.stages:
        stage.optimizer_seconds = 0.0
    step, _ = run_step(plan)
    idle = (step - m * 3.0) / step
    assert idle == pytest.approx(simulate(schedule, p, m, 1.0, 2.0))
    assert idle == pytest.approx((p - 1) / (m + p - 1))


def test_ddp_buckets_hide_behind_backward():
    # 4 layers, backward 1 s each, each bucket's all-reduce 0.5 s: only the last one shows
    plan = _plan(1, 4, 1.0, 1.0, 0.0, 0.5, 0.0, 0.0, 1, 0, "1f1b")
    step, _ = run_step(plan)
    assert step == pytest.approx(4 + 4 + 0.5 + 0.1)


def test_bad_schedule_raises():
    with pytest.raises(ConfigError, match="unknown schedule"):
        run_step(_plan(1, 1, 1, 1, 0, 0, 0, 0, 1, 0, "zigzag"))


def test_zero3_prefetch_hides_all_gathers_but_the_first_of_each_pass():
    # 4 layers of 1 s forward and 1 s backward, each layer's gather 0.5 s: the gather of
    # layer l+1 runs while layer l computes, so only the first gather of the forward and of
    # the backward shows (serially it would cost 8 x 0.5 s)
    plan = _plan(1, 4, 1.0, 1.0, 0.0, 0.0, 0.5, 0.0, 1, 3, "1f1b")
    step, events = run_step(plan)
    assert step == pytest.approx(0.5 + 4 + 0.5 + 4 + 0.1)
    assert sum(e.lane == "async" for e in events) == 8


def test_tensor_parallel_all_reduce_sits_on_the_critical_path():
    plain = run_step(_plan(1, 3, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 2, 0, "1f1b"))[0]
    with_tp = run_step(_plan(1, 3, 1.0, 2.0, 0.25, 0.0, 0.0, 0.0, 2, 0, "1f1b"))[0]
    assert with_tp - plain == pytest.approx(2 * 3 * 2 * 0.25)  # mbs x layers x (F, B) x 0.25
