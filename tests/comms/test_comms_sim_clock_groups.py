"""Sub-groups' calls are recorded for the rank, and the model prices them on a modelled cluster.

A tensor-parallel or hybrid rank talks mostly through groups made by ``new_group``; the
time its run reports as "predicted on 2x8-h100" must include those calls. The truth is
the cost model called by hand for the same collective, size and group size. The model
is an observer: the algorithm that *ran* is chosen on this machine's link, while the
prediction uses the one the modelled cluster's tuner would pick there.
"""

from __future__ import annotations

import numpy as np

import sparkgrad.distributed as dist
from sparkgrad.comms.model import predict, predicted_seconds, replay, select_algorithm
from sparkgrad.comms.model.topology import Topology

NBYTES = 1 << 18


def test_subgroup_calls_are_recorded_for_the_rank_and_priced_on_the_modelled_cluster():
    def rank_fn(rank: int, world: int) -> tuple[float, int, int]:
        dist.init_process_group("threads", rank=rank, world_size=world)
        try:
            pg = dist.state.default_group().pg
            low, high = dist.new_group([0, 1]), dist.new_group([2, 3])  # every rank makes both
            group = low if rank < 2 else high
            dist.all_reduce(np.ones(NBYTES // 4, np.float32), group=group)
            total = predicted_seconds(pg.calls(), "2x8-h100")
            clock = replay(pg.calls(), "2x8-h100")
            assert clock.now == total and len(clock.events) == 1
            pg.reset_history()
            return total, len(pg.calls()), len(pg.history)
        finally:
            dist.destroy_process_group()

    topo = Topology.parse("2x8-h100")
    want = predict("all_reduce", select_algorithm("all_reduce", NBYTES, 2, topo), NBYTES, 2, topo)
    for total, after_reset, own in dist.spawn(rank_fn, 4):
        assert total == want  # the sub-group's call, priced on 2x8-h100, counted for the rank
        assert after_reset == 0 and own == 0  # reset reached the sub-group
