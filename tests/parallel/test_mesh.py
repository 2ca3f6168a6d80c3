"""ProcessMesh: the spec parser, the grid, and one working group per axis.

Truth for the groups: the ranks differing from this one only along the axis, read off
``numpy.arange(world).reshape(dp, pp, cp, tp)`` by index arithmetic here, and an exact-sum
all_reduce of the global ranks over each group.
"""

from __future__ import annotations

import numpy as np
import pytest

import sparkgrad.distributed as dist
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.hybrid.mesh import ProcessMesh, axis_groups, mesh_coordinates, parse_mesh


@pytest.mark.parametrize(
    ("spec", "world", "want"),
    [
        ("dp=2,tp=2", 4, (2, 1, 2)),
        (" tp = 4 ", 4, (1, 1, 4)),
        ("dp=2,pp=1,tp=2", 4, (2, 1, 2)),
        ("pp=3", 3, (1, 3, 1)),
        ("dp=1,tp=2", 2, (1, 1, 2)),
    ],
)
def test_parse_mesh(spec: str, world: int, want: tuple) -> None:
    sizes = parse_mesh(spec, world)
    assert (sizes["dp"], sizes["pp"], sizes["tp"]) == want


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("dp=2,tp=3", "dp\\*pp\\*cp\\*tp = 6, expected the world size 4"),
        ("dp=2", "dp\\*pp\\*cp\\*tp = 2, expected the world size 4"),
        ("dp=2,xp=2", "expected axes among .* found 'xp'"),
        ("dp2,tp=2", "expected 'axis=size' items"),
        ("dp=2;tp=2", "positive integer size for dp, found '2;tp=2'"),
        ("dp=0,tp=4", "positive integer size for dp, found '0'"),
        ("dp=-2,tp=2", "positive integer size for dp"),
        ("dp=2,dp=2", "axis 'dp' is given twice"),
        ("=2", "expected 'axis=size' items"),
    ],
)
def test_bad_specs_are_clear_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_mesh(spec, 4)


def test_axis_groups_read_the_grid() -> None:
    grid = np.arange(8).reshape(2, 2, 1, 2)
    assert axis_groups(grid, "cp") == [[r] for r in range(8)]
    assert axis_groups(grid, "tp") == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert axis_groups(grid, "pp") == [[0, 2], [1, 3], [4, 6], [5, 7]]
    assert axis_groups(grid, "dp") == [[0, 4], [1, 5], [2, 6], [3, 7]]


@pytest.mark.parametrize(("spec", "world"), [("dp=2,tp=2", 4), ("dp=2,pp=2,tp=2", 8)])
def test_mesh_groups_on_thread_ranks(spec: str, world: int) -> None:
    sizes = parse_mesh(spec, world)
    dp, pp, tp = sizes["dp"], sizes["pp"], sizes["tp"]

    def rank_fn(rank: int, world_size: int) -> dict:
        dist.init_process_group("threads", rank=rank, world_size=world_size)
        try:
            mesh = ProcessMesh(spec)
            out = {"coords": mesh.coords, "repr": repr(mesh)}
            for axis in ("dp", "pp", "tp"):
                group = mesh.group(axis)
                total = np.array([rank], dtype=np.int64)
                dist.all_reduce(total, group=group)
                out[axis] = (list(group.ranks), int(total[0]))
            return out
        finally:
            dist.destroy_process_group()

    for rank, r in enumerate(dist.spawn(rank_fn, world)):
        d, p, t = rank // (pp * tp), (rank // tp) % pp, rank % tp
        assert r["coords"] == {"dp": d, "pp": p, "cp": 0, "tp": t}
        want = {
            "dp": [i * pp * tp + p * tp + t for i in range(dp)],
            "pp": [d * pp * tp + i * tp + t for i in range(pp)],
            "tp": [d * pp * tp + p * tp + i for i in range(tp)],
        }
        for axis, ranks in want.items():
            assert r[axis] == (ranks, sum(ranks)), axis
        assert f"dp={dp}, pp={pp}, cp=1, tp={tp}" in r["repr"]
        assert str(np.arange(world).reshape(dp, pp, tp)[0, 0]).replace(" ", "") in r[
            "repr"
        ].replace(" ", "")


def test_mesh_product_must_be_the_world_size_on_ranks() -> None:
    def rank_fn(rank: int, world_size: int) -> None:
        dist.init_process_group("threads", rank=rank, world_size=world_size)
        try:
            ProcessMesh("dp=2,tp=2")
        finally:
            dist.destroy_process_group()

    with pytest.raises(ConfigError, match="expected the world size 2"):
        dist.spawn(rank_fn, 2)


def test_the_context_axis_sits_between_pipeline_and_tensor() -> None:
    # dp=2, pp=1, cp=2, tp=2: rank = d*4 + c*2 + t (Megatron's order: tp, then cp, ...)
    coords = mesh_coordinates("dp=2,cp=2,tp=2", 8)
    assert [(c["dp"], c["cp"], c["tp"]) for c in coords] == [
        (r // 4, (r // 2) % 2, r % 2) for r in range(8)
    ]
    grid = np.arange(8).reshape(2, 1, 2, 2)
    assert axis_groups(grid, "cp") == [[0, 2], [1, 3], [4, 6], [5, 7]]
    with pytest.raises(ConfigError, match=r"dp\*pp\*cp\*tp = 4, expected the world size 8"):
        parse_mesh("cp=2,tp=2", 8)
