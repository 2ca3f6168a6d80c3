"""Samplers: which indices a loader visits, in which order (``torch.utils.data``'s samplers).

A sampler is an iterable of dataset indices (:class:`SequentialSampler` ``0, 1, 2, ...``;
:class:`RandomSampler` a permutation per pass), or of lists of them
(:class:`BatchSampler`: ``[0, 1, 2], [3, 4, 5], ...``). :class:`DistributedSampler`
gives each rank its share.

Shuffling draws from a :class:`~sparkgrad.autodiff.random.Generator`: the one you pass,
or, like PyTorch, a fresh one per pass whose seed comes from the global generator (so
``sg.manual_seed`` makes it reproducible). The orders are NumPy's PCG64 permutations, not
torch's; lengths, coverage and every rule about them are PyTorch's.

``DistributedSampler``: every rank must run the same number of steps (a collective waits
for all ranks), so the index list is first made divisible by ``num_replicas``:

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

import itertools
import math
import os
import sys
from collections.abc import Iterable, Iterator, Sized
from typing import Any

import numpy as np

from sparkgrad.autodiff.random import Generator, default_generator
from sparkgrad.errors import ConfigError


class Sampler:
    """Base class: ``__iter__`` yields indices (or lists of them); ``__len__`` counts them."""

    def __init__(self, data_source: Sized | None = None) -> None:
        pass  # PyTorch ignores it too (kept for old subclasses that pass it)

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError("Subclasses of Sampler should implement __iter__.")


class SequentialSampler(Sampler):
    """``0, 1, ..., len(data_source) - 1``, always in that order."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


def check_generator(generator: object) -> None:
    """A ``torch.Generator`` (or anything else) cannot drive NumPy draws: say so early."""
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(
            "generator: expected a sparkgrad.Generator (or a numpy.random.Generator), found "
            f"{type(generator).__module__}.{type(generator).__qualname__}"
        )


def _fresh_generator() -> Generator:
    """A generator seeded from the global one (what PyTorch does per pass)."""
    return Generator().manual_seed(int(default_generator().integers(0, 2**63)))


class RandomSampler(Sampler):
    """A random order of the indices (a new one per pass), or draws with replacement.

    Without replacement, ``num_samples`` (default ``len(data_source)``) indices come from
    as many permutations as needed; with ``replacement=True`` each index is drawn
    independently (in chunks of 32, as PyTorch does).
    """

    def __init__(
        self,
        data_source: Sized,
        replacement: bool = False,
        num_samples: int | None = None,
        generator: Generator | None = None,
    ) -> None:
        check_generator(generator)
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(self.replacement, bool):
            raise TypeError(
                f"replacement should be a boolean value, but got replacement={self.replacement}"
            )
        if (
            not isinstance(self.num_samples, int)
            or isinstance(self.num_samples, bool)
            or self.num_samples <= 0
        ):
            raise ConfigError(
                "num_samples should be a positive integer value, but got "
                f"num_samples={self.num_samples}"
            )

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        rng = _fresh_generator() if self.generator is None else self.generator
        if self.replacement:
            for _ in range(self.num_samples // 32):
                yield from rng.integers(0, n, size=32).tolist()
            yield from rng.integers(0, n, size=self.num_samples % 32).tolist()
        else:
            for _ in range(self.num_samples // n):
                yield from rng.permutation(n).tolist()
            yield from rng.permutation(n).tolist()[: self.num_samples % n]

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Group the indices of ``sampler`` into lists of ``batch_size`` (the last may be short).

    ``drop_last=True`` drops a last list shorter than ``batch_size``.
    """

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ConfigError(
                f"batch_size should be a positive integer value, but got batch_size={batch_size}"
            )
        if not isinstance(drop_last, bool):
            raise ConfigError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        it = iter(self.sampler)
        batch = list(itertools.islice(it, self.batch_size))
        while batch:
            if self.drop_last and len(batch) < self.batch_size:
                return
            yield batch
            batch = list(itertools.islice(it, self.batch_size))

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size


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


def _default_world() -> tuple[int, int]:
    """``(world_size, rank)`` of the default process group, else of the environment.

    The process group is looked up only if ``sparkgrad.distributed`` was imported already
    (whoever called ``init_process_group`` did): this layer does not import it.
    """
    dist = sys.modules.get("sparkgrad.distributed")
    if dist is not None and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))


class DistributedSampler(Sampler):
    """Indices of one rank's share of ``dataset`` (PyTorch's ``DistributedSampler``).

    ``num_replicas`` and ``rank`` default, as in PyTorch, to the world size and rank of the
    default process group when ``sparkgrad.distributed.init_process_group`` has run on this
    rank; otherwise to the ``WORLD_SIZE`` and ``RANK`` environment variables (as set by
    ``torchrun`` and by sparkgrad's Spark runner), else 1 and 0 (PyTorch raises there).
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
        group_size, group_rank = _default_world()
        if num_replicas is None:
            num_replicas = group_size
        if rank is None:
            rank = group_rank
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
