"""``DistributedSampler``: which samples rank ``r`` of ``n`` sees, as in PyTorch.

Every rank must run the same number of steps (a collective waits for all ranks), so the
index list is first made divisible by ``num_replicas``:

- ``drop_last=False`` pads it by repeating its head: 10 samples on 4 ranks become
  ``[0..9, 0, 1]`` (12 = 3 per rank). Two samples are seen twice per epoch.
- ``drop_last=True`` trims the tail instead: 10 samples on 4 ranks become ``[0..7]``.

Rank ``r`` then takes the strided slice ``indices[r::num_replicas]``, so on 4 ranks rank 1
gets ``1, 5, 9``. With ``shuffle=True`` the list is a permutation drawn from
``default_rng(seed + epoch)`` (NumPy's PCG64, the generator sparkgrad uses everywhere);
every rank draws the same permutation because every rank has the same seed, and
:meth:`set_epoch` gives each epoch a new one. Without shuffling the lists are exactly
PyTorch's; with shuffling the lengths, padding and coverage are PyTorch's but the order
comes from our generator, not torch's.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sized

import numpy as np

from sparkgrad.errors import ConfigError


def padded_indices(order: list[int], total_size: int) -> list[int]:
    """Pad ``order`` to ``total_size`` by repeating it from the head, or trim it (PyTorch)."""
    if total_size <= len(order):
        return order[:total_size]
    padding = total_size - len(order)
    if padding <= len(order):
        return order + order[:padding]
    return order + (order * math.ceil(padding / len(order)))[:padding]


def total_size(n: int, num_replicas: int, drop_last: bool = False) -> int:
    """Length of the padded (or trimmed) list: a multiple of ``num_replicas``."""
    if drop_last and n % num_replicas != 0:
        # drop the tail so that every rank gets the same number of samples
        return math.ceil((n - num_replicas) / num_replicas) * num_replicas
    return math.ceil(n / num_replicas) * num_replicas


class DistributedSampler:
    """Indices of one rank's share of ``dataset`` (PyTorch's ``DistributedSampler``).

    ``num_replicas`` and ``rank`` default to the ``WORLD_SIZE`` and ``RANK`` environment
    variables (as set by ``torchrun`` and by sparkgrad's Spark runner), else 1 and 0.
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if num_replicas is None:
            num_replicas = int(os.environ.get("WORLD_SIZE", 1))
        if rank is None:
            rank = int(os.environ.get("RANK", 0))
        if num_replicas < 1:
            raise ConfigError(f"num_replicas must be >= 1, found {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ConfigError(
                f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]"
            )
        self.dataset = dataset
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.epoch = 0
        self.total_size = total_size(len(dataset), self.num_replicas, drop_last)
        self.num_samples = self.total_size // self.num_replicas

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n).tolist()
        else:
            order = list(range(n))
        indices = padded_indices(order, self.total_size)
        assert len(indices) == self.total_size
        mine = indices[self.rank : self.total_size : self.num_replicas]
        assert len(mine) == self.num_samples
        return iter(mine)

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Use a new permutation for this epoch (call it before iterating, on every rank)."""
        self.epoch = int(epoch)
