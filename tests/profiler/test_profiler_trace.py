"""``export_chrome_trace``: Trace Event JSON checked strictly, and a checker that can fail.

No trace consumer runs offline here: Perfetto's ``trace_processor`` Python package installs
from PyPI but downloads its native ``trace_processor_shell`` on first use, which needs the
network. So the truth is the Trace Event Format's own rules, encoded in ``validate_trace``;
the second half of this file shows the checker rejecting each kind of broken trace.
"""

from __future__ import annotations

import copy
import json

import pytest

import sparkgrad as sg
from sparkgrad.autodiff.profiler import validate_trace


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    model = sg.nn.Sequential(sg.nn.Linear(8, 4), sg.nn.ReLU(), sg.nn.Linear(4, 2))
    opt = sg.optim.SGD(model.parameters(), lr=0.1)
    x = sg.randn(5, 8)
    with sg.profiler.profile(record_shapes=True) as prof:
        for _ in range(2):
            with sg.profiler.record_function("forward"):
                loss = model(x).sum()
            loss.backward()
            opt.step()
            prof.step()
    path = tmp_path_factory.mktemp("trace") / "t.json"
    prof.export_chrome_trace(path)
    return json.loads(path.read_text()), prof, path


def test_exported_trace_is_valid_and_complete(trace):
    data, prof, path = trace
    counts = validate_trace(data)
    assert counts["X"] == len(prof.events())
    assert not [p for p in path.parent.iterdir() if p.name != "t.json"]  # no temp file left
    names = {e["name"] for e in data["traceEvents"] if e["ph"] == "X"}
    assert {"Linear", "LinearBackward", "ReLU", "Optimizer.step#SGD.step", "forward"} <= names
    linear = next(e for e in data["traceEvents"] if e["name"] == "Linear")
    assert linear["args"]["Input Dims"] == [[5, 8], [4, 8], [4]]
    assert linear["args"]["bytes"] == (5 * 8 + 4 * 8 + 4) * 4
    assert linear["tid"] == 1 and linear["cat"] == "cpu_op"


def test_slices_match_the_events(trace):
    data, prof, _ = trace
    slices = sorted((e["name"], e["ts"], e["dur"]) for e in data["traceEvents"] if e["ph"] == "X")
    events = sorted((e.name, e.time_range_start, e.cpu_time_total) for e in prof.events())
    assert [s[0] for s in slices] == [e[0] for e in events]
    for (_, ts, dur), (_, start, total) in zip(slices, events):  # to the nanosecond
        assert ts == pytest.approx(start, abs=5e-4) and dur == pytest.approx(total, abs=1e-3)


def _base() -> dict:
    meta = [
        {"ph": "M", "name": "process_name", "pid": 0, "tid": 0, "args": {"name": "rank 0"}},
        {"ph": "M", "name": "thread_name", "pid": 0, "tid": 1, "args": {"name": "compute"}},
        {"ph": "M", "name": "thread_name", "pid": 0, "tid": 2, "args": {"name": "comm"}},
    ]
    body = [
        {"ph": "X", "name": "step", "cat": "s", "pid": 0, "tid": 1, "ts": 0.0, "dur": 10.0},
        {"ph": "X", "name": "op", "cat": "s", "pid": 0, "tid": 1, "ts": 1.0, "dur": 2.0},
        {"ph": "X", "name": "send", "cat": "c", "pid": 0, "tid": 2, "ts": 4.0, "dur": 1.0},
        {"ph": "X", "name": "recv", "cat": "c", "pid": 0, "tid": 2, "ts": 6.0, "dur": 2.0},
        {"ph": "s", "name": "p", "cat": "p2p", "id": 1, "pid": 0, "tid": 2, "ts": 4.5},
        {"ph": "f", "name": "p", "cat": "p2p", "id": 1, "pid": 0, "tid": 2, "ts": 7.5, "bp": "e"},
        {"ph": "B", "name": "late", "pid": 0, "tid": 1, "ts": 11.0},
        {"ph": "E", "pid": 0, "tid": 1, "ts": 12.0},
    ]
    return {"traceEvents": meta + body}


def test_a_hand_written_valid_trace_passes():
    assert validate_trace(_base()) == {"M": 3, "X": 4, "s": 1, "f": 1, "B": 1, "E": 1, "flows": 1}


def _events(t):
    return t["traceEvents"]


BROKEN = {
    "negative dur": (lambda ev: ev[3].update(dur=-1.0), "dur must be >= 0"),
    "missing ts": (lambda ev: ev[4].pop("ts"), "ts must be a number"),
    "name not a string": (lambda ev: ev[4].update(name=3), "name must be a string"),
    "pid not an integer": (lambda ev: ev[3].update(pid="0"), "pid must be an integer"),
    "unknown phase": (lambda ev: ev[3].update(ph="Q"), "unknown phase"),
    "unnamed process": (lambda ev: ev.pop(0), "pid 0 has no process_name"),
    "unnamed thread": (lambda ev: ev.pop(2), "tid 2 has no thread_name"),
    "E without B": (lambda ev: ev.pop(9), "E at ts 12.0 without a B"),
    "B never ended": (lambda ev: ev.pop(10), "never ended"),
    "flow without f": (lambda ev: ev.pop(8), "expected one s and one f"),
    "flow id twice": (lambda ev: ev.append(dict(ev[7])), "expected one s and one f"),
    "f before s": (lambda ev: ev[8].update(ts=4.2), "before s"),
    "flow end off any slice": (lambda ev: ev[8].update(ts=9.0), "lies on no slice"),
    "bad binding point": (lambda ev: ev[8].update(bp="x"), "bp must be 'e'"),
    "overlap without nesting": (lambda ev: ev[4].update(dur=20.0), "without nesting"),
    "metadata without name": (lambda ev: ev[0]["args"].pop("name"), "args.name"),
    "not a list": (None, "traceEvents"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_the_checker_rejects_broken_traces(case):
    edit, message = BROKEN[case]
    t = copy.deepcopy(_base())
    if edit is None:
        t = {"events": []}
    else:
        edit(_events(t))
    with pytest.raises(ValueError, match=message):
        validate_trace(t)


def test_nan_cannot_be_written(tmp_path):
    from sparkgrad.autodiff.profiler.trace import write_json_atomic

    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "x.json", {"traceEvents": [{"ts": float("nan")}]})
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary
