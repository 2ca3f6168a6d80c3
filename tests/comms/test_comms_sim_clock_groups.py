"""Sub-groups predict on the parent's modelled cluster, and their time counts for the rank.

A tensor-parallel or hybrid rank talks mostly through groups made by ``new_group``; the
time its run reports as "predicted on 2x8-h100" must include those calls. The truth is
the cost model called by hand for the same collective, size and group size.
"""

from __future__ import annotations

import numpy as np

import sparkgrad.distributed as dist
from sparkgrad.comms.cost_model import predict, select_algorithm
from sparkgrad.comms.topology import Topology

NBYTES = 1 << 18


def test_subgroup_calls_are_predicted_on_the_parents_topology_and_counted():
    def rank_fn(rank: int, world: int) -> tuple[float, float, float]:
        dist.init_process_group("threads", rank=rank, world_size=world, topology="2x8-h100")
        try:
            pg = dist.state.default_group().pg
            low, high = dist.new_group([0, 1]), dist.new_group([2, 3])  # every rank makes both
            group = low if rank < 2 else high
            dist.all_reduce(np.ones(NBYTES // 4, np.float32), group=group)
            sub = dist.state.resolve(group).pg
            total = pg.predicted_seconds()
            pg.reset_clocks()
            return pg.clock.now, sub.clock.now, total
        finally:
            dist.destroy_process_group()

    topo = Topology.parse("2x8-h100")
    want = predict("all_reduce", select_algorithm("all_reduce", NBYTES, 2, topo), NBYTES, 2, topo)
    for own, sub_after_reset, total in dist.spawn(rank_fn, 4):
        assert total == want  # the sub-group's call, priced on 2x8-h100, counted for the rank
        assert own == 0.0 and sub_after_reset == 0.0  # reset reached the sub-group
