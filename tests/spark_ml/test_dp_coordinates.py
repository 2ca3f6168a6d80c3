"""Which share of the rows each rank of a Spark ML fit trains on (no Spark needed): the
same data-parallel coordinate the strategy's own ``data_parallel_rank`` reports."""

from __future__ import annotations

import pytest

import sparkgrad.distributed as dist
from sparkgrad.parallel.hybrid.mesh import ProcessMesh
from sparkgrad.spark.ml.shards import dp_coordinates


@pytest.mark.parametrize(
    ("strategy", "world", "mesh", "want"),
    [
        ("data", 3, "", [0, 1, 2]),
        ("zero2", 2, "", [0, 1]),
        ("tensor", 2, "", [0, 0]),
        ("pipeline", 3, "", [0, 0, 0]),
        ("hybrid", 4, "dp=2,tp=2", [0, 0, 1, 1]),
        ("hybrid", 4, "dp=2,pp=2", [0, 0, 1, 1]),
        ("hybrid", 8, "dp=2,cp=2,tp=2", [0, 0, 0, 0, 1, 1, 1, 1]),
    ],
)
def test_dp_coordinates(strategy: str, world: int, mesh: str, want: list[int]) -> None:
    assert dp_coordinates(strategy, world, mesh) == want


def test_hybrid_coordinates_are_the_live_meshs() -> None:
    def rank_fn(rank: int, world_size: int) -> int:
        dist.init_process_group("threads", rank=rank, world_size=world_size)
        try:
            return ProcessMesh("dp=2,tp=2").coords["dp"]
        finally:
            dist.destroy_process_group()

    assert dp_coordinates("hybrid", 4, "dp=2,tp=2") == dist.spawn(rank_fn, 4)
