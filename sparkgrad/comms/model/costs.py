"""Closed-form costs of every collective algorithm on one uniform link (alpha-beta-gamma model).

Each algorithm's cost is linear in the link's three numbers, so we write it as three
*counts* (:class:`Terms`) and multiply by the link at the end:

    time = steps * alpha + wire_bytes / (beta * efficiency) + reduce_bytes * gamma

``steps`` = messages on the critical path, ``wire_bytes`` = bytes one rank sends (or
receives) on that path, ``reduce_bytes`` = bytes it adds into its buffer. Keeping the
counts separate lets :func:`sparkgrad.comms.model.calibrate.calibrate` fit alpha, beta and gamma
by linear least squares. ``S`` is ``nbytes`` as nccl-tests counts it (the per-rank
buffer; for all_gather/gather the *output*, for reduce_scatter/scatter the *input*),
``n`` the number of ranks, ``lg = ceil(log2 n)``. Sources: Thakur, Rabenseifner &
Gropp, "Optimization of Collective Communication Operations in MPICH" (2005);
NCCL's tuner (src/graph/tuning.cc) and nccl-tests' PERFORMANCE.md (busbw).

all_reduce
  ring              2(n-1) a + 2(n-1)/n S/B + (n-1)/n S g   reduce-scatter, then all-gather
  tree              2 lg a + 2 S/B + S g                     double binary tree, pipelined
  halving_doubling  2 log2(p) a + 2(p-1)/p S/B + (p-1)/p S g, p = 2^floor(log2 n);
                    if p < n add 2 a + 2 S/B + S g           (fold the extra ranks in, then out)
broadcast
  chain             (k+n-2) (a + S/(k B)), k = ceil(S / 1 MiB) segments   pipelined chain
  binomial          lg (a + S/B)                             the set of holders doubles each step
reduce
  chain             (k+n-2) (a + S/(k B) + S/k g)            broadcast's chain, run backwards
  binomial          lg (a + S/B + S g)
reduce_scatter      ring:   (n-1) a + (n-1)/n S/B + (n-1)/n S g
all_gather          ring:   (n-1) a + (n-1)/n S/B
gather, scatter     direct: (n-1) a + (n-1)/n S/B            the root's link carries n-1 pieces
all_to_all          direct: (n-1) a + (n-1)/n S/B            pairwise exchange, n-1 rounds
send, recv          p2p:    a + S/B
barrier             dissemination: lg a                      no payload

Several nodes (hierarchical, 2-D model, as NCCL does on a DGX cluster): the algorithm runs
inside each node on the full ``S`` bytes over ``intra`` with ``L`` = ranks per node, and
across the ``N`` nodes on a ``S / L`` slice per rank, each rank using its own network rail
over ``inter``. NCCL pipelines chunks through both levels, so the latencies add and the
slower level's bandwidth term decides (the bottleneck):

    time = lat_intra(L, S) + lat_inter(N, S/L) + max(bw_intra(L, S), bw_inter(N, S/L))

send/recv across nodes are charged to the inter-node link (the worst case for a peer pair).
A link with a ``concurrency`` (loopback: the CPU cores that copy the bytes) is shared by
the ranks that send at once, so with ``n`` ranks the byte terms stretch by
``link.slowdown(n) = max(1, n / concurrency)``; a send/recv is one flow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sparkgrad.comms.model.links import Link
from sparkgrad.comms.model.topology import Topology
from sparkgrad.errors import ConfigError

ALGORITHMS: dict[str, tuple[str, ...]] = {
    "all_reduce": ("ring", "tree", "halving_doubling"),
    "broadcast": ("chain", "binomial"),
    "reduce": ("chain", "binomial"),
    "reduce_scatter": ("ring",),
    "all_gather": ("ring",),
    "gather": ("direct",),
    "scatter": ("direct",),
    "all_to_all": ("direct",),
    "send": ("p2p",),
    "recv": ("p2p",),
    "barrier": ("dissemination",),
}

PIPELINE_CHUNK_BYTES = 1 << 20
"""Segment size of the pipelined chain (broadcast, reduce): a message of S bytes moves as
ceil(S / PIPELINE_CHUNK_BYTES) segments, so the chain's n-2 extra hops cost only small segments."""


@dataclass(frozen=True)
class Terms:
    """The counts of one call: time = steps*alpha + wire_bytes/bandwidth + reduce_bytes*gamma.

    On a link shared by more ranks than it serves at once (loopback: ranks > cores),
    :meth:`scaled` also fills ``turn_steps`` and ``turn_bytes``: steps and sent bytes times
    the extra ranks per core, charged at the link's ``turn_alpha`` and ``turn_beta_inv``.
    """

    steps: float
    wire_bytes: float
    reduce_bytes: float = 0.0
    turn_steps: float = 0.0
    turn_bytes: float = 0.0

    def latency(self, link: Link) -> float:
        """The alpha part: ``steps * alpha + turn_steps * turn_alpha``."""
        return self.steps * link.alpha + self.turn_steps * link.turn_alpha

    def bandwidth_time(self, link: Link) -> float:
        """The size-dependent part: ``wire_bytes / (beta * efficiency) + reduce_bytes * gamma
        + turn_bytes * turn_beta_inv``."""
        return (
            self.wire_bytes / link.bandwidth
            + self.reduce_bytes * link.gamma
            + self.turn_bytes * link.turn_beta_inv
        )

    def scaled(self, slowdown: float) -> Terms:
        """The same call on a shared link: bytes stretched by ``slowdown``, and with
        ``e = slowdown - 1`` extra ranks per core, ``turn_steps = e * steps`` and
        ``turn_bytes = e * wire_bytes``."""
        extra = slowdown - 1.0
        return Terms(
            self.steps,
            self.wire_bytes * slowdown,
            self.reduce_bytes * slowdown,
            self.turn_steps + extra * self.steps,
            self.turn_bytes + extra * self.wire_bytes,
        )

    def time(self, link: Link) -> float:
        """Seconds on ``link``: latency plus bandwidth time."""
        return self.latency(link) + self.bandwidth_time(link)


def check_algorithm(collective: str, algorithm: str) -> None:
    """Raise ``ConfigError`` unless ``algorithm`` is one of ``collective``'s algorithms."""
    if collective not in ALGORITHMS:
        raise ConfigError(
            f"unknown collective {collective!r}: expected one of {', '.join(ALGORITHMS)}"
        )
    if algorithm not in ALGORITHMS[collective]:
        raise ConfigError(
            f"unknown algorithm {algorithm!r} for {collective}: expected one of "
            f"{', '.join(ALGORITHMS[collective])}"
        )


def _ceil_log2(n: int) -> int:
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0


def cost_terms(collective: str, algorithm: str, nbytes: float, nranks: int) -> Terms:
    """The :class:`Terms` of one call on ``nranks`` ranks joined by one uniform link."""
    check_algorithm(collective, algorithm)
    if nbytes < 0 or nranks < 1:
        raise ConfigError(f"expected nbytes >= 0 and nranks >= 1, found {nbytes}, {nranks}")
    n, S = nranks, float(nbytes)
    if n == 1 and collective not in ("send", "recv"):
        return Terms(0.0, 0.0, 0.0)  # nothing to exchange with oneself
    lg = _ceil_log2(n)
    share = (n - 1) / n  # the fraction of the buffer that crosses links in ring/direct algorithms
    if collective == "all_reduce":
        if algorithm == "ring":
            return Terms(2 * (n - 1), 2 * share * S, share * S)
        if algorithm == "tree":
            return Terms(2 * lg, 2 * S, S)
        p = 1 << (n.bit_length() - 1)  # largest power of two <= n
        core = Terms(2 * math.log2(p), 2 * (p - 1) / p * S, (p - 1) / p * S)
        if p == n:
            return core
        return Terms(core.steps + 2, core.wire_bytes + 2 * S, core.reduce_bytes + S)
    if collective in ("broadcast", "reduce"):
        reduced = 1.0 if collective == "reduce" else 0.0
        if algorithm == "binomial":
            return Terms(lg, lg * S, reduced * lg * S)
        k = max(1, math.ceil(S / PIPELINE_CHUNK_BYTES))
        hops = k + n - 2
        return Terms(hops, hops * S / k, reduced * hops * S / k)
    if collective == "reduce_scatter":
        return Terms(n - 1, share * S, share * S)
    if collective in ("all_gather", "gather", "scatter", "all_to_all"):
        return Terms(n - 1, share * S)
    if collective in ("send", "recv"):
        return Terms(1, S)
    return Terms(lg, 0.0)  # barrier


def bus_bandwidth_factor(collective: str, nranks: int) -> float:
    """nccl-tests' busbw = algbw * factor: the bytes each link carries relative to S.

    all_reduce 2(n-1)/n; reduce_scatter, all_gather, all_to_all (n-1)/n; everything else 1.
    Bus bandwidth is comparable across world sizes and with the link's own speed.
    """
    n = nranks
    if collective == "all_reduce":
        return 2 * (n - 1) / n
    if collective in ("reduce_scatter", "all_gather", "all_to_all"):
        return (n - 1) / n
    return 1.0


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
