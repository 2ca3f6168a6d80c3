"""Topology: how many ranks share a node, and which link joins them inside and across nodes.

A modelled cluster is ``nodes`` machines with ``ranks_per_node`` ranks (GPUs) each.
Two ranks on the same node talk over ``intra`` (NVLink, PCIe, loopback); ranks on
different nodes talk over ``inter`` (InfiniBand, Ethernet). As on a DGX H100, every
rank is assumed to own one network port ("rail"), so a node can send
``ranks_per_node`` messages across the network at once.

Grammar of :meth:`Topology.parse` (spaces are ignored, case-insensitive)::

    spec    := NODES "x" RANKS ( "-" SYSTEM | ":" INTRA [ "/" INTER ] )
    SYSTEM  := "h100"     -> intra nvlink4,  inter ib-ndr400
             | "pcie"     -> intra pcie5,    inter 100gbe
             | "loopback" -> intra loopback, inter loopback
    INTRA, INTER := a preset name from sparkgrad.comms.model.links.LINKS

    "2x8-h100"             2 nodes x 8 H100, NVLink4 inside, IB NDR400 across
    "1x8-h100"             one DGX H100 node
    "4x4-pcie"             4 nodes x 4 PCIe GPUs, 100GbE across
    "2x4:pcie5/ib-ndr400"  explicit links (INTER defaults to INTRA)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sparkgrad.comms.model.links import LINKS, Link, get_link
from sparkgrad.errors import ConfigError

SYSTEMS: dict[str, tuple[str, str]] = {
    "h100": ("nvlink4", "ib-ndr400"),
    "pcie": ("pcie5", "100gbe"),
    "loopback": ("loopback", "loopback"),
}

_SPEC = re.compile(r"^(\d+)x(\d+)(?:-([a-z0-9]+)|:([a-z0-9-]+)(?:/([a-z0-9-]+))?)$")


@dataclass(frozen=True)
class Topology:
    """``nodes`` x ``ranks_per_node`` ranks; ``intra`` joins ranks of a node, ``inter`` nodes."""

    ranks_per_node: int
    intra: Link
    inter: Link
    nodes: int = 1

    def __post_init__(self) -> None:
        if self.ranks_per_node < 1 or self.nodes < 1:
            raise ConfigError(
                "Topology: expected nodes >= 1 and ranks_per_node >= 1, found "
                f"nodes={self.nodes}, ranks_per_node={self.ranks_per_node}"
            )

    @property
    def world_size(self) -> int:
        """Total number of ranks: ``nodes * ranks_per_node``."""
        return self.nodes * self.ranks_per_node

    def split(self, nranks: int) -> tuple[int, int]:
        """Place ``nranks`` ranks node by node; return (ranks per node used, nodes used).

        ``nranks`` must fill whole nodes once it spills past one node, e.g. 16 ranks on
        ``2x8`` -> (8, 2) and 4 ranks on ``2x8`` -> (4, 1); 12 ranks on ``2x8`` is an error.
        """
        if not 1 <= nranks <= self.world_size:
            raise ConfigError(
                f"topology {self.describe()} holds 1..{self.world_size} ranks, found {nranks}"
            )
        if nranks <= self.ranks_per_node:
            return nranks, 1
        if nranks % self.ranks_per_node:
            raise ConfigError(
                f"topology {self.describe()}: {nranks} ranks do not fill whole nodes of "
                f"{self.ranks_per_node}; use a multiple of {self.ranks_per_node}"
            )
        return self.ranks_per_node, nranks // self.ranks_per_node

    def describe(self) -> str:
        """A spec string that :meth:`parse` reads back, e.g. ``"2x8:nvlink4/ib-ndr400"``."""
        return f"{self.nodes}x{self.ranks_per_node}:{self.intra.name}/{self.inter.name}"

    @classmethod
    def parse(cls, spec: str) -> Topology:
        """Read a spec such as ``"2x8-h100"`` (see the module docstring for the grammar)."""
        if not isinstance(spec, str):
            raise ConfigError(f"topology spec: expected a string like '2x8-h100', found {spec!r}")
        text = "".join(spec.split()).lower()
        match = _SPEC.match(text)
        if match is None:
            raise ConfigError(
                f"topology spec {spec!r}: expected NODESxRANKS-SYSTEM (e.g. '2x8-h100', systems "
                f"{', '.join(SYSTEMS)}) or NODESxRANKS:INTRA[/INTER] with links "
                f"{', '.join(sorted(LINKS))}"
            )
        nodes, ranks, system, intra, inter = match.groups()
        if system is not None:
            if system not in SYSTEMS:
                raise ConfigError(
                    f"topology spec {spec!r}: unknown system {system!r}, expected one of "
                    f"{', '.join(SYSTEMS)}"
                )
            intra, inter = SYSTEMS[system]
        return cls(
            ranks_per_node=int(ranks),
            intra=get_link(intra),
            inter=get_link(inter or intra),
            nodes=int(nodes),
        )

    @classmethod
    def local(cls, nranks: int, link: Link | None = None) -> Topology:
        """One machine with ``nranks`` processes over ``link`` (default: the loopback preset)."""
        link = LINKS["loopback"] if link is None else link
        return cls(ranks_per_node=nranks, intra=link, inter=link, nodes=1)
