"""``TensorDataset`` and ``DataLoader``: from arrays to batches of sparkgrad Tensors.

As in PyTorch, a *dataset* answers ``len(ds)`` and ``ds[i]``, a *sampler* yields indices,
and the *loader* groups indices into batches and stacks the samples::

    images, labels = load_mnist("mnist-5k", split="train")
    loader = DataLoader(TensorDataset(images, labels), batch_size=64, shuffle=True, seed=0)
    for x, y in loader:          # x: Tensor (64, 784) float32, y: Tensor (64,) int64
        ...

Array datasets are batched with one fancy-indexing per array (``images[batch]``), not
sample by sample, which keeps the loader cheap next to the training step. With
``shuffle=True`` each pass over the loader draws a new permutation from
``default_rng(seed + epoch)``; the epoch counts passes, or is set with :meth:`set_epoch`,
so two loaders with the same seed give the same batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import to_numpy
from sparkgrad.autodiff.factories import tensor
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError, ShapeError


class TensorDataset:
    """Samples are rows of the given arrays (or Tensors): ``ds[i] == (a[i], b[i], ...)``."""

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ConfigError("TensorDataset needs at least one array")
        self.arrays = tuple(
            to_numpy(a.array) if isinstance(a, Tensor) else np.asarray(a) for a in arrays
        )
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) != 1:
            raise ShapeError(f"Size mismatch between arrays: first dimensions are {lengths}")

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: Any) -> tuple[np.ndarray, ...]:
        return tuple(a[index] for a in self.arrays)


class DataLoader:
    """Batches of ``dataset`` as tuples of Tensors on ``device`` (PyTorch's argument order).

    ``sampler`` (e.g. a :class:`DistributedSampler`) decides the indices and excludes
    ``shuffle=True``. ``drop_last`` drops a last batch smaller than ``batch_size``.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        sampler: Iterable[int] | None = None,
        drop_last: bool = False,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, found {batch_size}")
        if sampler is not None and shuffle:
            raise ConfigError("sampler option is mutually exclusive with shuffle")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.sampler = sampler
        self.drop_last = drop_last
        self.seed = int(seed)
        self.device = device
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation the next pass uses (and the sampler's)."""
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def _indices(self) -> list[int]:
        if self.sampler is not None:
            return list(self.sampler)
        n = len(self.dataset)
        if self.shuffle:
            return np.random.default_rng(self.seed + self.epoch).permutation(n).tolist()
        return list(range(n))

    def __len__(self) -> int:
        if self.sampler is None:
            n = len(self.dataset)
        else:
            n = len(self.sampler) if isinstance(self.sampler, Sized) else len(list(self.sampler))
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        indices = self._indices()
        if self.sampler is None:
            self.epoch += 1  # the next pass reshuffles (set_epoch overrides)
        stop = len(indices) - len(indices) % self.batch_size if self.drop_last else len(indices)
        for start in range(0, stop, self.batch_size):
            yield self._collate(indices[start : start + self.batch_size])

    def _collate(self, batch: Sequence[int]) -> tuple[Tensor, ...]:
        if isinstance(self.dataset, TensorDataset):
            columns = self.dataset[np.asarray(batch, dtype=np.int64)]
        else:
            samples = [self.dataset[i] for i in batch]
            if not isinstance(samples[0], tuple):
                samples = [(s,) for s in samples]
            width = len(samples[0])
            columns = tuple(np.stack([np.asarray(s[k]) for s in samples]) for k in range(width))
        return tuple(tensor(c, device=self.device) for c in columns)
