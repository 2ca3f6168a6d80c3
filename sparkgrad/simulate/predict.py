"""``simulate_step``: one training step of a GPT on a modelled cluster, predicted from shapes.

1. :mod:`.workload` lists each stage's ops and collectives for one micro-batch;
2. :mod:`.roofline` costs every op on the cluster's device, :mod:`.protocols` every
   collective on the links its group crosses (:meth:`.cluster.Cluster.group_topology`);
3. :mod:`.schedule` lays them out on each stage's lanes in the strategy's order, so
   overlap is simulated, not assumed;
4. the result: step seconds, tokens/s, MFU, per-rank memory (:mod:`.memory`), the events
   of the predicted timeline (:mod:`.trace` writes them as a Chrome trace), and every
   collective's (algorithm, protocol) with the reason.

MFU = model FLOPs (3 x the forward matmuls, no recomputation:
:func:`.workload.model_flops_per_token`) per second over the world's dense peak.
``megatron_tflops`` is what the Megatron-LM paper reports per GPU: its eq. 3 FLOPs
(recomputation included when it ran) per second per GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sparkgrad.errors import ConfigError
from sparkgrad.simulate import workload as wl
from sparkgrad.simulate.cluster import Cluster
from sparkgrad.simulate.memory import Memory, in_flight, layer_activation_bytes, model_states
from sparkgrad.simulate.protocols import CommChoice, choose
from sparkgrad.simulate.roofline import op_cost
from sparkgrad.simulate.schedule import Event, StagePlan, StepPlan, run_step


@dataclass(frozen=True)
class StepConfig:
    """Everything the prediction needs; ``micro_batches`` per step on every replica."""

    shape: wl.GPTShape
    mesh: wl.Mesh
    cluster: Cluster
    global_batch: int
    micro_batches: int = 1
    precision: str = "bf16"
    zero: int = 0
    schedule: str = "1f1b"
    recompute: str = "none"
    bucket_mb: float = 25.0

    def __post_init__(self) -> None:
        if self.precision not in wl.PRECISIONS:
            raise ConfigError(
                f"unknown precision {self.precision!r}: expected one of {', '.join(wl.PRECISIONS)}"
            )
        if self.zero not in (0, 1, 2, 3):
            raise ConfigError(f"expected zero in 0..3, found {self.zero}")
        if self.recompute not in ("none", "full"):
            raise ConfigError(f"expected recompute 'none' or 'full', found {self.recompute!r}")
        if self.mesh.world != self.cluster.world:
            raise ConfigError(
                f"mesh {self.mesh.describe()} has {self.mesh.world} ranks but cluster "
                f"{self.cluster.spec} has {self.cluster.world}; make dp*pp*tp*cp match"
            )
        wl.check_split(self.shape, self.mesh)
        per_replica, rest = divmod(self.global_batch, self.mesh.dp)
        if self.global_batch < 1 or rest or per_replica % self.micro_batches:
            raise ConfigError(
                f"global batch {self.global_batch} must split into dp={self.mesh.dp} replicas "
                f"x {self.micro_batches} micro-batches of whole sequences"
            )

    @property
    def micro_batch_size(self) -> int:
        return self.global_batch // self.mesh.dp // self.micro_batches


@dataclass
class Prediction:
    """What :func:`simulate_step` predicts; seconds, bytes, FLOP/s."""

    config: StepConfig
    step_seconds: float
    tokens_per_second: float
    mfu: float
    megatron_tflops: float
    memory: list[Memory]
    events: list[Event]
    comms: dict[str, CommChoice] = field(default_factory=dict)
    compute_seconds: list[float] = field(default_factory=list)


class _Coster:
    def __init__(self, cfg: StepConfig) -> None:
        self.cfg, self.comms = cfg, {}
        self.dtype = wl.PRECISIONS[cfg.precision][0]
        m = cfg.mesh
        self.strides = {"tp": 1, "cp": m.tp, "dp": m.tp * m.cp, "pp": m.tp * m.cp * m.dp}

    def comm(self, name: str, collective: str, nbytes: float, group: str) -> float:
        size = getattr(self.cfg.mesh, group)
        topo = self.cfg.cluster.group_topology(size, self.strides[group])
        choice = choose(collective, nbytes, size, topo)
        self.comms.setdefault(f"{name} ({group}={size}, {_size(nbytes)})", choice)
        return choice.seconds

    def segments(self, items: list) -> list:
        out: list = []
        for item in items:
            if isinstance(item, wl.Comm):
                out.append(
                    (
                        "blocking",
                        item.name,
                        self.comm(item.name, item.collective, item.nbytes, item.group),
                    )
                )
                continue
            sec = op_cost(item.flops, item.nbytes, self.cfg.cluster.device, self.dtype, item.kind)
            if out and out[-1][0] == "compute":
                lane, name, prev = out[-1]
                out[-1] = (lane, name.split("..")[0] + ".." + item.name, prev + sec.seconds)
            else:
                out.append(("compute", item.name, sec.seconds))
        return out


def _size(nbytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes:.0f} B"


def simulate_step(cfg: StepConfig) -> Prediction:
    """Predict one step of ``cfg`` (see the module docstring)."""
    shape, mesh, b = cfg.shape, cfg.mesh, cfg.micro_batch_size
    coster, recompute = _Coster(cfg), cfg.recompute == "full"
    e = wl.BYTES[wl.PRECISIONS[cfg.precision][1]]
    mixed = cfg.precision in ("bf16", "fp16")
    fwd = wl.layer_forward(shape, mesh, b, cfg.precision)
    layer_f = coster.segments(fwd)
    layer_b = coster.segments((fwd if recompute else []) + wl.backward_of(fwd))
    emb, head = (
        wl.embedding_forward(shape, mesh, b, cfg.precision),
        wl.head_forward(shape, mesh, b, cfg.precision),
    )
    per_stage = shape.layers // mesh.pp
    layer_params = shape.layer_params / mesh.tp
    dp_topo_seconds = {}

    def reduce_seconds(collective: str, nbytes: float) -> float:
        key = (collective, nbytes)
        if key not in dp_topo_seconds:
            dp_topo_seconds[key] = coster.comm("grad " + collective, collective, nbytes, "dp")
        return dp_topo_seconds[key]

    stages, memory = [], []
    for s in range(mesh.pp):
        params = wl.stage_params(shape, mesh, s)
        shard = params / mesh.dp if cfg.zero >= 1 else params
        opt = wl.Op("adam", "elementwise", 10 * shard, 28 * shard)
        first, last = s == 0, s == mesh.pp - 1
        gather = 0.0
        if cfg.zero == 3 and mesh.dp > 1:
            gather = coster.comm("zero3 all_gather layer", "all_gather", layer_params * e, "dp")
        after = 0.0
        if cfg.zero in (1, 2) and mesh.dp > 1:
            after = coster.comm("zero all_gather params", "all_gather", params * e, "dp")
        plan = StagePlan(
            forward=[layer_f] * per_stage,
            backward=[layer_b] * per_stage,
            embed_forward=coster.segments(emb) if first else [],
            embed_backward=coster.segments(wl.backward_of(emb)) if first else [],
            head_forward=coster.segments(head) if last else [],
            head_backward=coster.segments(wl.backward_of(head)) if last else [],
            layer_grad_bytes=layer_params * e if mesh.dp > 1 else 0.0,
            embed_grad_bytes=(shape.vocab / mesh.tp + shape.context) * shape.d_model * e
            if first and mesh.dp > 1
            else 0.0,
            head_grad_bytes=shape.vocab * shape.d_model / mesh.tp * e
            if last and mesh.dp > 1
            else 0.0,
            gather_seconds=gather,
            optimizer_seconds=coster.segments([opt])[0][2],
            after_step_seconds=after,
        )
        stages.append(plan)
        states = model_states(params, mesh.dp, cfg.zero, mixed)
        tokens = b * shape.context / mesh.cp
        act = (
            per_stage
            * layer_activation_bytes(
                tokens, shape.d_model, shape.heads, shape.context, mesh.tp, recompute, e
            )
            * in_flight(cfg.schedule, s, mesh.pp, cfg.micro_batches)
        )
        if last:
            act += tokens * shape.vocab / mesh.tp * 4  # fp32 logits for the loss
        memory.append(Memory(states.weights, states.gradients, states.optimizer, act))
    p2p = 0.0
    if mesh.pp > 1:
        act_bytes = b * shape.context / mesh.cp * shape.d_model * e
        p2p = coster.comm("pipeline send", "send", act_bytes, "pp")
    plan = StepPlan(
        stages,
        cfg.micro_batches,
        cfg.schedule,
        p2p,
        cfg.zero,
        cfg.bucket_mb * 2**20,
        reduce_seconds,
    )
    seconds, events = run_step(plan)
    compute = [
        sum(ev.seconds for ev in events if ev.stage == s and ev.lane == "compute")
        for s in range(mesh.pp)
    ]
    tokens_step = cfg.global_batch * shape.context
    world = mesh.world
    peak = cfg.cluster.device.peak(coster.dtype)
    mfu = wl.model_flops_per_token(shape) * tokens_step / (seconds * world * peak)
    meg = wl.megatron_flops(shape, cfg.global_batch, recompute) / (seconds * world)
    return Prediction(
        cfg, seconds, tokens_step / seconds, mfu, meg, memory, events, coster.comms, compute
    )
