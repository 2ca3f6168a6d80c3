"""Merge per-rank traces into one view: measured tracks, flow arrows, predicted tracks.

The merged trace has, for every rank ``r``:

- process ``r`` "rank r (measured)": thread "compute" and thread "communication", as the
  rank recorded them;
- process ``1000 + r`` "rank r (predicted on <topology>)": the same run laid out on the
  modelled cluster (:mod:`.predicted`), below the measured ones;
- a flow arrow (``s`` at the send, ``f`` at its recv) for every send/recv pair, on both
  sets of tracks.

**Pairing a send with its recv.** Both ends know the same four numbers without talking:
the group's tag, the sender's and the receiver's (transport) rank, and *n*, the count of
sends from that sender to that receiver in that group so far, which on the receiver is
its count of recvs from that sender (the communicator numbers each direction separately,
and a send and its recv are matched in order, as in MPI). The profiler writes them as
``args.pair = "tag:src->dst#n"`` on both slices; the merge joins equal keys.

**Aligning the clocks.** Every rank starts its profiler right after a barrier, and its ts
0 is that instant (:mod:`sparkgrad.engine.profiling`): the ranks leave a barrier within
about one message latency of each other, so that is the error bound across hosts. When
every trace comes from one host, its ranks share the kernel's monotonic clock (Python's
``perf_counter``), so the merge corrects the remaining skew exactly from each trace's
``origin_perf_ns`` and reports the skew it removed (``otherData.clock``).
"""

from __future__ import annotations

from sparkgrad.autodiff.profiler.predicted import predicted_events
from sparkgrad.autodiff.profiler.trace import process_metadata

PREDICTED_PID = 1000  # predicted process of rank r: PREDICTED_PID + r


def _info(trace: dict) -> dict:
    return dict(trace.get("otherData", {}).get("sparkgrad", {}))


def align_offsets(infos: list[dict]) -> tuple[list[float], str, float]:
    """Microseconds to add to each trace's ts, the method, and the skew it removed."""
    origins = [i.get("origin_perf_ns") for i in infos]
    hosts = {i.get("host") for i in infos}
    if len(hosts) == 1 and all(isinstance(o, int) for o in origins):
        first = min(origins)
        offsets = [(o - first) / 1e3 for o in origins]
        return offsets, "one host: shared monotonic clock (perf_counter)", max(offsets)
    return [0.0] * len(infos), "barrier exit (ts 0 = each rank leaving the same barrier)", 0.0


def _flows(events: list[dict], base_id: int) -> list[dict]:
    """An ``s``/``f`` pair for each send/recv whose two slices are both present."""
    ends: dict[tuple[int, str], dict[str, dict]] = {}
    for e in events:
        pair = e.get("args", {}).get("pair")
        if e.get("ph") == "X" and pair is not None:
            side = "s" if e["args"]["collective"] == "send" else "f"
            ends.setdefault((e["pid"] >= PREDICTED_PID, pair), {})[side] = e
    out, next_id = [], base_id
    for (_, pair), both in sorted(ends.items()):
        if len(both) != 2:
            continue
        send, recv = both["s"], both["f"]
        s_ts = send["ts"] + min(send["dur"] / 4, 0.5)  # inside the send slice
        f_ts = recv["ts"] + recv["dur"] - min(recv["dur"] / 4, 0.5)  # inside the recv slice
        common = {"cat": "p2p", "name": f"send/recv {pair}", "id": next_id}
        out.append(dict(common, ph="s", ts=round(s_ts, 3), pid=send["pid"], tid=send["tid"]))
        out.append(
            dict(common, ph="f", bp="e", ts=round(f_ts, 3), pid=recv["pid"], tid=recv["tid"])
        )
        next_id += 1
    return out


def merge_traces(traces: list[dict], predicted: bool = True) -> dict:
    """One trace from per-rank traces (each with ``otherData.sparkgrad.rank``)."""
    infos = [_info(t) for t in traces]
    offsets, method, skew = align_offsets(infos)
    ranks = [i.get("rank") if i.get("rank") is not None else n for n, i in enumerate(infos)]
    measured: list[dict] = []
    topology = ""
    for trace, rank, offset in zip(traces, ranks, offsets):
        for e in trace.get("traceEvents", []):
            if e.get("ph") == "M":
                continue
            moved = dict(e, pid=rank)
            if "ts" in moved:
                moved["ts"] = round(moved["ts"] + offset, 3)
            measured.append(moved)
            topology = topology or e.get("args", {}).get("topology", "")
    meta: list[dict] = []
    for rank in ranks:
        meta += process_metadata(rank, f"rank {rank} (measured)", rank)
    events = list(measured)
    if predicted:
        pid_of = {r: PREDICTED_PID + r for r in ranks}
        events += predicted_events(measured, pid_of)
        for rank in ranks:
            name = f"rank {rank} (predicted on {topology or 'the modelled cluster'})"
            meta += process_metadata(pid_of[rank], name, pid_of[rank])
    events += _flows(events, base_id=1)
    return {
        "traceEvents": meta + sorted(events, key=lambda e: (e["pid"], e["tid"], e["ts"])),
        "displayTimeUnit": "ms",
        "otherData": {
            "ranks": ranks,
            "clock": {"method": method, "skew_removed_us": skew, "offsets_us": offsets},
            "topology": topology,
            "per_rank": infos,
        },
    }
