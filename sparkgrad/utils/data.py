"""``sparkgrad.utils.data``: ``torch.utils.data``'s names (they live in :mod:`sparkgrad.dataset`).

``from sparkgrad.utils.data import DataLoader, TensorDataset`` ports a PyTorch tutorial's
imports; see :mod:`sparkgrad.dataset.loader` for what runs differently (no worker
processes: every batch is loaded in the main process).
"""

from sparkgrad.dataset.collate import default_collate, default_convert
from sparkgrad.dataset.dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from sparkgrad.dataset.loader import DataLoader, get_worker_info
from sparkgrad.dataset.sampler import (
    BatchSampler,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

__all__ = [
    "BatchSampler",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "DistributedSampler",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "Subset",
    "TensorDataset",
    "default_collate",
    "default_convert",
    "get_worker_info",
    "random_split",
]
