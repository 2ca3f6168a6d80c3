"""``DataLoader``: from a dataset to batches of sparkgrad Tensors (``torch.utils.data``).

A *dataset* answers ``len(ds)`` and ``ds[i]``; a *sampler* yields indices; a *batch
sampler* groups them; ``collate_fn`` turns each group's samples into one batch::

    train_ds = TensorDataset(x_train, y_train)
    train_dl = DataLoader(train_ds, batch_size=64, shuffle=True)
    for xb, yb in train_dl:      # xb: Tensor (64, 784) float32, yb: Tensor (64,) int64
        ...

The pieces are PyTorch's: ``shuffle=True`` means ``RandomSampler(dataset,
generator=generator)``, otherwise ``SequentialSampler``; ``batch_size`` and ``drop_last``
build a ``BatchSampler``; ``collate_fn`` defaults to :func:`default_collate` (or
:func:`default_convert` with ``batch_size=None``). The argument checks and their messages
are PyTorch's too.

A :class:`TensorDataset` batch (with the default ``collate_fn``) is fetched with one
fancy-index per tensor (``x[batch]``), not sample by sample: the same batch as stacking
the samples, cheap next to the training step.

Two sparkgrad extras, keyword-only: ``seed=s`` makes the shuffle of pass ``e`` the
permutation of ``Generator().manual_seed(s + e)`` (the pass counter advances by itself, or
is set with :meth:`set_epoch`), so two loaders with the same seed give the same batches;
``device="cuda"`` moves every batch there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sparkgrad.autodiff.random import Generator
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.dataset.collate import default_collate, default_convert
from sparkgrad.dataset.dataset import TensorDataset, fetch_collated
from sparkgrad.dataset.sampler import (
    BatchSampler,
    RandomSampler,
    SequentialSampler,
    check_generator,
)
from sparkgrad.errors import ConfigError

__all__ = ["DataLoader", "TensorDataset", "get_worker_info"]


def get_worker_info() -> None:
    """Always None: on this backend every batch is loaded in the main process."""
    return None


def _moved(batch: Any, device: str) -> Any:
    """``batch`` with every Tensor inside (lists, tuples, dicts) moved to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return type(batch)((k, _moved(v, device)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_moved(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_moved(v, device) for v in batch)
    return batch


def _check_workers(
    num_workers: int,
    timeout: float,
    prefetch_factor: int | None,
    persistent_workers: bool,
    multiprocessing_context: Any,
) -> int | None:
    """PyTorch's checks of the worker options; returns the effective ``prefetch_factor``."""
    if num_workers < 0:
        raise ConfigError(
            "num_workers option should be non-negative; use num_workers=0 to disable "
            "multiprocessing."
        )
    if timeout < 0:
        raise ConfigError("timeout option should be non-negative")
    if num_workers == 0 and prefetch_factor is not None:
        raise ConfigError(
            "prefetch_factor option could only be specified in multiprocessing.let "
            "num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None."
        )
    if num_workers > 0 and prefetch_factor is None:
        prefetch_factor = 2
    elif prefetch_factor is not None and prefetch_factor < 0:
        raise ConfigError("prefetch_factor option should be non-negative")
    if persistent_workers and num_workers == 0:
        raise ConfigError("persistent_workers option needs num_workers > 0")
    if multiprocessing_context is not None and num_workers == 0:
        raise ConfigError(
            "multiprocessing_context can only be used with multi-process loading "
            f"(num_workers > 0), but got num_workers={num_workers}"
        )
    return prefetch_factor


class DataLoader:
    """Iterate over ``dataset`` in batches (``torch.utils.data.DataLoader``'s arguments).

    Args:
        dataset: anything with ``__len__`` and ``__getitem__`` (``__getitems__`` is used
            for batched fetching when it exists, as in PyTorch).
        batch_size: samples per batch; ``None`` turns automatic batching off (each index
            is fetched alone and passed through ``collate_fn``, default ``default_convert``).
        shuffle: a new random order each pass (``RandomSampler``); excludes ``sampler``.
        sampler: an iterable of indices (e.g. ``DistributedSampler``).
        batch_sampler: an iterable of index lists; excludes ``batch_size``, ``shuffle``,
            ``sampler`` and ``drop_last``.
        collate_fn: called on the *list* of a batch's samples (default ``default_collate``).
        drop_last: drop a last batch smaller than ``batch_size``.
        generator: a :class:`~sparkgrad.autodiff.random.Generator` the shuffle draws from
            (default: a fresh one per pass, seeded from the global generator).
        num_workers, prefetch_factor, persistent_workers, pin_memory, pin_memory_device,
            timeout, worker_init_fn, multiprocessing_context, in_order: accepted and
            checked as PyTorch checks them, but **this backend starts no worker processes
            and pins no memory**: every batch is loaded in the main process, in order, as
            with ``num_workers=0`` (``worker_init_fn`` is therefore never called and
            :func:`get_worker_info` is always None). Results are the same; only PyTorch's
            overlap of loading with training is missing.
        seed: (sparkgrad) shuffle pass ``e`` with ``Generator().manual_seed(seed + e)``.
        device: (sparkgrad) move every Tensor of each batch to this device.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Iterable | None = None,
        batch_sampler: Iterable[list] | None = None,
        num_workers: int = 0,
        collate_fn: Callable[[list], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: Any = None,
        generator: Generator | None = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        pin_memory_device: str = "",
        in_order: bool = True,
        seed: int | None = None,
        device: str | None = None,
    ) -> None:
        check_generator(generator)
        self.prefetch_factor = _check_workers(
            num_workers, timeout, prefetch_factor, persistent_workers, multiprocessing_context
        )
        shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ConfigError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ConfigError(
                    "batch_sampler option is mutually exclusive with batch_size, shuffle, "
                    "sampler, and drop_last"
                )
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ConfigError(
                "batch_size=None option disables auto-batching and is mutually exclusive "
                "with drop_last"
            )
        if seed is not None and (not shuffle or generator is not None):
            raise ConfigError(
                "seed= (sparkgrad) seeds the loader's own shuffle: it needs shuffle=True and "
                "no generator= (seed the generator, or the sampler, instead)"
            )
        if sampler is None and shuffle:
            sampler = RandomSampler(dataset, generator=generator)
        elif sampler is None:
            sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.persistent_workers = persistent_workers
        self.in_order = in_order
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self.seed = None if seed is None else int(seed)
        self.device = device
        self.epoch = 0

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    @property
    def _index_sampler(self) -> Iterable:
        return self.batch_sampler if self._auto_collation else self.sampler

    def set_epoch(self, epoch: int) -> None:
        """Choose the pass whose shuffle comes next (``seed=``), and tell the sampler."""
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self._index_sampler)

    def __iter__(self) -> Iterator[Any]:
        if self.seed is not None:
            self.sampler.generator = Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1  # the next pass reshuffles (set_epoch overrides)
        return self._batches(iter(self._index_sampler))

    def _batches(self, indices: Iterator[Any]) -> Iterator[Any]:
        for index in indices:
            batch = self._fetch(index) if self._auto_collation else self._fetch_one(index)
            yield batch if self.device is None else _moved(batch, self.device)

    def _fetch(self, indices: list) -> Any:
        if self.collate_fn is default_collate:
            batch = fetch_collated(self.dataset, indices)
            if batch is not None:
                return batch
        getitems = getattr(self.dataset, "__getitems__", None)
        samples = getitems(indices) if callable(getitems) else [self.dataset[i] for i in indices]
        return self.collate_fn(samples)

    def _fetch_one(self, index: Any) -> Any:
        return self.collate_fn(self.dataset[index])
