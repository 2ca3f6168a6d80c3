"""The same run on the modelled cluster: each rank's measured timeline, with every
collective and send/recv taking the cost model's predicted time instead of the measured one.

What is modelled, and what is not:

- **Compute** keeps its measured duration (the cost model knows links, not kernels): the
  time between two communication calls of a rank is the same on the predicted tracks.
- **A collective** starts when the *last* rank of its group reaches it (the others wait:
  a "wait for peers" slice) and lasts ``predicted_us`` — what
  :func:`sparkgrad.comms.model.predict` gave for its algorithm and bytes on the
  modelled topology (the communicator stores it with every call; the sim clock adds the
  same numbers up).
- **send** is eager, as sparkgrad's is (it returns once the bytes are handed over): it
  lasts ``predicted_us`` from when its rank is ready. **recv** ends ``predicted_us`` after
  both ends are ready (``max(recv ready, send ready)``).

Each rank is a list of its communication calls in order; a discrete-event pass resolves
them: a send at once, a recv once its send's start is known, a collective once every
member has reached it. If nothing can move (a trace is missing, or the calls do not match)
the earliest stuck call is resolved on its own and marked ``"unsynchronised": true``.

Every measured timestamp ``t`` of a rank then maps to the predicted time ``P(t)``: shifted
by the accumulated difference between a gap's predicted and measured start, and linearly
squeezed or stretched inside a communication call; ``P`` is monotonic, so slices that
nested still nest.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.profiler.trace import rounded_span

WAIT = "wait for peers"


def _comm_key(e: dict) -> Any:
    a = e["args"]
    return ("p2p", a["pair"]) if "pair" in a else ("coll", a["tag"], a["seq"], a["collective"])


class _Rank:
    def __init__(self, rank: int, comms: list[dict]) -> None:
        self.rank, self.comms = rank, comms
        self.i = 0
        self.delta = 0.0  # predicted - measured, in the current gap
        self.resolved: list[tuple[float, float, float, bool]] = []  # ready, start, end, unsync

    def done(self) -> bool:
        return self.i >= len(self.comms)

    def next(self) -> dict:
        return self.comms[self.i]

    def ready(self) -> float:
        return self.next()["ts"] + self.delta

    def resolve(self, start: float, end: float, unsync: bool = False) -> None:
        e = self.next()
        self.resolved.append((self.ready(), start, end, unsync))
        self.delta = end - (e["ts"] + e["dur"])
        self.i += 1


def simulate(comms: dict[int, list[dict]]) -> dict[int, list[tuple[float, float, float, bool]]]:
    """``rank -> [(ready, start, end, unsynchronised)]`` per communication call (microseconds).

    ``comms``: each rank's communication ``X`` events (``args`` as the profiler writes
    them: collective, tag, seq, ranks, predicted_us, and ``pair`` for send/recv), in order.
    """
    ranks = {r: _Rank(r, sorted(es, key=lambda e: e["ts"])) for r, es in comms.items()}
    sent = {
        e["args"]["pair"]
        for es in comms.values()
        for e in es
        if "pair" in e["args"] and e["args"]["collective"] == "send"
    }
    sends: dict[str, float] = {}  # pair -> the send's predicted start
    while any(not s.done() for s in ranks.values()):
        moved = False
        for state in ranks.values():
            while not state.done():
                e, ready = state.next(), state.ready()
                a, pred = e["args"], float(e["args"]["predicted_us"])
                if "pair" in a and a["collective"] == "send":
                    sends[a["pair"]] = ready
                    state.resolve(ready, ready + pred)
                elif "pair" in a:  # a recv
                    if a["pair"] in sends:
                        state.resolve(ready, max(ready, sends[a["pair"]]) + pred)
                    elif a["pair"] not in sent:  # its sender was not traced
                        state.resolve(ready, ready + pred, unsync=True)
                    else:
                        break
                else:
                    key = _comm_key(e)
                    members = [ranks[r] for r in a["ranks"] if r in ranks]
                    if not all(not m.done() and _comm_key(m.next()) == key for m in members):
                        break
                    start = max(m.ready() for m in members)
                    for m in members:
                        m.resolve(start, start + pred)
                moved = True
        if not moved:  # stuck: resolve the earliest waiting call alone
            stuck = min((s for s in ranks.values() if not s.done()), key=lambda s: s.ready())
            a, ready = stuck.next()["args"], stuck.ready()
            if a["collective"] == "send":
                sends[a["pair"]] = ready
            stuck.resolve(ready, ready + float(a["predicted_us"]), unsync=True)
    return {r: s.resolved for r, s in ranks.items()}


def time_map(comms: list[dict], resolved: list[tuple[float, float, float, bool]]) -> Any:
    """``P(t)`` for one rank: measured microseconds to predicted ones (see the module doc)."""
    pieces = []  # (measured start, measured end, predicted start, predicted end) of each call
    for e, (ready, _start, end, _u) in zip(comms, resolved):
        pieces.append((e["ts"], e["ts"] + e["dur"], ready, end))

    def p(t: float) -> float:
        delta = 0.0
        for m0, m1, p0, p1 in pieces:
            if t < m0:
                return t + delta
            if t <= m1:
                return p0 + (p1 - p0) * ((t - m0) / (m1 - m0) if m1 > m0 else 1.0)
            delta = p1 - m1
        return t + delta

    return p


def predicted_events(events: list[dict], pid_of: dict[int, int]) -> list[dict]:
    """The ``X`` events of the predicted tracks, from the measured ``X`` events of all ranks.

    ``events``: measured slices (``pid`` = rank; ``tid`` 2 = communication);
    ``pid_of``: rank -> the pid of its predicted process.
    """
    by_rank: dict[int, list[dict]] = {r: [] for r in pid_of}
    comms: dict[int, list[dict]] = {r: [] for r in pid_of}
    for e in events:
        if e.get("ph") == "X" and e["pid"] in by_rank:
            by_rank[e["pid"]].append(e)
            if e["tid"] == 2 and "predicted_us" in e.get("args", {}):
                comms[e["pid"]].append(e)
    for r in comms:
        comms[r].sort(key=lambda e: e["ts"])
    resolved = simulate(comms)
    out: list[dict] = []
    for r, slices in by_rank.items():
        p = time_map(comms[r], resolved[r])
        calls = {id(e): res for e, res in zip(comms[r], resolved[r])}
        for e in slices:
            if id(e) in calls:
                out += _comm_slices(e, calls[id(e)], pid_of[r])
                continue
            if e["tid"] == 2:
                continue
            start, end = p(e["ts"]), p(e["ts"] + e["dur"])
            out.append(dict(e, pid=pid_of[r], **rounded_span(start, end)))
    return out


def _comm_slices(e: dict, res: tuple[float, float, float, bool], pid: int) -> list[dict]:
    ready, _start, end, unsync = res
    pred = float(e["args"]["predicted_us"])
    begin = max(ready, end - pred)
    args = dict(e["args"], measured_us=round(e["dur"], 3))
    if unsync:
        args["unsynchronised"] = True
    out = []
    if begin - ready > 1e-3:
        out.append(
            {"ph": "X", "cat": "wait", "name": WAIT, "pid": pid, "tid": 2,
             **rounded_span(ready, begin), "args": {"for": e["name"]}}
        )  # fmt: skip
    out.append(dict(e, pid=pid, **rounded_span(begin, end), args=args))
    return out
