"""Datasets: what ``len(ds)`` and ``ds[i]`` mean (``torch.utils.data``'s map-style datasets).

A *dataset* is anything with ``__len__`` and ``__getitem__``: sample ``i`` is ``ds[i]``.
Subclass :class:`Dataset` for your own (it adds ``ds1 + ds2``), or use the ready ones:

- :class:`TensorDataset`: sample ``i`` is ``(a[i], b[i], ...)``, rows of tensors that share
  their first dimension; ``ds[i]`` and ``ds[a:b]`` are tuples of Tensors that *view* the
  stored ones, as in PyTorch (``xb, yb = train_ds[i * bs : i * bs + bs]``);
- :class:`Subset`: the samples of another dataset at some indices;
  :func:`random_split` cuts a dataset into random, non-overlapping subsets;
- :class:`ConcatDataset`: several datasets one after the other.

The loader asks :func:`fetch_collated` for a whole batch at once: for a
:class:`TensorDataset` (or a :class:`Subset` of one) that is one fancy-index per tensor,
``x[[3, 7, 1]]``, instead of stacking samples one by one -- the same batch, much cheaper.
"""

from __future__ import annotations

import bisect
import itertools
import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.random import Generator, default_generator
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.dataset.sampler import check_generator
from sparkgrad.errors import ConfigError, ShapeError


class Dataset:
    """Base class of map-style datasets: override ``__getitem__`` (and ``__len__``)."""

    def __getitem__(self, index: Any) -> Any:
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


def _as_tensor(data: Any) -> Tensor:
    """Tensors stay as they are (no copy); arrays are wrapped without copying or casting."""
    if isinstance(data, Tensor):
        return data
    array = data if hasattr(data, "dtype") and hasattr(data, "shape") else np.asarray(data)
    return Tensor(array)


class TensorDataset(Dataset):
    """Samples are rows of the given tensors: ``ds[i] == (a[i], b[i], ...)`` (PyTorch).

    Tensors are stored as given (NumPy or CuPy arrays are wrapped as Tensors without a copy,
    keeping their dtype), and indexing returns Tensors: views for an int or a slice, as
    ``tensor[index]`` does.
    """

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise ConfigError("TensorDataset needs at least one tensor")
        self.tensors = tuple(_as_tensor(t) for t in tensors)
        for position, t in enumerate(self.tensors):
            if t.ndim == 0:
                raise ShapeError(
                    f"TensorDataset: tensor {position} is 0-d; every tensor needs a first "
                    "dimension (the samples)"
                )
        lengths = [t.shape[0] for t in self.tensors]
        if len(set(lengths)) != 1:
            raise ShapeError(f"Size mismatch between tensors: first dimensions are {lengths}")

    @property
    def arrays(self) -> tuple[Any, ...]:
        """The backend arrays (NumPy or CuPy) of the stored tensors."""
        return tuple(t.array for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``: ``subset[i] == dataset[indices[i]]``."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices: list[int]) -> list[Any]:
        """A batch of samples (the loader's batched fetch, as in PyTorch)."""
        inner = [self.indices[i] for i in indices]
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__(inner)
        return [self.dataset[i] for i in inner]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Datasets one after the other: index ``i`` finds its dataset by binary search."""

    def __init__(self, datasets: Iterable[Any]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ConfigError("datasets should not be an empty iterable")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int) -> Any:
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[which - 1] if which > 0 else 0
        return self.datasets[which][idx - start]


def _fraction_lengths(n: int, fractions: Sequence[float]) -> list[int]:
    """PyTorch's rule: ``floor(frac * n)`` each, the remainder handed out round-robin."""
    lengths = []
    for i, frac in enumerate(fractions):
        if frac < 0 or frac > 1:
            raise ValueError(f"Fraction at index {i} is not between 0 and 1")
        lengths.append(math.floor(n * frac))
    for i in range(n - sum(lengths)):
        lengths[i % len(lengths)] += 1
    for i, length in enumerate(lengths):
        if length == 0:
            warnings.warn(
                f"Length of split at index {i} is 0. This might result in an empty dataset.",
                stacklevel=3,
            )
    return lengths


def random_split(
    dataset: Any, lengths: Sequence[int | float], generator: Generator | None = None
) -> list[Subset]:
    """Split ``dataset`` into random non-overlapping :class:`Subset` s of ``lengths``.

    ``lengths`` are counts summing to ``len(dataset)``, or fractions summing to 1
    (``[0.8, 0.2]``). The permutation is drawn from ``generator`` (default: the global
    generator, so ``sg.manual_seed`` makes it reproducible). PyTorch's lengths and
    fractions rule; the permutation itself comes from NumPy's PCG64, not torch's.
    """
    check_generator(generator)
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        lengths = _fraction_lengths(len(dataset), lengths)
    if sum(lengths) != len(dataset):
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    rng = default_generator() if generator is None else generator
    indices = rng.permutation(sum(lengths)).tolist()
    return [
        Subset(dataset, indices[offset - length : offset])
        for offset, length in zip(itertools.accumulate(lengths), lengths)
    ]


def fetch_collated(dataset: Any, indices: Sequence[int]) -> list[Tensor] | None:
    """The default-collated batch in one fancy-index per tensor, or None if not possible.

    Equal to ``default_collate([dataset[i] for i in indices])`` (a list of stacked Tensors)
    for a :class:`TensorDataset` whose ``__getitem__`` is not overridden, or a plain
    :class:`Subset` of one (however deeply nested).
    """
    kind = type(dataset)
    if isinstance(dataset, TensorDataset) and kind.__getitem__ is TensorDataset.__getitem__:
        index = np.asarray(indices, dtype=np.int64)
        return [t[array_module(t.array).asarray(index)] for t in dataset.tensors]
    if (
        isinstance(dataset, Subset)
        and kind.__getitem__ is Subset.__getitem__
        and kind.__getitems__ is Subset.__getitems__
    ):
        return fetch_collated(dataset.dataset, [dataset.indices[i] for i in indices])
    return None
