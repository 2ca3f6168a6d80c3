"""DistributedSampler against ``torch.utils.data.DistributedSampler``.

Without shuffling the index lists must be identical. With shuffling the permutation comes
from sparkgrad's generator, so we compare what does not depend on it: per-rank lengths,
which positions are padding, and that all ranks together cover the data set.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from sparkgrad.dataset import DistributedSampler
from sparkgrad.errors import ConfigError

CASES = [
    (n, world, drop_last)
    for n in (1, 3, 10, 17, 64)
    for world in (1, 2, 3, 4, 8)
    for drop_last in (False, True)
]


def _both(n, world, rank, shuffle, drop_last, seed=0, epoch=0):
    ours = DistributedSampler(range(n), world, rank, shuffle, seed, drop_last)
    theirs = torch.utils.data.DistributedSampler(
        range(n), num_replicas=world, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
    )
    ours.set_epoch(epoch)
    theirs.set_epoch(epoch)
    return ours, theirs


@pytest.mark.parametrize("n, world, drop_last", CASES)
def test_without_shuffle_equals_torch(n, world, drop_last):
    for rank in range(world):
        ours, theirs = _both(n, world, rank, False, drop_last)
        assert list(ours) == list(theirs)
        assert len(ours) == len(theirs) and ours.total_size == theirs.total_size


@pytest.mark.parametrize("n, world, drop_last", CASES)
@pytest.mark.parametrize("epoch", [0, 3])
def test_with_shuffle_lengths_padding_and_coverage_equal_torch(n, world, drop_last, epoch):
    ours_all, theirs_all = [], []
    for rank in range(world):
        ours, theirs = _both(n, world, rank, True, drop_last, seed=7, epoch=epoch)
        mine, ref = list(ours), list(theirs)
        assert len(mine) == len(ref) == len(ours) == len(theirs)
        ours_all += mine
        theirs_all += ref
    # same multiset shape: how many samples appear 0, 1, 2, ... times in the epoch
    count = lambda xs: sorted(Counter(Counter(xs).values()).items())  # noqa: E731
    assert count(ours_all) == count(theirs_all)
    assert len(set(ours_all)) == len(set(theirs_all))
    if not drop_last:
        assert set(ours_all) == set(range(n))  # every sample is seen
    assert len(ours_all) == len(theirs_all)


def test_shuffle_is_a_seeded_permutation_that_changes_with_epoch():
    def epoch_order(seed, epoch):
        s = DistributedSampler(range(20), 1, 0, shuffle=True, seed=seed)
        s.set_epoch(epoch)
        return list(s)

    expected = np.random.default_rng(5 + 2).permutation(20).tolist()  # seed + epoch, PCG64
    assert epoch_order(5, 2) == expected
    assert epoch_order(5, 2) == epoch_order(5, 2)
    assert epoch_order(5, 2) != epoch_order(5, 3)
    assert sorted(epoch_order(5, 3)) == list(range(20))


def test_all_ranks_draw_the_same_permutation():
    world = 3
    per_rank = [list(DistributedSampler(range(12), world, r, seed=1)) for r in range(world)]
    interleaved = [per_rank[p % world][p // world] for p in range(12)]
    assert interleaved == np.random.default_rng(1).permutation(12).tolist()


def test_defaults_from_environment(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    s = DistributedSampler(range(10), shuffle=False)
    assert (s.num_replicas, s.rank, list(s)) == (4, 2, [2, 6, 0])


@pytest.mark.parametrize("world, rank", [(2, 2), (2, -1), (0, 0)])
def test_bad_rank_or_world(world, rank):
    with pytest.raises(ConfigError):
        DistributedSampler(range(4), world, rank)
