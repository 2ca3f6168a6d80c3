"""FlatBuffer: parameters end to end in one padded flat array, cut into equal shards.

The truth is the arrays themselves: flattening then viewing gives them back, the shards
put end to end give the flat array, and the padding is zeros whatever was there before.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparkgrad.errors import ConfigError, ShapeError
from sparkgrad.parallel.zero.flat_buffer import FlatBuffer


def random_arrays(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = [tuple(rng.integers(1, 6, rng.integers(0, 3))) for _ in range(rng.integers(1, 6))]
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 7])
def test_layout_lengths(seed: int, world_size: int) -> None:
    arrays = random_arrays(seed)
    fb = FlatBuffer.like(arrays, world_size)
    assert fb.numel == sum(a.size for a in arrays)
    assert fb.padded_numel % world_size == 0
    assert 0 <= fb.padding < world_size
    assert fb.padded_numel == fb.numel + fb.padding
    assert fb.shard_numel * world_size == fb.padded_numel
    assert fb.shard_numel == math.ceil(fb.numel / world_size)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_flatten_views_and_shards_round_trip(seed: int, world_size: int) -> None:
    arrays = random_arrays(seed)
    fb = FlatBuffer.like(arrays, world_size)
    out = np.full(fb.padded_numel, np.nan, dtype=np.float32)  # garbage where padding goes
    flat = fb.flatten(arrays, out=out)
    assert flat is out
    np.testing.assert_array_equal(flat[: fb.numel], np.concatenate([a.ravel() for a in arrays]))
    np.testing.assert_array_equal(flat[fb.numel :], 0)
    for got, want in zip(fb.views(flat), arrays):
        np.testing.assert_array_equal(got, want)
    shards = [fb.shard(flat, r) for r in range(world_size)]
    assert all(s.shape == (fb.shard_numel,) for s in shards)
    np.testing.assert_array_equal(np.concatenate(shards), flat)


def test_views_and_shards_share_memory() -> None:
    arrays = [np.zeros((2, 3), np.float32), np.zeros(3, np.float32)]
    fb = FlatBuffer.like(arrays, 2)
    flat = fb.flatten(arrays)
    weight, bias = fb.views(flat)
    bias[1] = 5.0  # element 6 of the flat array: rank 1's shard [5, 10)
    fb.shard(flat, 1)[0] = 7.0  # element 5: weight[1, 2]
    assert flat[7] == 5.0 and weight[1, 2] == 7.0


def test_missing_array_counts_as_zeros() -> None:
    arrays = [np.ones(3, np.float32), np.ones((2, 2), np.float32)]
    fb = FlatBuffer.like(arrays, 4)
    flat = fb.flatten([None, arrays[1]])
    np.testing.assert_array_equal(fb.views(flat)[0], 0)
    np.testing.assert_array_equal(fb.views(flat)[1], 1)


def test_clear_errors() -> None:
    fb = FlatBuffer([(2, 3), (3,)], 2)
    with pytest.raises(ShapeError, match="expected 2 arrays, found 1"):
        fb.flatten([np.zeros((2, 3))])
    with pytest.raises(ShapeError, match=r"expected an array of shape \(3,\)"):
        fb.flatten([np.zeros((2, 3)), np.zeros(4)])
    with pytest.raises(ShapeError, match=r"expected a flat array of shape \(10,\)"):
        fb.views(np.zeros(9, np.float32))
    with pytest.raises(ConfigError, match="rank in 0..1, found 2"):
        fb.shard(np.zeros(10, np.float32), 2)
    with pytest.raises(ConfigError, match="world_size >= 1"):
        FlatBuffer([(3,)], 0)
    with pytest.raises(ConfigError, match="at least one array"):
        FlatBuffer.like([], 2)
