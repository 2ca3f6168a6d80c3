"""``sg.profiler``: what it records, and ``key_averages().table()`` in PyTorch's shape.

Truths: programs whose ops we count by hand (k iterations of a known chain), PyTorch's own
profiler table (same header and separators for the same column widths), PyTorch's time
formatting and schedule, and the identity "self times add up to the profiled time".
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.autograd.profiler_util as torch_util

import sparkgrad as sg
from sparkgrad.autodiff.profiler import hooks
from sparkgrad.autodiff.profiler.events import format_time

LONG = "a_label_long_enough_that_both_tables_cap_the_name_column_at_55"


def _chain(k: int):
    """k forward+backward passes of ((a @ b).relu() * c).sum(): 4 ops and 4 backward each."""
    a = sg.randn(3, 8, requires_grad=True)
    b = sg.randn(8, 4, requires_grad=True)
    c = sg.randn(3, 4)
    with sg.profiler.profile(record_shapes=True) as prof:
        for _ in range(k):
            ((a @ b).relu() * c).sum().backward()
    return prof


def _rows(table: str) -> dict[str, list[str]]:
    """Name -> the other columns of each row of a table (split on 2+ spaces)."""
    import re

    lines = table.splitlines()
    body = lines[3 : lines.index(lines[0], 3)]
    return {cols[0]: cols[1:] for cols in (re.split(r"\s{2,}", line.strip()) for line in body)}


def test_every_op_and_backward_is_counted():
    prof = _chain(5)
    counts = {e.key: e.count for e in prof.key_averages()}
    expected = ["MatMul", "ReLU", "Mul", "Sum"]
    assert counts == {name: 5 for name in expected + [f"{n}Backward" for n in expected]}


def test_table_numbers_match_the_events():
    prof = _chain(3)
    averages = prof.key_averages()
    rows = _rows(averages.table(sort_by="self_cpu_time_total", row_limit=20))
    assert set(rows) == {e.key for e in averages}
    total = sum(e.self_cpu_time_total for e in averages)
    shares = 0.0
    for e in averages:
        self_pct, self_t, total_pct, total_t, avg, calls = rows[e.key]
        assert int(calls) == e.count == 3
        assert self_t == format_time(e.self_cpu_time_total)
        assert total_t == format_time(e.cpu_time_total)
        assert avg == format_time(e.cpu_time_total / e.count)
        assert self_pct == f"{e.self_cpu_time_total * 100 / total:.2f}%"
        shares += float(self_pct[:-1])
    assert shares == pytest.approx(100.0, abs=0.05)


def test_self_time_never_exceeds_total_and_adds_up_to_the_outer_label():
    a = sg.randn(16, 16, requires_grad=True)
    with sg.profiler.profile() as prof:
        with sg.profiler.record_function("outer"):
            for _ in range(3):
                with sg.profiler.record_function("inner"):
                    (a @ a).tanh().sum().backward()
    events = prof.events()
    for e in list(events) + list(prof.key_averages()):
        assert 0 <= e.self_cpu_time_total <= e.cpu_time_total + 1e-9, e
    outer = next(e for e in events if e.name == "outer")
    # every span lies inside "outer", so the self times partition its duration exactly
    assert sum(e.self_cpu_time_total for e in events) == pytest.approx(outer.cpu_time_total)
    inner = [e for e in events if e.name == "inner"]
    assert len(inner) == 3
    children = sum(i.cpu_time_total for i in inner)  # everything else runs inside "inner"
    assert outer.self_cpu_time_total == pytest.approx(outer.cpu_time_total - children)


def test_optimizer_steps_and_profiler_steps_are_recorded():
    model = sg.nn.Sequential(sg.nn.Linear(8, 4), sg.nn.ReLU(), sg.nn.Linear(4, 2))
    opt = sg.optim.Adam(model.parameters(), lr=0.01)
    x, y = sg.randn(5, 8), sg.tensor(np.array([0, 1, 1, 0, 1]))
    with sg.profiler.profile() as prof:
        for _ in range(4):
            opt.zero_grad()
            sg.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            prof.step()
    counts = {e.key: e.count for e in prof.key_averages()}
    assert counts["Optimizer.step#Adam.step"] == 4
    assert counts["Linear"] == 8 and counts["LinearBackward"] == 8
    # PyTorch's naming: ProfilerStep#0..3 closed by step(), #4 open until the block ends
    assert [k for k in counts if k.startswith("ProfilerStep#")] == [
        f"ProfilerStep#{i}" for i in range(5)
    ]


def test_shapes_and_bytes_of_the_inputs():
    a = sg.randn(3, 8, requires_grad=True)
    b = sg.randn(8, 4, requires_grad=True)
    with sg.profiler.profile(record_shapes=True) as prof:
        (a @ b).sum().backward()
    by_name = {e.name: e for e in prof.events()}
    assert by_name["MatMul"].input_shapes == [[3, 8], [8, 4]]
    assert by_name["MatMul"].nbytes == a.detach().numpy().nbytes + b.detach().numpy().nbytes == 224
    assert by_name["Sum"].input_shapes == [[3, 4]]
    assert by_name["MatMulBackward"].input_shapes == [[3, 4]]  # the gradient arriving
    grouped = prof.key_averages(group_by_input_shape=True)
    table = grouped.table(sort_by="cpu_time_total", row_limit=10)
    header = table.splitlines()[1]
    assert header.rstrip().endswith("Input Shapes")
    assert "[[3, 8], [8, 4]]" in table
    # without record_shapes: no shapes, no column
    with sg.profiler.profile() as plain:
        (a @ b).sum()
    assert all(e.input_shapes is None for e in plain.events())
    assert "Input Shapes" not in plain.key_averages().table()


def test_header_and_separators_equal_pytorchs():
    """Same columns, widths, alignment and footer as torch's _build_table."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as tprof:
        with torch.profiler.record_function(LONG):
            torch.ones(3).sum()
    with sg.profiler.profile() as prof:
        with sg.profiler.record_function(LONG):
            sg.ones(3).sum()
    ours = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=5).splitlines()
    theirs = tprof.key_averages().table(sort_by="self_cpu_time_total", row_limit=5).splitlines()
    assert ours[:3] == theirs[:3]  # separator, header row, separator
    assert ours[-2] == theirs[-2]  # closing separator
    assert ours[-1].startswith("Self CPU time total: ") and theirs[-1].startswith(
        "Self CPU time total: "
    )
    # a name longer than the column is cut with "..." at the same place
    assert [line for line in ours if "..." in line][0][:55] == [
        line for line in theirs if "..." in line
    ][0][:55]


@pytest.mark.parametrize("us", [0.0, 0.5, 999.999, 1000.0, 12345.678, 999999.0, 3.2e6])
def test_time_format_is_pytorchs(us):
    assert format_time(us) == torch_util._format_time(us)


def test_sort_and_row_limit():
    prof = _chain(2)
    table = prof.key_averages().table(sort_by="cpu_time_total", row_limit=3)
    rows = _rows(table)
    assert len(rows) == 3
    averages = sorted(prof.key_averages(), key=lambda e: e.cpu_time_total, reverse=True)
    assert list(rows) == [e.key for e in averages[:3]]
    with pytest.raises(AttributeError, match="sort_by"):
        prof.key_averages().table(sort_by="cuda_memory_usage")


def test_schedule_matches_pytorchs():
    kwargs = dict(skip_first=1, wait=1, warmup=1, active=2, repeat=2)
    ours, theirs = sg.profiler.schedule(**kwargs), torch.profiler.schedule(**kwargs)
    assert [ours(i).name for i in range(14)] == [theirs(i).name for i in range(14)]


def test_schedule_records_only_active_steps_and_calls_on_trace_ready():
    a = sg.randn(4, 4, requires_grad=True)
    ready = []

    def on_ready(p):
        ready.append(sorted(e.key for e in p.events() if e.key.startswith("ProfilerStep")))

    sched = sg.profiler.schedule(wait=1, warmup=1, active=2, repeat=1)
    with sg.profiler.profile(schedule=sched, on_trace_ready=on_ready) as prof:
        for _ in range(6):
            (a * a).sum().backward()
            prof.step()
    assert ready == [["ProfilerStep#2", "ProfilerStep#3"]]
    assert {e.key: e.count for e in prof.key_averages()}["Mul"] == 2


def test_off_means_off():
    a = sg.randn(4, 4, requires_grad=True)
    with sg.profiler.profile() as prof:
        (a * a).sum()
    assert hooks.active is False
    (a + a).sum().backward()  # after the block: not recorded
    assert "Add" not in {e.key for e in prof.events()}
    with pytest.raises(ValueError, match="ProfilerActivity"):
        sg.profiler.profile(activities=["cpu"])
