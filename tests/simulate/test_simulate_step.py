"""Whole-step predictions: shapes only, a valid trace, and memory that follows ZeRO and 1F1B."""

import pytest

import sparkgrad.simulate as S
from sparkgrad.autodiff.profiler.trace import validate_trace
from sparkgrad.errors import ConfigError
from sparkgrad.simulate.trace import build_trace

SHAPE = S.GPTShape(4096, 32, 32, 2048, 50257)


def _step(mesh="dp=8,tp=8,pp=4", cluster="32x8-h100", batch=512, micro=8, **kw):
    return S.simulate_step(
        S.StepConfig(SHAPE, S.Mesh.parse(mesh), S.Cluster.parse(cluster), batch, micro, **kw)
    )


def test_issue_example_predicts_and_exports_a_valid_trace():
    p = _step()
    assert 0.0 < p.mfu < 1.0
    assert p.tokens_per_second == pytest.approx(512 * 2048 / p.step_seconds)
    counts = validate_trace(build_trace(p.events, 4))
    assert counts["X"] == len(p.events) > 100
    choices = {c.collective: c for c in p.comms.values()}
    assert choices["all_reduce"].protocol in ("LL", "LL128", "Simple")
    assert all(c.reason for c in p.comms.values())


def test_parameter_count_matches_the_model():
    from sparkgrad.models.gpt import GPT

    small = S.GPTShape(32, 2, 4, 16, 50)
    model = GPT(50, context=16, d_model=32, nhead=4, num_layers=2)
    assert small.parameters == sum(p.numel() for p in model.parameters())


def test_zero_shards_model_states_and_1f1b_bounds_activations():
    base = _step("dp=64", "8x8-h100", 64, 1, zero=0).memory[0]
    z3 = _step("dp=64", "8x8-h100", 64, 1, zero=3).memory[0]
    assert z3.weights == pytest.approx(base.weights / 64)
    assert z3.optimizer == pytest.approx(base.optimizer / 64)
    gpipe = _step(schedule="gpipe").memory[0].activations
    one_f = _step(schedule="1f1b").memory[0].activations
    assert one_f == pytest.approx(gpipe * 4 / 8)  # p = 4 micro-batches in flight, not m = 8


def test_recompute_trades_time_for_memory():
    plain, full = _step(), _step(recompute="full")
    assert full.step_seconds > plain.step_seconds
    assert full.memory[0].activations < plain.memory[0].activations / 5


def test_faster_links_never_slow_a_step():
    h100 = _step("dp=16", "2x8-h100", 64, 1)
    h200 = _step("dp=16", "2x8-h200", 64, 1)
    assert h200.step_seconds <= h100.step_seconds


def test_cpu_cluster_runs_on_the_measured_device():
    p = S.simulate_step(
        S.StepConfig(
            S.GPTShape(64, 2, 4, 64, 65), S.Mesh(dp=2), S.Cluster.parse("1x2-cpu"), 8, 1, "fp32"
        )
    )
    assert p.step_seconds > 0 and p.config.cluster.device.name == "cpu"


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"mesh": "dp=4"}, "has 4 ranks"),
        ({"mesh": "dp=4,tp=64"}, "tp=64 must divide"),
        ({"mesh": "dp=32,tp=8", "batch": 100}, "global batch"),
        ({"mesh": "dp=2,pp=128", "cluster": "32x8-h100"}, "pp=128 must divide"),
    ],
)
def test_bad_configs_raise(kw, match):
    with pytest.raises(ConfigError, match=match):
        _step(**{"cluster": "32x8-h100", "micro": 1, **kw})


def test_trace_names_every_lane():
    p = _step()
    trace = build_trace(p.events, 4)
    names = {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in trace["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }
    assert names[(0, 1)] == "compute" and names[(0, 2)] == "communication"
    assert names[(0, 3)] == "blocking communication" and names[(0, 4)] == "pipeline send"
    used = {(e["pid"], e["tid"]) for e in trace["traceEvents"] if e["ph"] == "X"}
    assert {(s, t) for s in range(4) for t in (1, 2, 3)} <= used
