"""The step benchmark's profiler line: counts checked against the profiler's own record."""

from __future__ import annotations

import numpy as np

import sparkgrad as sg
from sparkgrad.autodiff.profiler import hooks
from sparkgrad.benchmark import profiler_overhead


def _mlp_step():
    model = sg.nn.Sequential(sg.nn.Linear(8, 16), sg.nn.ReLU(), sg.nn.Linear(16, 3))
    opt = sg.optim.SGD(model.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    x, y = sg.tensor(rng.random((4, 8), dtype=np.float32)), sg.tensor(rng.integers(0, 3, 4))

    def step():
        opt.zero_grad()
        sg.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def test_the_hooked_places_of_a_step_are_its_forward_ops_backward_nodes_and_optimizer_step():
    """2 linears + relu + cross-entropy forward, as many backward nodes, one optimizer
    step: the count the overhead line multiplies is the profiler's own event list, and it
    is neither zero nor wildly off the graph's size."""
    reads = profiler_overhead.spans_per_step(_mlp_step())
    with sg.profiler.profile() as prof:
        _mlp_step()()
    names = [e.name for e in prof.events()]
    assert reads == len(names)
    assert any(n.endswith("Backward") for n in names) and any("step" in n for n in names)
    assert 8 <= reads <= 40, names


def test_measure_reports_a_positive_step_and_leaves_the_profiler_off():
    m = profiler_overhead.measure(_mlp_step(), steps=2, repeats=2)
    assert not hooks.active
    assert m["step_ms_profiler_off"] > 0 and m["step_ms_profiler_on"] > 0
    assert m["profiler_off_cost_ms"] == m["flag_reads_per_step"] * m["ns_per_read"] / 1e6
    assert 0 <= m["ns_per_read"] < 1000  # one attribute read, far below a microsecond
    assert "flag reads per step" in profiler_overhead.format_line(m)
