"""The MLP workload against the real model and strategies, and the shared-core model.

Exact checks: the shapes-only MLP has ``build_mlp``'s parameters, its stages are
``partition``'s, its collectives move the bytes the strategies' process groups record, and
the shared-core rule stretches exactly the strategies whose ranks compute at once.
"""

import numpy as np
import pytest

import sparkgrad as sg
import sparkgrad.distributed as dist
from sparkgrad.benchmark.report.scaling import model_scaling, simulated_compute_s
from sparkgrad.comms.model.calibrate import calibrate
from sparkgrad.engine.model import build_optimizer
from sparkgrad.errors import ConfigError
from sparkgrad.models.mlp import build_mlp
from sparkgrad.parallel.pipeline.partition import partition
from sparkgrad.parallel.registry import make_strategy
from sparkgrad.simulate.devices import Device
from sparkgrad.simulate.local import CASES, LocalCosts, predict_local
from sparkgrad.simulate.mlp import MLPShape, Work, mlp_plan, stages_of
from sparkgrad.simulate.schedule import run_step

HIDDEN = (48, 32, 16)


def test_parameters_equal_build_mlp():
    model = build_mlp(HIDDEN)
    assert MLPShape(HIDDEN, 8).parameters == sum(p.array.size for p in model.parameters())


@pytest.mark.parametrize("stages", [1, 2, 3, 4])
def test_stages_are_partitions(stages):
    ranges = partition(build_mlp(HIDDEN), stages)
    linears = [sum(1 for k in range(a, b) if k % 2 == 0) for a, b in ranges]
    assert [len(s) for s in stages_of(MLPShape(HIDDEN, 8), stages)] == linears


def test_single_plan_counts_forward_and_backward_flops():
    shape, seen = MLPShape(HIDDEN, 8), []

    def compute(ops):
        seen.extend(ops)
        return 0.0

    mlp_plan("single", shape, 1, compute, lambda c, n: 0.0)
    b, io = 8, [i * o for i, o in shape.layers]
    want = 2 * b * sum(io) + 4 * b * sum(io) - 2 * b * io[0]  # the input needs no grad
    assert sum(op.flops for op in seen) == want


def _recorded(strategy, options, batch=16, world=2):
    def rank_fn(rank, n):
        dist.init_process_group("threads", rank=rank, world_size=n)
        try:
            s = make_strategy(
                strategy,
                build_mlp(HIDDEN),
                lambda ps: build_optimizer("adam", ps, 1e-3),
                sg.nn.CrossEntropyLoss(),
                **options,
            )
            per = batch // s.data_parallel_size
            r = s.data_parallel_rank
            x = np.ones((batch, 784), np.float32)
            y = np.zeros(batch, np.int64)
            pg = dist.state.default_group().pg
            pg.reset_history()
            s.train_step(
                sg.tensor(x[r * per : (r + 1) * per]), sg.tensor(y[r * per : (r + 1) * per])
            )
            return sorted((c["collective"], c["nbytes"]) for c in pg.calls())
        finally:
            dist.destroy_process_group()

    return dist.spawn(rank_fn, world)[0]


@pytest.mark.parametrize(
    "strategy,options",
    [("data", {}), ("zero2", {}), ("tensor", {}), ("pipeline", {"micro_batches": 2})],
)
def test_collectives_match_the_strategies_records(strategy, options):
    planned = []

    def comm(collective, nbytes):
        planned.append((collective, int(nbytes)))
        return 1.0

    m = options.get("micro_batches", 1)
    plan, _ = mlp_plan(strategy, MLPShape(HIDDEN, 16), 2, lambda ops: 1.0, comm, m)
    run_step(plan)  # the buckets' reduce calls are costed while the schedule runs
    recorded = _recorded(strategy, options)
    if strategy == "pipeline":  # one costed send stands for every send and recv
        sends = {n for c, n in recorded if c in ("send", "recv")}
        assert sends == {n for c, n in planned if c == "send"}
        return
    big = sorted(x for x in recorded if x[1] > 8)
    assert sorted(set(x for x in planned if x[1] > 8)) == sorted(set(big))


def _costs():
    fit = calibrate([(1024, 1e-4), (1 << 20, 1e-3)])
    return LocalCosts(
        Device("fake", dict.fromkeys(("fp32", "tf32", "bf16", "fp16"), 1e11), 5e10, 8e9),
        {"linear": 3e-5, "relu": 1e-5, "loss": 4e-5, "adam": 2e-5, "step": 4e-5},
        {
            c: ("ring" if c != "all_reduce" else "halving_doubling", fit)
            for c in ("all_reduce", "all_gather", "reduce_scatter", "send")
        },
        cores=2,
        world=4,
    )


def test_shared_cores_stretch_concurrent_ranks_only():
    costs, shape = _costs(), MLPShape((256, 256, 256), 256)
    for _label, strategy, options in CASES:
        w = 1 if strategy == "single" else 4
        p = predict_local(costs, strategy, shape, w, options, 8)
        assert p["predicted_s"] >= max(p["shared_s"], p["gil_floor_s"])
        assert p["shared_s"] >= p["alone_s"] - 1e-12  # sharing never speeds a step up
        assert p["stretch"] == (1.0 if strategy in ("single", "model") else 2.0)


def test_python_overhead_is_counted_per_call():
    costs = _costs()
    assert costs.compute([Work("adam", "adam", 0, 0, calls=8)], "python") == 8 * 2e-5
    assert costs.compute([Work("mm", "linear", 1e11, 0)], "arrays") == pytest.approx(1.0)


def test_unknown_strategy_is_refused():
    with pytest.raises(ConfigError, match="unknown strategy"):
        mlp_plan("hogwild", MLPShape(HIDDEN, 8), 2, lambda ops: 0.0, lambda c, n: 0.0)


def test_scaling_compute_is_a_modelled_gpu_step_not_the_cpu_one():
    """An H100 does the report's MLP step in ~0.1 ms (launch-bound), so crossing nodes costs
    a real share of the step: no more ~99% efficiency at 64 GPUs."""
    hidden = (256, 256)
    c128, c1024 = simulated_compute_s(hidden, 128), simulated_compute_s(hidden, 1024)
    assert 10e-6 < c128 < 1e-3 and c1024 > c128
    points = {p.world_size: p for p in model_scaling(c128, 4 * 200_000, 128, "8x8-h100")}
    assert points[64].efficiency < 0.9


@pytest.mark.slow
def test_validate_local_predicts_and_measures_every_row():
    """The local validation runs end to end: a positive prediction and measurement per row.
    No timed assertion (house rule): how close they come is reported by
    ``python -m sparkgrad.simulate --validate-local`` and tabulated in docs/simulator.md."""
    from sparkgrad.simulate.local import validate_local

    rows = validate_local(repeats=1, labels=("single", "model"))[:-1]
    assert [r["label"] for r in rows] == ["single", "model"]
    for r in rows:
        assert r["predicted_s"] > 0 and r["measured_s"] > 0, r
        assert r["error"] == pytest.approx(r["predicted_s"] / r["measured_s"] - 1, abs=1e-9)
