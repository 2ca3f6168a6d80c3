"""A modelled cluster: a device per rank, and the links between ranks (``"32x8-h100"``).

``Cluster.parse("NODESxRANKS-SYSTEM")`` pairs a :class:`~sparkgrad.simulate.devices.Device`
with a :class:`~sparkgrad.comms.model.topology.Topology`:

======  ==========  =========================  ============================================
system  device      inside a node              across nodes
======  ==========  =========================  ============================================
h100    H100 SXM    NVLink4 (``nvlink4``)      InfiniBand NDR 400 Gb/s, one NIC per GPU
h200    H200 SXM    NVLink4 (``nvlink4``)      InfiniBand NDR 400 Gb/s, one NIC per GPU
a100    A100 SXM4   NVLink3, 300 GB/s a way    InfiniBand HDR 200 Gb/s, one NIC per GPU
cpu     this CPU    loopback TCP (measured)    loopback TCP
======  ==========  =========================  ============================================

The A100 links (a DGX A100 / Selene node, as in the Megatron-LM paper): NVLink3 is 12 links
x 25 GB/s = 300 GB/s per direction; NCCL's ring reaches a bus bandwidth of "close to 240 GB/s"
on it (NVIDIA's kiskra-nvidia, github.com/NVIDIA/nccl/issues/1712), efficiency 240/300 = 0.8.
HDR InfiniBand is 200 Gb/s = 25 GB/s per direction, ~90% through NCCL like NDR.

How a mesh lands on it (Megatron-LM's order): tensor-parallel ranks are neighbours (inside
one node when ``tp`` <= ranks per node), then context, then data, then pipeline ranks, so
:meth:`group_topology` says which links each group's collectives cross.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from sparkgrad.comms.model.links import GB, LINKS, Link
from sparkgrad.comms.model.topology import Topology
from sparkgrad.errors import ConfigError
from sparkgrad.simulate.devices import Device, get_device

EXTRA_LINKS = {
    "nvlink3": Link("nvlink3", alpha=1e-6, beta=300 * GB, efficiency=0.8),
    "ib-hdr200": Link("ib-hdr200", alpha=5e-6, beta=25 * GB, efficiency=0.90),
}
SYSTEMS = {
    "h100": ("h100", "nvlink4", "ib-ndr400"),
    "h200": ("h200", "nvlink4", "ib-ndr400"),
    "a100": ("a100", "nvlink3", "ib-hdr200"),
    "cpu": ("cpu", "loopback", "loopback"),
}
_SPEC = re.compile(r"^(\d+)x(\d+)-([a-z0-9]+)$")


def _link(name: str) -> Link:
    return EXTRA_LINKS[name] if name in EXTRA_LINKS else LINKS[name]


@dataclass(frozen=True)
class Cluster:
    """``topology.world_size`` ranks, each a ``device``."""

    device: Device
    topology: Topology
    spec: str = ""

    @classmethod
    def parse(cls, spec: str) -> Cluster:
        """``"32x8-h100"``: 32 nodes of 8 H100s (systems: h100, h200, a100, cpu)."""
        text = "".join(str(spec).split()).lower()
        match = _SPEC.match(text)
        if match is None or match.group(3) not in SYSTEMS:
            raise ConfigError(
                f"cluster {spec!r}: expected NODESxGPUS-SYSTEM such as '32x8-h100', with "
                f"SYSTEM one of {', '.join(SYSTEMS)}"
            )
        nodes, ranks, system = int(match.group(1)), int(match.group(2)), match.group(3)
        if nodes < 1 or ranks < 1:
            raise ConfigError(f"cluster {spec!r}: expected at least 1 node and 1 rank per node")
        device, intra, inter = SYSTEMS[system]
        topo = Topology(ranks_per_node=ranks, intra=_link(intra), inter=_link(inter), nodes=nodes)
        return cls(get_device(device), topo, text)

    @property
    def world(self) -> int:
        return self.topology.world_size

    def group_topology(self, size: int, stride: int) -> Topology:
        """The links a group of ``size`` ranks, ``stride`` apart in rank order, crosses."""
        rpn, topo = self.topology.ranks_per_node, self.topology
        per_node = max(1, min(size, rpn // stride)) if stride < rpn else 1
        nodes = math.ceil(size / per_node)
        return Topology(ranks_per_node=per_node, intra=topo.intra, inter=topo.inter, nodes=nodes)
