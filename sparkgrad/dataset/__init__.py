"""MNIST readers (IDX, CSV), sources (embedded, path, Hadoop URI), DataLoader and samplers.

Start with :func:`load_mnist` (every source behind one string), then :class:`DataLoader`
and :class:`DistributedSampler`. ``torch.utils.data``'s names live in :mod:`.dataset`
(datasets), :mod:`.sampler` (samplers), :mod:`.collate` and :mod:`.loader`, re-exported
as ``sparkgrad.utils.data``. The file formats live in :mod:`.idx` and :mod:`.csv`,
the Spark side in :mod:`.spark_io` (pyspark is imported only when its functions run).
"""

from sparkgrad.dataset.check import check_idx_pair, count_samples
from sparkgrad.dataset.collate import default_collate, default_convert
from sparkgrad.dataset.csv import parse_mnist_csv, read_mnist_csv, scan_mnist_csv
from sparkgrad.dataset.dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from sparkgrad.dataset.embedded import holdout_split, load_mnist_5k, mnist_5k_path
from sparkgrad.dataset.idx import (
    MAX_IDX_BYTES,
    check_idx_file,
    idx_bytes,
    parse_idx,
    read_idx,
    read_idx_records,
    read_idx_shape,
    write_idx,
)
from sparkgrad.dataset.loader import DataLoader, get_worker_info
from sparkgrad.dataset.mnist_files import check_images_labels, choose_files, find_mnist_files
from sparkgrad.dataset.sampler import (
    BatchSampler,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
)
from sparkgrad.dataset.sources import (
    MNIST_MEAN,
    MNIST_STD,
    Source,
    load_mnist,
    load_mnist_shard,
    load_raw,
    parse_source,
)
from sparkgrad.dataset.spark_io import (  # pyspark is imported only when these run
    collect_shard,
    load_uri,
    records_to_arrays,
    shard_dataframe,
    shard_uri,
)
from sparkgrad.dataset.synthetic import make_synthetic

__all__ = [
    "BatchSampler",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "DistributedSampler",
    "MAX_IDX_BYTES",
    "MNIST_MEAN",
    "MNIST_STD",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "Source",
    "Subset",
    "TensorDataset",
    "check_idx_file",
    "check_idx_pair",
    "check_images_labels",
    "collect_shard",
    "count_samples",
    "default_collate",
    "default_convert",
    "get_worker_info",
    "choose_files",
    "find_mnist_files",
    "holdout_split",
    "idx_bytes",
    "load_mnist",
    "load_mnist_5k",
    "load_mnist_shard",
    "load_raw",
    "load_uri",
    "make_synthetic",
    "mnist_5k_path",
    "parse_idx",
    "parse_mnist_csv",
    "parse_source",
    "read_idx",
    "read_idx_records",
    "read_idx_shape",
    "random_split",
    "read_mnist_csv",
    "records_to_arrays",
    "scan_mnist_csv",
    "shard_dataframe",
    "shard_uri",
    "write_idx",
]
