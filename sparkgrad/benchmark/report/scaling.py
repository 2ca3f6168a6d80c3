"""Throughput against world size: measured where the machine allows, modelled up to 64 GPUs.

The model is data parallelism with a fixed batch per rank (weak scaling), as a cluster
would run it. One step on ``n`` ranks is

    step(n) = compute + all_reduce(gradient bytes, n ranks, topology)

- ``compute``: one rank's forward + backward + optimizer step of the MLP, **predicted** by
  :mod:`sparkgrad.simulate` on a modelled GPU (:func:`simulated_compute_s`: the shapes-only
  MLP workload of :mod:`sparkgrad.simulate.mlp`, each op on the H100's roofline plus its
  kernel-launch overhead). It used to be this machine's *CPU* step, which made a GPU
  cluster's all_reduce look free (~99% efficiency at 64 GPUs for a step a GPU does in
  microseconds);
- ``all_reduce``: what :func:`sparkgrad.comms.model.predict` gives on the modelled
  cluster with the algorithm NCCL's tuner would pick (:func:`select_algorithm`), e.g.
  ``8x8-h100``: 8 nodes × 8 GPUs, NVLink4 inside a node, InfiniBand NDR400 across nodes.

Nothing is overlapped (a bucketed DDP hides part of the all_reduce behind the backward
pass; for an MLP under 25 MiB it is one bucket at the end), so the model is a lower bound
on throughput. Then

    throughput(n) = n · batch / step(n),   efficiency(n) = throughput(n) / (n · throughput(1))

and efficiency = compute / step(n) ≤ 1, since all_reduce on one rank costs nothing. A
small MLP on an H100 is launch-bound (tens of microseconds per step), so the all_reduce
across nodes dominates and the efficiency falls fast: that is the lesson, not a bug.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sparkgrad.comms.model import Topology, predict, select_algorithm


def simulated_compute_s(hidden: tuple[int, ...], batch: int, device: str = "h100") -> float:
    """One rank's MLP step (forward, backward, Adam) on the modelled ``device``, in float32.

    Every op of :func:`sparkgrad.simulate.mlp.mlp_plan` (``single``) costs its roofline time
    (:func:`sparkgrad.simulate.roofline.op_cost`) plus one launch overhead per call.
    """
    from sparkgrad.simulate.devices import get_device
    from sparkgrad.simulate.mlp import MLPShape, mlp_plan
    from sparkgrad.simulate.roofline import op_cost
    from sparkgrad.simulate.schedule import run_step

    dev = get_device(device)

    def cost(ops: list) -> float:
        total = 0.0
        for op in ops:
            if op.kind == "step":  # the CPU engine's Python bookkeeping: not a GPU kernel
                continue
            kind = "matmul" if op.flops else "elementwise"
            total += op_cost(op.flops, op.nbytes, dev, "fp32", kind).seconds
            total += dev.launch_overhead * (op.calls - 1)
        return total

    plan, _ = mlp_plan("single", MLPShape(tuple(hidden), batch), 1, cost, lambda c, n: 0.0)
    return run_step(plan)[0]


@dataclass
class ScalingPoint:
    """One world size on one topology (``source``: "model" or an engine's measured run)."""

    source: str
    topology: str
    world_size: int
    step_s: float
    compute_s: float
    comm_s: float
    algorithm: str
    throughput: float  # samples per second, all ranks together
    efficiency: float

    def as_dict(self) -> dict:
        return asdict(self)


def model_scaling(
    compute_s: float,
    grad_bytes: int,
    batch_per_rank: int,
    topology: str = "8x8-h100",
    worlds: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64),
) -> list[ScalingPoint]:
    """Modelled data-parallel throughput for each world size that fits ``topology``."""
    if compute_s <= 0 or grad_bytes <= 0 or batch_per_rank <= 0:
        raise ValueError(
            "model_scaling: expected compute_s, grad_bytes and batch_per_rank > 0, found "
            f"{compute_s}, {grad_bytes}, {batch_per_rank}"
        )
    topo = Topology.parse(topology)
    points: list[ScalingPoint] = []
    base = None
    for n in worlds:
        if n > topo.world_size or (n > topo.ranks_per_node and n % topo.ranks_per_node):
            continue  # does not fill whole nodes of this cluster
        algo = select_algorithm("all_reduce", grad_bytes, n, topo)
        comm = predict("all_reduce", algo, grad_bytes, n, topo) if n > 1 else 0.0
        step = compute_s + comm
        throughput = n * batch_per_rank / step
        base = base or throughput / n  # throughput of one rank
        points.append(
            ScalingPoint(
                "model",
                topology,
                n,
                step,
                compute_s,
                comm,
                algo,
                throughput,
                throughput / (n * base),
            )
        )
    return points


def measured_scaling(runs: list[dict]) -> list[ScalingPoint]:
    """Efficiency of measured runs: ``runs`` rows hold engine, world_size, throughput."""
    points = []
    for engine in sorted({r["engine"] for r in runs}):
        mine = sorted((r for r in runs if r["engine"] == engine), key=lambda r: r["world_size"])
        ones = [r["throughput"] for r in mine if r["world_size"] == 1]
        for r in mine:
            n = r["world_size"]
            eff = r["throughput"] / (n * ones[0]) if ones else float("nan")
            points.append(
                ScalingPoint(
                    engine,
                    "this machine (Spark, loopback)",
                    n,
                    r.get("step_s", float("nan")),
                    float("nan"),
                    float("nan"),
                    "measured",
                    r["throughput"],
                    eff,
                )
            )
    return points
