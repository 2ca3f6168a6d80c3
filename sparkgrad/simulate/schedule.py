"""The step as the strategies run it: compute and communication on three lanes per stage.

One representative rank per pipeline stage (every data-, tensor- and context-parallel
rank of a stage does the same work at the same time) runs on three lanes:

- ``compute``   the kernels, one after another;
- ``blocking``  communication the next kernel waits for: tensor-parallel all-reduces (on
                the critical path, as in Megatron without ``--tp-comm-overlap``),
                context-parallel gathers, and pipeline sends;
- ``async``     communication that overlaps compute: DDP's gradient buckets (all-reduced
                during the backward of the last micro-batch, as ``no_sync`` accumulation
                does), ZeRO's reduce-scatters and ZeRO-3's per-layer all-gathers
                (prefetched one layer ahead).

Each stage walks its pipeline schedule (:data:`sparkgrad.parallel.pipeline.schedules.SCHEDULES`:
GPipe or 1F1B); ``F(s, i)`` starts once ``F(s-1, i)`` ended and its activations arrived,
``B(s, i)`` once ``B(s+1, i)`` ended and its gradient arrived -- the same rule as
:func:`~sparkgrad.parallel.pipeline.schedules.simulate`, so with free communication the
idle share is that function's bubble. A lane never runs two things at once, so overlap
can hide communication behind compute but never make the step shorter than either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sparkgrad.errors import ConfigError
from sparkgrad.parallel.pipeline.schedules import SCHEDULES

Segment = tuple[str, str, float]  # (lane "compute" | "blocking", name, seconds)


@dataclass(frozen=True)
class Event:
    """One slice of the predicted timeline: ``stage``'s ``lane``, from ``start`` for ``seconds``."""

    stage: int
    lane: str
    name: str
    start: float
    seconds: float
    category: str


@dataclass
class StagePlan:
    """What one stage runs per micro-batch, with every duration already costed.

    ``forward``/``backward``: per layer of the stage, the segments of that layer (backward
    includes the recomputed forward). ``embed_*`` (first stage) and ``head_*`` (last stage):
    the segments of the embeddings and of the head. ``*_grad_bytes``: the gradient bytes each
    part hands to the buckets, in backward order.
    ``gather_seconds``: ZeRO-3's all-gather of one layer.
    """

    forward: list[list[Segment]]
    backward: list[list[Segment]]
    embed_forward: list[Segment] = field(default_factory=list)  # first stage only
    embed_backward: list[Segment] = field(default_factory=list)
    head_forward: list[Segment] = field(default_factory=list)  # last stage only
    head_backward: list[Segment] = field(default_factory=list)
    layer_grad_bytes: float = 0.0
    embed_grad_bytes: float = 0.0
    head_grad_bytes: float = 0.0
    gather_seconds: float = 0.0
    optimizer_seconds: float = 0.0
    after_step_seconds: float = 0.0  # ZeRO-1/2: all-gather of the updated shards (blocking)


@dataclass
class StepPlan:
    """The whole step: one :class:`StagePlan` per stage and the rules that join them."""

    stages: list[StagePlan]
    micro_batches: int
    schedule: str = "1f1b"
    p2p_seconds: float = 0.0  # one activation (or its gradient) between neighbouring stages
    zero: int = 0  # 0 = DDP all-reduce, 1/2/3 = ZeRO stage
    bucket_bytes: float = 25 * 2**20  # DDP's bucket_cap_mb=25
    reduce_seconds: Callable[[str, float], float] = lambda collective, nbytes: 0.0


class _Lanes:
    def __init__(self, stage: int, events: list[Event]) -> None:
        self.stage, self.events = stage, events
        self.free = {"compute": 0.0, "blocking": 0.0, "async": 0.0, "send": 0.0}

    def run(self, lane: str, name: str, seconds: float, ready: float, category: str) -> float:
        start = max(self.free[lane], ready)
        if lane == "blocking":  # the compute stream waits for it
            start = max(start, self.free["compute"])
        end = start + seconds
        self.free[lane] = end
        if lane == "blocking":
            self.free["compute"] = end
        if seconds > 0:
            self.events.append(Event(self.stage, lane, name, start, seconds, category))
        return end


def _segments(lanes: _Lanes, segs: list[Segment], ready: float, label: str, cat: str) -> float:
    end = ready
    for lane, name, seconds in segs:
        end = lanes.run(lane, f"{name} {label}", seconds, end, cat if lane == "compute" else "comm")
    return end


class _Stage:
    """One stage's walk through its actions, with its gradient buckets."""

    def __init__(self, s: int, plan: StepPlan, events: list[Event]) -> None:
        self.s, self.plan, self.sp = s, plan, plan.stages[s]
        self.lanes = _Lanes(s, events)
        self.backwards_done = 0

    def _gather(self, layer: int, ready: float, label: str) -> float:
        if self.plan.zero != 3 or self.sp.gather_seconds <= 0:
            return ready
        return self.lanes.run(
            "async", f"all_gather L{layer} {label}", self.sp.gather_seconds, ready, "comm"
        )

    def forward(self, i: int, ready: float) -> float:
        lanes, sp, label = self.lanes, self.sp, f"mb{i}"
        end = max(ready, lanes.free["compute"])
        end = _segments(lanes, sp.embed_forward, end, label, "forward")
        gathered = self._gather(0, lanes.free["compute"], label)
        for layer, segs in enumerate(sp.forward):
            start = max(end, gathered)
            if layer + 1 < len(sp.forward):  # prefetch the next layer while this one runs
                gathered = self._gather(layer + 1, start, label)
            end = _segments(lanes, segs, start, f"L{layer} {label}", "forward")
        end = _segments(lanes, sp.head_forward, end, label, "forward")
        return end

    def backward(self, i: int, ready: float) -> float:
        lanes, sp, label, plan = self.lanes, self.sp, f"mb{i}", self.plan
        self.backwards_done += 1
        last = self.backwards_done == plan.micro_batches
        reduce_now = plan.zero >= 2 or last
        collective = "all_reduce" if plan.zero == 0 else "reduce_scatter"
        bucket, end = 0.0, max(ready, lanes.free["compute"])

        def add_grads(nbytes: float, at: float, final: bool) -> None:
            nonlocal bucket
            if not reduce_now:
                return
            bucket += nbytes
            if bucket > 0 and (bucket >= plan.bucket_bytes or final):
                seconds = plan.reduce_seconds(collective, bucket)
                lanes.run("async", f"{collective} bucket {label}", seconds, at, "comm")
                bucket = 0.0

        end = _segments(lanes, sp.head_backward, end, label, "backward")
        add_grads(sp.head_grad_bytes, end, False)
        n = len(sp.backward)
        gathered = self._gather(n - 1, lanes.free["compute"], label + " bwd")
        for layer in reversed(range(n)):
            start = max(end, gathered)
            if layer > 0:
                gathered = self._gather(layer - 1, start, label + " bwd")
            end = _segments(lanes, sp.backward[layer], start, f"L{layer} {label}", "backward")
            add_grads(sp.layer_grad_bytes, end, False)
        end = _segments(lanes, sp.embed_backward, end, label, "backward")
        add_grads(sp.embed_grad_bytes, end, True)
        return end

    def finish(self) -> float:
        lanes, sp = self.lanes, self.sp
        ready = max(lanes.free["compute"], lanes.free["async"], lanes.free["send"])
        end = lanes.run("compute", "optimizer step", sp.optimizer_seconds, ready, "optimizer")
        if sp.after_step_seconds > 0:
            end = lanes.run("blocking", "all_gather params", sp.after_step_seconds, end, "comm")
        return end


def run_step(plan: StepPlan) -> tuple[float, list[Event]]:
    """Simulate one step; return its seconds (the last stage to finish) and every event."""
    p, m = len(plan.stages), plan.micro_batches
    if plan.schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {plan.schedule!r}: expected one of {list(SCHEDULES)}")
    if m < 1:
        raise ConfigError(f"expected micro_batches >= 1, found {m}")
    events: list[Event] = []
    stages = [_Stage(s, plan, events) for s in range(p)]
    plans = [SCHEDULES[plan.schedule](s, p, m) for s in range(p)]
    arrived: dict[tuple[str, int, int], float] = {}  # when (kind, stage, mb)'s input is there
    pos = [0] * p
    while any(pos[s] < len(plans[s]) for s in range(p)):
        progressed = False
        for s in range(p):
            while pos[s] < len(plans[s]):
                kind, i = plans[s][pos[s]]
                needs = (kind == "F" and s > 0) or (kind == "B" and s < p - 1)
                if needs and (kind, s, i) not in arrived:
                    break
                ready = arrived.get((kind, s, i), 0.0)
                st = stages[s]
                end = st.forward(i, ready) if kind == "F" else st.backward(i, ready)
                peer = s + 1 if kind == "F" else s - 1
                if 0 <= peer < p:
                    sent = st.lanes.run("send", f"send {kind} mb{i}", plan.p2p_seconds, end, "comm")
                    arrived[(kind, peer, i)] = sent
                pos[s] += 1
                progressed = True
        if not progressed:
            raise ConfigError(f"schedule {plan.schedule!r} deadlocks at positions {pos}")
    ends = [st.finish() for st in stages]
    return max(ends), events
