"""Collective algorithms, one short function each, written against a *channel*.

A channel is what one rank sees of one collective call (built by the communicator):

- ``ch.rank``, ``ch.size``: this rank and the number of ranks in the call;
- ``ch.send(peer, view)``: send a 1-D contiguous array (never waits for the receiver);
- ``ch.recv_into(peer, out)``: receive exactly ``out.size`` elements into ``out``;
- ``ch.recv_reduce(peer, acc, op)``: receive ``acc.size`` elements and combine them into
  ``acc`` with :func:`~sparkgrad.comms.reduce_ops.combine` (``acc = acc op incoming``);
- ``ch.segments(view)``: ``view`` cut into pipeline segments (a few MiB each).

Buffers are flat 1-D views; the communicator reshapes. The order in which partial
results are combined is fixed by each algorithm (never by arrival time), so results are
bit-identical from run to run, and identical on every rank.
"""

from __future__ import annotations

from sparkgrad.comms.algorithms.barrier import dissemination_barrier
from sparkgrad.comms.algorithms.broadcast import binomial_broadcast, chain_broadcast
from sparkgrad.comms.algorithms.direct import direct_all_to_all, direct_gather, direct_scatter
from sparkgrad.comms.algorithms.halving_doubling import halving_doubling_all_reduce
from sparkgrad.comms.algorithms.layout import blocks
from sparkgrad.comms.algorithms.reduce import binomial_reduce, chain_reduce
from sparkgrad.comms.algorithms.ring import ring_all_gather, ring_all_reduce, ring_reduce_scatter
from sparkgrad.comms.algorithms.tree import double_binary_tree_all_reduce

REGISTRY = {
    "all_reduce": {
        "ring": ring_all_reduce,
        "tree": double_binary_tree_all_reduce,
        "halving_doubling": halving_doubling_all_reduce,
    },
    "broadcast": {"chain": chain_broadcast, "binomial": binomial_broadcast},
    "reduce": {"chain": chain_reduce, "binomial": binomial_reduce},
    "reduce_scatter": {"ring": ring_reduce_scatter},
    "all_gather": {"ring": ring_all_gather},
    "all_to_all": {"direct": direct_all_to_all},
    "gather": {"direct": direct_gather},
    "scatter": {"direct": direct_scatter},
    "barrier": {"dissemination": dissemination_barrier},
}
"""collective name -> algorithm name -> function (names shared with the cost model)."""
