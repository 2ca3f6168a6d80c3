"""Published results the simulator is checked against: one :class:`Row` each, with its source.

``docs/simulator.md`` shows :func:`markdown_table` (``python -m sparkgrad.simulate --validate``)
and ``tests/simulate/test_validation.py`` reads the same rows, so the doc, the model and the
tests cannot drift apart. A row *misses* when the prediction is more than ``tolerance`` (20%)
away from the published figure; the table says so, and the row's ``why`` says why.
Nothing here is fitted to these figures: the device and link numbers come from spec sheets
(:mod:`.devices`, :mod:`.cluster`), except where a row's ``why`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sparkgrad.comms.model.links import GB, LINKS, Link
from sparkgrad.comms.model.topology import Topology
from sparkgrad.simulate.cluster import Cluster
from sparkgrad.simulate.devices import Device
from sparkgrad.simulate.memory import model_states
from sparkgrad.simulate.predict import StepConfig, simulate_step
from sparkgrad.simulate.protocols import bus_bandwidth, choose, protocol_time
from sparkgrad.simulate.roofline import op_cost
from sparkgrad.simulate.schedule import StagePlan, StepPlan, run_step
from sparkgrad.simulate.workload import GPTShape, Mesh

TOLERANCE = 0.20


@dataclass(frozen=True)
class Row:
    """One published figure, where it comes from, and how the simulator predicts it."""

    key: str
    what: str
    published: float
    unit: str
    source: str
    predict: Callable[[], float]
    why: str = ""
    tolerance: float = TOLERANCE

    def predicted(self) -> float:
        return float(self.predict())

    def error(self) -> float:
        """Relative error of the prediction: (predicted - published) / published."""
        return (self.predicted() - self.published) / self.published


def _busbw_h100() -> float:
    choice = choose("all_reduce", 2 * 2**30, 8, Topology.parse("1x8-h100"))
    return bus_bandwidth(choice) / 1e9


def _busbw_2x8_a100() -> float:
    topo = Cluster.parse("2x8-a100").topology
    seconds = protocol_time("all_reduce", "ring", "Simple", 2 * 2**30, 16, topo)
    return 2 * 15 / 16 * 2 * 2**30 / seconds / 1e9


def _megatron(
    h: int, layers: int, heads: int, dp: int, pp: int, tp: int, batch: int, micro: int
) -> float:
    nodes = dp * pp * tp // 8
    cfg = StepConfig(
        GPTShape(h, layers, heads, 2048, 51200),
        Mesh(dp=dp, pp=pp, tp=tp),
        Cluster.parse(f"{nodes}x8-a100"),
        batch,
        batch // dp // micro,
        "fp16",
        recompute="full",
    )
    return simulate_step(cfg).megatron_tflops / 1e12


# -- (c) Horovod: ResNet-101 on 128 servers x 4 Pascal GPUs, 25 Gbit/s RoCE ----------------------
P100 = Device(
    "p100",
    {"fp32": 10.6e12, "tf32": 10.6e12, "bf16": 21.2e12, "fp16": 21.2e12},
    memory_bandwidth=732e9,
    memory_bytes=16e9,
)
"""Tesla P100 SXM2 datasheet (nvidia.com/en-us/data-center/tesla-p100): 10.6 TFLOP/s fp32,
21.2 fp16, HBM2 732 GB/s, 16 GB. Pascal has no tensor cores, so tf32 = fp32."""
PCIE3 = Link("pcie3", alpha=2e-6, beta=15.75 * GB, efficiency=0.80)
ROCE25_SHARED = Link("roce25/4", alpha=10e-6, beta=25 / 8 * GB / 4, efficiency=0.90)
"""One 25 Gbit/s NIC per server shared by its 4 GPUs: a quarter each, as one rail per rank."""
RESNET101_PARAMS = 44.5e6  # He et al. 2016 / torchvision resnet101: 44.5 M parameters
RESNET101_FLOPS = 2 * 7.6e9  # He et al. 2016, Table 1: 7.6e9 multiply-adds per 224x224 image


def ddp_efficiency(workers_per_node: int, nodes: int, batch: int = 64, pieces: int = 100) -> float:
    """Weak-scaling efficiency of DDP (Horovod with 64 MiB tensor fusion) of ResNet-101.

    The network is cut into ``pieces`` equal parts (compute and parameters alike); their
    gradients leave in backward order through 64 MiB fusion buckets, overlapping the rest
    of the backward. Efficiency = step time on one GPU / step time on all of them.
    """
    fwd = op_cost(RESNET101_FLOPS * batch / pieces, 0.0, P100, "fp32").seconds
    bwd = op_cost(2 * RESNET101_FLOPS * batch / pieces, 0.0, P100, "fp32").seconds
    grads = RESNET101_PARAMS * 4 / pieces
    n = workers_per_node * nodes
    topo = Topology(ranks_per_node=workers_per_node, intra=PCIE3, inter=ROCE25_SHARED, nodes=nodes)

    def step(world: int) -> float:
        stage = StagePlan(
            forward=[[("compute", "fwd", fwd)]] * pieces,
            backward=[[("compute", "bwd", bwd)]] * pieces,
            layer_grad_bytes=grads if world > 1 else 0.0,
        )
        plan = StepPlan(
            [stage],
            1,
            bucket_bytes=64 * 2**20,
            reduce_seconds=lambda c, b: choose(c, b, world, topo).seconds,
        )
        return run_step(plan)[0]

    return step(1) / step(n) * 100


def _zero_gb(stage: int) -> float:
    return model_states(7.5e9, 64, stage, mixed=True).total / 1e9


MEGATRON = (
    "Narayanan et al., *Efficient Large-Scale Language Model Training on GPU Clusters "
    "Using Megatron-LM*, SC'21, arXiv:2104.04473, Table 1 (also the Megatron-LM "
    "README's scaling table until 2023); A100 80 GB, s=2048, V=51200, fp16, full "
    "recomputation"
)
MEGATRON_WHY = (
    "micro-batch size is not in the table: assumed {micro}; TFLOP/s per GPU with "
    "the paper's eq. 3 FLOPs over the predicted step"
)
ZERO = (
    "Rajbhandari et al., *ZeRO: Memory Optimizations Toward Training Trillion Parameter "
    "Models*, SC'20, arXiv:1910.02054, Figure 1 (7.5 B parameters, N_d = 64, K = 12)"
)

ROWS: list[Row] = [
    Row(
        "a1",
        "all_reduce busbw, 8 x H100 SXM, NVLink4, ring, 2 GiB",
        367.5,
        "GB/s",
        "github.com/NVIDIA/nccl/issues/1455 (NCCL_ALGO=RING, 2-4 GB: 'busbw is about 365-370 "
        "GBps when gpus from 2 to 8'); github.com/NVIDIA/nccl-tests/issues/212 (sjeaugey: "
        "'NCCL can get an effective NVLink bandwidth of 370GB/s')",
        _busbw_h100,
        "not independent: the nvlink4 preset's efficiency (370/450) was taken from this same "
        "figure, so the row checks the ring's bytes and the protocol latency, not the link",
    ),
    Row(
        "a2",
        "all_reduce busbw, 2 x 8 A100 (DGX A100, 8 x HDR 200 Gb/s IB), ring, 2 GiB",
        192.0,
        "GB/s",
        "github.com/NVIDIA/nccl/issues/812 (NVIDIA's AddyLaddy, on NCCL_ALGO=RING over two "
        "nodes: 'On an Nvidia DGX-A100 system we have 8x200Gbit/s IB cards and we measure "
        "192GB/s AllReduce BusBW')",
        _busbw_2x8_a100,
        "the flat ring is network-bound at 8 NICs x 22.5 GB/s (HDR at the 0.90 efficiency "
        "assumed for every InfiniBand link); the measurement implies ~24 GB/s per NIC",
    ),
    Row(
        "a3",
        "2 x 8 H100 over InfiniBand NDR400: bandwidth per NIC",
        47.0,
        "GB/s",
        "github.com/NVIDIA/nccl-tests/issues/290 (NVIDIA's AddyLaddy: 'For NDR @ 400Gbps you "
        "should see 46-48GB/s per NIC', NCCL_ALGO=RING on two nodes)",
        lambda: LINKS["ib-ndr400"].bandwidth / 1e9,
        "checks the ib-ndr400 link preset only (50 GB/s x 0.90); no full 2-node nccl-tests "
        "table for H100 was found",
    ),
    Row(
        "b1",
        "Megatron GPT 1.7 B, 32 A100, t=1 p=1, batch 512",
        137.0,
        "TFLOP/s/GPU",
        MEGATRON,
        lambda: _megatron(2304, 24, 24, 32, 1, 1, 512, 4),
        MEGATRON_WHY.format(micro=4) + ". MISS: pure data parallelism is compute-bound here, "
        "and the roofline's one GEMM efficiency (0.8 of peak) is too high for h=2304 GEMMs; "
        "the model also leaves out dropout, bias and fused-softmax kernels, data loading and "
        "logging, which the measurement includes",
    ),
    Row(
        "b2",
        "Megatron GPT 18.4 B, 256 A100, t=8 p=1, batch 1024",
        135.0,
        "TFLOP/s/GPU",
        MEGATRON,
        lambda: _megatron(6144, 40, 48, 32, 1, 8, 1024, 4),
        MEGATRON_WHY.format(micro=4) + "; within 20% only just (+19%): the same reasons as b1",
    ),
    Row(
        "b3",
        "Megatron GPT 39.1 B, 512 A100, t=8 p=2, batch 1536",
        138.0,
        "TFLOP/s/GPU",
        MEGATRON,
        lambda: _megatron(8192, 48, 64, 32, 2, 8, 1536, 1),
        MEGATRON_WHY.format(micro=1),
    ),
    Row(
        "b4",
        "Megatron GPT 145.6 B, 1536 A100, t=8 p=8, batch 2304",
        148.0,
        "TFLOP/s/GPU",
        MEGATRON,
        lambda: _megatron(12288, 80, 96, 24, 8, 8, 2304, 1),
        MEGATRON_WHY.format(micro=1),
    ),
    Row(
        "c1",
        "Horovod ResNet-101, 512 Pascal GPUs (128 x 4), 25 Gbit/s RoCE: scaling efficiency",
        90.0,
        "%",
        "Horovod README / docs/benchmarks.rst (github.com/horovod/horovod): '128 servers with "
        "4 Pascal GPUs each connected by RoCE-capable 25 Gbit/s network. Horovod achieves 90% "
        "scaling efficiency for both Inception V3 and ResNet-101'",
        lambda: ddp_efficiency(4, 128),
        "assumes P100 SXM2, batch 64 per GPU (the docs' command), PCIe3 inside a server, the NIC "
        "shared by its 4 GPUs, and parameters spread evenly over the backward",
    ),
    Row(
        "d1",
        "ZeRO model states per GPU, 7.5 B params, baseline DP",
        120.0,
        "GB",
        ZERO,
        lambda: _zero_gb(0),
        "the same formula as the paper: checks the ledger's code",
    ),
    Row("d2", "ZeRO stage 1 (P_os), N_d = 64", 31.4, "GB", ZERO, lambda: _zero_gb(1)),
    Row("d3", "ZeRO stage 2 (P_os+g), N_d = 64", 16.6, "GB", ZERO, lambda: _zero_gb(2)),
    Row("d4", "ZeRO stage 3 (P_os+g+p), N_d = 64", 1.9, "GB", ZERO, lambda: _zero_gb(3)),
]


def markdown_table(rows: list[Row] | None = None) -> str:
    """The validation table as Markdown (what docs/simulator.md shows)."""
    out = [
        "| row | what | published | predicted | error | verdict |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows or ROWS:
        err = r.error()
        verdict = "within 20%" if abs(err) <= r.tolerance else "**MISS**"
        out.append(
            f"| {r.key} | {r.what} | {r.published:g} {r.unit} | {r.predicted():.1f} "
            f"{r.unit} | {err * 100:+.1f}% | {verdict} |"
        )
    return "\n".join(out)
