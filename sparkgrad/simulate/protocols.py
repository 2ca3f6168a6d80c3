"""NCCL's protocol choice -- LL, LL128, Simple -- on top of sparkgrad's collective cost model.

NCCL moves every collective with one *algorithm* (ring, tree) and one *protocol*:

- **LL** (low latency): 8-byte stores of 4 bytes of data + a 4-byte flag, so the receiver
  polls the flag instead of waiting on a fence. Tiny latency, a quarter of the bandwidth.
- **LL128**: the same idea on 128-byte lines carrying 120 bytes of data (NVLink only, where
  128-byte stores stay ordered): ~92% of the bandwidth at a few microseconds.
- **Simple**: big chunks and a memory fence per chunk: full bandwidth, the highest latency.

Its tuner (``ncclTopoTuneModel`` in NVIDIA/nccl ``src/graph/tuning.cc``, read at commit
01afd20a77b5804e0ecf1042509dd9d20ebf9e93, the 2.7-era model) predicts each pair as
``time = latency + bytes / bandwidth`` and picks the fastest. Its tables, reproduced here:

- ``baseLat`` (us) -- Tree: LL 4.4, LL128 4.4, Simple 0;  Ring: LL 3.6, LL128 10.0, Simple 8.4
- ``hwLat`` (us, per algorithm step) -- NVLink: Tree .52 / 1.2 / 28, Ring .47 / 1.9 / 3.4;
  PCI: Tree 1.0 / 1.9 / 28, Ring 1.0 / 2.5 / 5.7; Network: Tree 5.0 / 8.5 / 50, Ring 2.7 / 4.0 / 9.6
- bandwidth relative to Simple -- Ring LL x 1/4 (all_reduce, or several nodes; else 1/3),
  Ring LL128 x 0.92 (x 0.7 with one rank per node); Tree x 0.9, then LL x 1/3.8 and
  LL128 x 7/9 (one node) or 0.915 (several)
- LL128 is on by default only where every hop is NVLink (no network, no PCIe), and
  ``NCCL_PROTO`` (``LL,LL128,Simple``, ``^LL`` to exclude) restricts the choice.

What sparkgrad takes from its own model (:mod:`sparkgrad.comms.model`): each link's
Simple-protocol bandwidth (``beta * efficiency``), and the tree's steps and bytes
(:func:`~sparkgrad.comms.model.costs.cost_terms`, hierarchical inside and across nodes as
there); the ring is NCCL's flat ring over every rank (:func:`protocol_time`).
What it leaves out: NCCL's per-channel caps (``ll128MaxBwPerCh``, ``maxTreeBw``), the tree
correction factors, NVLink SHARP and CollNet. The CPU's loopback link has no protocols: its
cost is the measured link's own alpha-beta time ("Simple").
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sparkgrad.comms.model.costs import Terms, cost_terms, predict
from sparkgrad.comms.model.links import Link
from sparkgrad.comms.model.topology import Topology
from sparkgrad.comms.model.tuner import _env_choice, select_algorithm
from sparkgrad.errors import ConfigError

PROTOCOLS = ("LL", "LL128", "Simple")
_IDX = {p: i for i, p in enumerate(PROTOCOLS)}
BASE_LATENCY_US = {"tree": (4.4, 4.4, 0.0), "ring": (3.6, 10.0, 8.4)}
HW_LATENCY_US = {
    "nvlink": {"tree": (0.52, 1.2, 28.0), "ring": (0.47, 1.9, 3.4)},
    "pci": {"tree": (1.0, 1.9, 28.0), "ring": (1.0, 2.5, 5.7)},
    "net": {"tree": (5.0, 8.5, 50.0), "ring": (2.7, 4.0, 9.6)},
}
NCCL_ALGORITHMS = {
    "all_reduce": ("ring", "tree"),
    "reduce_scatter": ("ring",),
    "all_gather": ("ring",),
}
"""Collectives costed with NCCL's tables; the others (broadcast, send, ...) keep the existing
model's algorithms (:func:`~sparkgrad.comms.model.tuner.select_algorithm`) and Simple."""


def link_kind(link: Link) -> str | None:
    """``nvlink``, ``pci`` or ``net`` for a GPU link; None for the CPU's loopback."""
    if link.name.startswith("nvlink"):
        return "nvlink"
    if link.name.startswith("pcie"):
        return "pci"
    if link.name == "loopback":
        return None
    return "net"


@dataclass(frozen=True)
class CommChoice:
    """What the tuner picked for one collective, its predicted seconds, and why."""

    collective: str
    nbytes: float
    nranks: int
    algorithm: str
    protocol: str
    seconds: float
    reason: str


def bandwidth_factor(algorithm: str, protocol: str, collective: str, nodes: int, ppn: int) -> float:
    """The protocol's share of the Simple bandwidth, as ``tuning.cc`` models it."""
    if algorithm == "ring":
        if protocol == "LL":
            return 0.25 if nodes > 1 or collective in ("all_reduce", "reduce") else 1 / 3
        if protocol == "LL128":
            return 0.7 if ppn < 2 else 0.92
        return 1.0
    factor = 0.9  # tree
    if protocol == "LL":
        factor /= 3.8
    elif protocol == "LL128":
        factor *= 7 / 9 if nodes == 1 else 0.915
    return factor


def _allowed_protocols(topology: Topology, nodes: int) -> tuple[str, ...]:
    ll128 = link_kind(topology.intra) == "nvlink" and nodes == 1
    allowed = tuple(p for p in PROTOCOLS if p != "LL128" or ll128)
    env = os.environ.get("NCCL_PROTO")
    if not env:
        return allowed
    text = env.strip()
    exclude = text.startswith("^")
    names = {n.strip().lower() for n in text.lstrip("^").split(",") if n.strip()}
    unknown = names - {p.lower() for p in PROTOCOLS}
    if unknown or not names:
        raise ConfigError(
            f"NCCL_PROTO={env!r}: expected a comma-separated list (optionally after '^') of "
            f"{', '.join(PROTOCOLS)}; found {', '.join(sorted(unknown)) or 'an empty list'}"
        )
    picked = tuple(p for p in allowed if (p.lower() in names) != exclude)
    return picked or allowed


def _flat_ring(collective: str, nbytes: float, nranks: int, local: int, nodes: int):
    """NCCL's ring over every rank: (steps, inter-node steps, bytes each rank sends)."""
    n, share = nranks, (nranks - 1) / nranks
    if collective == "all_reduce":
        return 2 * (n - 1), 2 * (nodes - 1), 2 * share * nbytes
    return n - 1, nodes - 1, share * nbytes


def protocol_time(
    collective: str, algorithm: str, protocol: str, nbytes: float, nranks: int, topology: Topology
) -> float:
    """Seconds of one call with ``algorithm`` and ``protocol`` on a GPU topology.

    Ring is NCCL's flat ring over all ``n`` ranks: ``2(n-1)`` steps (``n-1`` for
    reduce_scatter / all_gather), ``2(N-1)`` of them across the ``N`` nodes. Its bytes cross
    NVLink at the link's speed and, between nodes, every channel's ring leaves each node
    once, so a node's ``L`` NICs carry what one rank sends: the ring runs at
    ``min(B_intra, L x B_nic)``. A large multi-node Simple all_reduce pays NCCL's "plateau
    effect of ring" (latency x 1.9). Tree is the existing model's hierarchy (a tree inside
    each node, across nodes on each rank's ``S / L`` slice).
    """
    local, nodes = topology.split(nranks)
    p = _IDX[protocol]
    kind = link_kind(topology.intra) or "pci"
    factor = bandwidth_factor(algorithm, protocol, collective, nodes, local)
    latency = BASE_LATENCY_US[algorithm][p] if nranks > 1 else 0.0
    if algorithm == "ring":
        steps, inter_steps, wire = _flat_ring(collective, nbytes, nranks, local, nodes)
        latency += (steps - inter_steps) * HW_LATENCY_US[kind]["ring"][p]
        latency += inter_steps * HW_LATENCY_US["net"]["ring"][p]
        if (
            protocol == "Simple"
            and nodes > 1
            and collective == "all_reduce"
            and nbytes >= nranks / 16 * 65536
        ):
            latency *= 1.9
        speed = (
            topology.intra.bandwidth
            if nodes == 1
            else min(
                topology.intra.bandwidth if local > 1 else float("inf"),
                local * topology.inter.bandwidth,
            )
        )
        return latency * 1e-6 + wire / (speed * factor)
    intra = cost_terms(collective, algorithm, nbytes, local)
    inter = cost_terms(collective, algorithm, nbytes / local, nodes) if nodes > 1 else Terms(0, 0)
    latency += intra.steps * HW_LATENCY_US[kind][algorithm][p]
    latency += inter.steps * HW_LATENCY_US["net"][algorithm][p]
    bw = max(
        intra.wire_bytes / (topology.intra.bandwidth * factor),
        inter.wire_bytes / (topology.inter.bandwidth * factor),
    )
    return latency * 1e-6 + bw


def _allowed_algorithms(collective: str) -> tuple[str, ...]:
    """NCCL's algorithms for ``collective``, restricted by ``NCCL_ALGO`` as the tuner reads it."""
    mine = NCCL_ALGORITHMS[collective]
    env = os.environ.get("NCCL_ALGO")
    if not env:
        return mine
    allowed = _env_choice(collective, env) or mine
    return tuple(a for a in mine if a in allowed) or mine


def choose(collective: str, nbytes: float, nranks: int, topology: Topology) -> CommChoice:
    """The fastest (algorithm, protocol) for one call, with the runner-up in ``reason``."""
    if nranks <= 1 or nbytes <= 0:
        return CommChoice(collective, nbytes, nranks, "none", "-", 0.0, "one rank: nothing moves")
    if link_kind(topology.intra) is None or collective not in NCCL_ALGORITHMS:
        algo = select_algorithm(collective, int(nbytes), nranks, topology)
        seconds = predict(collective, algo, int(nbytes), nranks, topology)
        why = (
            "loopback: one protocol, the measured link's alpha-beta time"
            if link_kind(topology.intra) is None
            else f"{collective}: the cost model's {algo}, with Simple"
        )
        return CommChoice(collective, nbytes, nranks, algo, "Simple", seconds, why)
    _, nodes = topology.split(nranks)
    options = sorted(
        (protocol_time(collective, a, p, nbytes, nranks, topology), a, p)
        for a in _allowed_algorithms(collective)
        for p in _allowed_protocols(topology, nodes)
    )
    best, algo, proto = options[0]
    if len(options) > 1:
        t2, a2, p2 = options[1]
        why = f"{algo}/{proto} {best * 1e6:.1f} us beats {a2}/{p2} {t2 * 1e6:.1f} us"
    else:
        why = f"{algo}/{proto} is the only choice"
    return CommChoice(collective, nbytes, nranks, algo, proto, best, why)


def bus_bandwidth(choice: CommChoice) -> float:
    """nccl-tests' busbw of a predicted all_reduce / all_gather / reduce_scatter (bytes/s)."""
    n = choice.nranks
    factor = {"all_reduce": 2 * (n - 1) / n}.get(choice.collective, (n - 1) / n)
    return choice.nbytes / choice.seconds * factor
