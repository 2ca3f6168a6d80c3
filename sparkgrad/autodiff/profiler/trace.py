"""Chrome's Trace Event format: what ``prof.export_chrome_trace(path)`` writes, and a checker.

The format (the "JSON Object Format" of the Trace Event Format document, which Perfetto and
``chrome://tracing`` both read) is ``{"traceEvents": [event, ...], ...}``. The events used here:

=====  =====================================================================================
``ph``  meaning and required fields (besides ``ph``, ``name``, ``pid``, ``tid``)
=====  =====================================================================================
``X``  a complete slice: ``ts`` and ``dur`` (microseconds, ``dur >= 0``); ``args`` optional
``B``  ``E``  a slice given as begin and end: ``ts``; each ``E`` closes the last open ``B``
       of its thread (not written here; the checker accepts them, matched)
``s``  ``f``  a flow arrow's start and finish: ``ts``, ``id``, ``cat``; an ``s`` binds to
       the slice around its ``ts``, an ``f`` with ``"bp": "e"`` to the slice around its ``ts``
``M``  metadata: ``process_name`` / ``thread_name`` (``args.name``), ``process_sort_index``
       / ``thread_sort_index`` (``args.sort_index``)
=====  =====================================================================================

One process per rank (``pid`` = rank), two threads in it: ``tid`` 1 "compute" (ops, backward,
optimizer steps, your ``record_function`` labels) and ``tid`` 2 "communication"
(collectives, send/recv). Files are written to a temporary name and renamed, so a reader
never sees half a trace.

:func:`validate_trace` checks a trace strictly against those rules (and that every slice on
a thread nests inside the one around it, as a viewer draws them) and raises
``ValueError`` listing every problem.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from sparkgrad.autodiff.profiler.hooks import COMM, COMPUTE

TIDS = {COMPUTE: 1, COMM: 2}
THREAD_NAMES = {1: "compute", 2: "communication"}
METADATA = {"process_name", "thread_name", "process_sort_index", "thread_sort_index"}
PHASES = {"X", "B", "E", "s", "t", "f", "M", "i", "I", "C"}
EPS_US = 1e-3  # one nanosecond: the rounding a float microsecond may carry


def process_metadata(pid: int, name: str, sort_index: int) -> list[dict]:
    """The ``M`` events naming a process and its two threads."""
    out = [
        {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": name}},
        {"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
         "args": {"sort_index": sort_index}},
    ]  # fmt: skip
    for tid, thread in THREAD_NAMES.items():
        out.append(
            {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": thread}}
        )
        out.append(
            {"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid,
             "args": {"sort_index": tid}}
        )  # fmt: skip
    return out


def slice_event(event: Any, pid: int) -> dict:
    """One recorded span as an ``X`` event (``event``: a :class:`FunctionEvent`)."""
    args: dict[str, Any] = dict(event.args)
    if event.input_shapes is not None and event.track == COMPUTE:
        args["Input Dims"] = event.input_shapes
    if event.nbytes and "bytes" not in args:
        args["bytes"] = event.nbytes
    return {
        "ph": "X",
        "cat": event.cat,
        "name": event.name,
        "pid": pid,
        "tid": TIDS[event.track],
        **rounded_span(event.time_range_start, event.time_range_end),
        "args": args,
    }


def rounded_span(start_us: float, end_us: float) -> dict:
    """``ts`` and ``dur`` to the nanosecond, rounding the *ends* (not the duration), so a
    slice that nested inside another, or touched it, still does."""
    ts = round(start_us, 3)
    return {"ts": ts, "dur": round(round(end_us, 3) - ts, 3)}


def build_trace(events: list, pid: int, process: str, other: dict | None = None) -> dict:
    """A whole trace of one process: metadata, then the slices in start order."""
    body = [slice_event(e, pid) for e in events]
    return {
        "traceEvents": process_metadata(pid, process, pid) + body,
        "displayTimeUnit": "ms",
        "otherData": dict(other or {}),
    }


def write_json_atomic(path: str | os.PathLike, payload: dict) -> Path:
    """Write ``payload`` as JSON to ``path`` via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(payload, f, allow_nan=False, separators=(",", ":"))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_trace(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# -- the checker ------------------------------------------------------------------------------
def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_event(i: int, e: Any, problems: list[str]) -> None:
    if not isinstance(e, dict):
        problems.append(f"event {i}: expected an object, found {type(e).__name__}")
        return
    ph = e.get("ph")
    if ph not in PHASES:
        problems.append(f"event {i}: unknown phase ph={ph!r}")
        return
    if ph != "E" and not isinstance(e.get("name"), str):
        problems.append(f"event {i} ({ph}): name must be a string, found {e.get('name')!r}")
    for key in ("pid", "tid"):
        if not isinstance(e.get(key), int) or isinstance(e.get(key), bool):
            problems.append(f"event {i} ({ph}): {key} must be an integer, found {e.get(key)!r}")
    if ph != "M" and not (_number(e.get("ts")) and e["ts"] >= 0):
        problems.append(f"event {i} ({ph}): ts must be a number >= 0, found {e.get('ts')!r}")
    if ph == "X" and not (_number(e.get("dur")) and e["dur"] >= 0):
        problems.append(f"event {i} (X {e.get('name')}): dur must be >= 0, found {e.get('dur')!r}")
    if ph in "stf":
        if not isinstance(e.get("id"), (int, str)) or isinstance(e.get("id"), bool):
            problems.append(f"event {i} (flow {ph}): id must be an integer or string")
        if not isinstance(e.get("cat"), str):
            problems.append(f"event {i} (flow {ph}): cat must be a string")
        if ph == "f" and e.get("bp", "e") != "e":
            problems.append(f"event {i} (flow f): bp must be 'e', found {e.get('bp')!r}")
    if "args" in e and not isinstance(e["args"], dict):
        problems.append(f"event {i} ({ph}): args must be an object")
    if ph == "M":
        args = e.get("args") if isinstance(e.get("args"), dict) else {}
        if e.get("name") not in METADATA:
            problems.append(f"event {i} (M): unknown metadata {e.get('name')!r}")
        elif e["name"].endswith("_name") and not isinstance(args.get("name"), str):
            problems.append(f"event {i} (M {e['name']}): args.name must be a string")
        elif e["name"].endswith("_sort_index") and not isinstance(args.get("sort_index"), int):
            problems.append(f"event {i} (M {e['name']}): args.sort_index must be an integer")


def _check_nesting(slices: dict, problems: list[str]) -> None:
    """On each thread, every slice lies inside the slice around it or after it ends."""
    for (pid, tid), spans in slices.items():
        stack: list[tuple[float, float, str]] = []
        for start, end, name in sorted(spans, key=lambda s: (s[0], -s[1])):
            while stack and start >= stack[-1][1] - EPS_US:
                stack.pop()
            if stack and end > stack[-1][1] + EPS_US:
                problems.append(
                    f"pid {pid} tid {tid}: slice {name!r} [{start}, {end}] overlaps "
                    f"{stack[-1][2]!r} [{stack[-1][0]}, {stack[-1][1]}] without nesting"
                )
            stack.append((start, end, name))


def _inside(slices: list, ts: float) -> bool:
    return any(start - EPS_US <= ts <= end + EPS_US for start, end, _ in slices)


def validate_trace(trace: Any) -> dict[str, int]:
    """Check ``trace`` strictly (see the module doc); returns counts per phase.

    Raises ``ValueError`` with every problem found: a missing or mistyped field, a
    negative ``dur``, an unmatched ``B``/``E``, a flow id without both its ``s`` and its
    ``f`` (or whose ends do not lie on slices), a pid or tid with no name, slices that
    overlap without nesting.
    """
    problems: list[str] = []
    events = trace.get("traceEvents") if isinstance(trace, dict) else trace
    if not isinstance(events, list):
        raise ValueError("expected {'traceEvents': [...]} or a list of events")
    for i, e in enumerate(events):
        _check_event(i, e, problems)
    if problems:
        raise ValueError("invalid trace:\n" + "\n".join(problems[:50]))
    counts: dict[str, int] = defaultdict(int)
    named_p, named_t, used_t = set(), set(), set()
    slices: dict[tuple[int, int], list] = defaultdict(list)
    open_b: dict[tuple[int, int], list] = defaultdict(list)
    flows: dict[Any, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for e in events:
        ph, where = e["ph"], (e["pid"], e["tid"])
        counts[ph] += 1
        if ph == "M":
            if e["name"] == "process_name":
                named_p.add(e["pid"])
            elif e["name"] == "thread_name":
                named_t.add(where)
            continue
        used_t.add(where)
        if ph == "X":
            slices[where].append((e["ts"], e["ts"] + e["dur"], e["name"]))
        elif ph == "B":
            open_b[where].append(e)
        elif ph == "E":
            if not open_b[where]:
                problems.append(f"pid {where[0]} tid {where[1]}: E at ts {e['ts']} without a B")
                continue
            b = open_b[where].pop()
            if e.get("name") not in (None, b["name"]) or e["ts"] < b["ts"]:
                problems.append(f"E {e.get('name')!r} at {e['ts']} does not match B {b['name']!r}")
            slices[where].append((b["ts"], e["ts"], b["name"]))
        elif ph in "stf":
            flows[(e["cat"], e["id"])][ph].append(e)
    for where, left in open_b.items():
        problems += [f"pid {where[0]} tid {where[1]}: B {b['name']!r} never ended" for b in left]
    problems += [f"pid {p} has no process_name" for p in sorted({p for p, _ in used_t} - named_p)]
    problems += [f"pid {p} tid {t} has no thread_name" for p, t in sorted(used_t - named_t)]
    for (cat, fid), ends in flows.items():
        if len(ends["s"]) != 1 or len(ends["f"]) != 1:
            problems.append(
                f"flow {cat}/{fid}: expected one s and one f, found {len(ends['s'])} s and "
                f"{len(ends['f'])} f"
            )
            continue
        s, f = ends["s"][0], ends["f"][0]
        if f["ts"] < s["ts"]:
            problems.append(f"flow {cat}/{fid}: f at {f['ts']} before s at {s['ts']}")
        for end in (s, f):
            if not _inside(slices[(end["pid"], end["tid"])], end["ts"]):
                problems.append(
                    f"flow {cat}/{fid}: its {end['ph']} at ts {end['ts']} lies on no slice of "
                    f"pid {end['pid']} tid {end['tid']}"
                )
    _check_nesting(slices, problems)
    if problems:
        raise ValueError("invalid trace:\n" + "\n".join(problems[:50]))
    counts["flows"] = len(flows)
    return dict(counts)
