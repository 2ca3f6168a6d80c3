"""The cost model: predict a collective's time on a modelled cluster, pick the cheapest algorithm.

This module is the one entry point the communicator calls; it gathers the pieces:

- :mod:`~sparkgrad.comms.links`    ``Link`` and the ``LINKS`` presets (alpha, beta, efficiency)
- :mod:`~sparkgrad.comms.topology` ``Topology`` ("2x8-h100": nodes x ranks, intra and inter link)
- :mod:`~sparkgrad.comms.costs`    ``ALGORITHMS`` and each algorithm's closed-form cost
- :mod:`~sparkgrad.comms.sim_clock` ``SimClock``, advanced by every call
- :mod:`~sparkgrad.comms.calibrate` ``calibrate()``, the least-squares fit of the local link

One node: the algorithm runs over the intra-node link, ``time = terms.time(intra)``.

Several nodes (hierarchical, 2-D model, as NCCL does on a DGX cluster): the algorithm runs
inside each node on the full ``S`` bytes over ``intra`` with ``L`` = ranks per node, and
across the ``N`` nodes on a ``S / L`` slice per rank, each rank using its own network rail
over ``inter``. NCCL pipelines chunks through both levels, so the latencies add and the
slower level's bandwidth term decides (the bottleneck):

    time = lat_intra(L, S) + lat_inter(N, S/L) + max(bw_intra(L, S), bw_inter(N, S/L))

send/recv across nodes are charged to the inter-node link (the worst case for a peer pair).

A link with a ``concurrency`` (loopback: the CPU cores that copy the bytes) is shared by
the ranks that send at once; all of them do in ring, halving-doubling and pipelined
algorithms (an upper bound for binomial trees), so with ``n`` ranks the byte terms
stretch by ``link.slowdown(n) = max(1, n / concurrency)``; a send/recv is one flow.
"""

from __future__ import annotations

import os

from sparkgrad.comms.calibrate import CalibrationResult, calibrate
from sparkgrad.comms.costs import (
    ALGORITHMS,
    Terms,
    bus_bandwidth_factor,
    check_algorithm,
    cost_terms,
)
from sparkgrad.comms.links import LINKS, Link, get_link
from sparkgrad.comms.sim_clock import SimClock
from sparkgrad.comms.topology import Topology
from sparkgrad.errors import ConfigError

__all__ = [
    "ALGORITHMS",
    "LINKS",
    "CalibrationResult",
    "Link",
    "SimClock",
    "Terms",
    "Topology",
    "bus_bandwidth_factor",
    "calibrate",
    "cost_terms",
    "get_link",
    "predict",
    "select_algorithm",
]


def predict(collective: str, algorithm: str, nbytes: int, nranks: int, topology: Topology) -> float:
    """Predicted seconds for one ``collective`` of ``nbytes`` on ``nranks`` ranks of ``topology``.

    Example: ``predict("all_reduce", "ring", 1 << 30, 8, Topology.parse("1x8-h100"))``.
    """
    check_algorithm(collective, algorithm)
    local, nodes = topology.split(nranks)
    p2p = collective in ("send", "recv")
    if nodes == 1:
        terms = cost_terms(collective, algorithm, nbytes, local)
        return terms.scaled(topology.intra.slowdown(1 if p2p else local)).time(topology.intra)
    if p2p:
        return cost_terms(collective, algorithm, nbytes, 2).time(topology.inter)
    intra = cost_terms(collective, algorithm, nbytes, local).scaled(topology.intra.slowdown(local))
    inter = cost_terms(collective, algorithm, nbytes / local, nodes)
    inter = inter.scaled(topology.inter.slowdown(nodes))
    latency = intra.latency(topology.intra) + inter.latency(topology.inter)
    return latency + max(intra.bandwidth_time(topology.intra), inter.bandwidth_time(topology.inter))


def _env_choice(collective: str, value: str) -> tuple[str, ...] | None:
    """The algorithms ``NCCL_ALGO`` allows for ``collective`` (None: it names none of them).

    As in NCCL the variable holds a comma-separated list (``"ring,tree"``), matched without
    case, and a leading ``^`` turns it into a list to exclude (``"^tree"``). Every name must
    be a known algorithm of *some* collective; a list that names none of this collective's
    algorithms leaves it on automatic choice (NCCL_ALGO=tree does not break broadcast).
    """
    text = value.strip().lower()
    exclude = text.startswith("^")
    names = [name.strip() for name in text.lstrip("^").split(",") if name.strip()]
    known = {name for algos in ALGORITHMS.values() for name in algos}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ConfigError(
            f"NCCL_ALGO={value!r}: expected a comma-separated list (optionally after '^') of "
            f"{', '.join(sorted(known))}; found unknown {', '.join(unknown) or 'empty list'}"
        )
    mine = ALGORITHMS[collective]
    if exclude:
        allowed = tuple(a for a in mine if a not in names)
        return allowed or None
    allowed = tuple(a for a in mine if a in names)
    return allowed or None


def select_algorithm(
    collective: str,
    nbytes: int,
    nranks: int,
    topology: Topology,
    override: str | None = None,
) -> str:
    """The cheapest algorithm by :func:`predict`, as NCCL's tuner picks one per call.

    ``override`` (an algorithm name for this collective) wins; otherwise the environment
    variable ``NCCL_ALGO`` restricts the candidates (see :func:`_env_choice`). Ties go to
    the first name in ``ALGORITHMS[collective]``. Small messages pick the algorithm with
    the fewest steps (tree, binomial), large ones the one moving the fewest bytes (ring,
    chain). With a power-of-two rank count halving-doubling is both latency- and
    bandwidth-optimal in this model (Rabenseifner), so it wins there unless
    ``NCCL_ALGO=ring,tree`` restricts the choice to NCCL's own pair; with other counts
    its fold-in/fold-out steps make ring cheaper for large messages. (Real networks also
    punish its far-apart partners with link contention, which this model leaves out.)
    """
    if collective not in ALGORITHMS:
        raise ConfigError(
            f"unknown collective {collective!r}: expected one of {', '.join(ALGORITHMS)}"
        )
    if override is not None:
        name = override.strip().lower()
        check_algorithm(collective, name)
        return name
    candidates = ALGORITHMS[collective]
    env = os.environ.get("NCCL_ALGO")
    if env:
        candidates = _env_choice(collective, env) or candidates
    return min(candidates, key=lambda a: predict(collective, a, nbytes, nranks, topology))
