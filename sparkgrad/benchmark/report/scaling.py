"""Throughput against world size: measured where the machine allows, modelled up to 64 GPUs.

The model is data parallelism with a fixed batch per rank (weak scaling), as a cluster
would run it. One step on ``n`` ranks is

    step(n) = compute + all_reduce(gradient bytes, n ranks, topology)

- ``compute``: one rank's forward + backward + optimizer step, **measured** in this run
  (sparkgrad's median step time at the per-rank batch, on this report's device);
- ``all_reduce``: what :func:`sparkgrad.comms.model.predict` gives on the modelled
  cluster with the algorithm NCCL's tuner would pick (:func:`select_algorithm`), e.g.
  ``8x8-h100``: 8 nodes × 8 GPUs, NVLink4 inside a node, InfiniBand NDR400 across nodes.

Nothing is overlapped (a bucketed DDP hides part of the all_reduce behind the backward
pass), so the model is a lower bound on throughput. Then

    throughput(n) = n · batch / step(n),   efficiency(n) = throughput(n) / (n · throughput(1))

and efficiency = compute / step(n) ≤ 1, since all_reduce on one rank costs nothing. A slow
compute (a CPU step stands in for a GPU's) makes the all_reduce look cheap: read the CPU
report's efficiencies as optimistic, the GPU report's as the realistic ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sparkgrad.comms.model import Topology, predict, select_algorithm


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
