"""Reading through Spark (local mode, ``file://`` URIs) and per-rank shards in Spark.

These start a local SparkSession (several seconds), so they are marked slow and kept few.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dataset_helpers import csv_text, write_mnist_dir

from sparkgrad.dataset import load_mnist, load_raw
from sparkgrad.dataset.spark_io import collect_shard, load_uri, shard_dataframe, shard_uri
from sparkgrad.errors import DataFormatError

pytestmark = pytest.mark.slow


def _torch_indices(n, world, rank, drop_last):
    sampler = torch.utils.data.DistributedSampler(
        range(n), num_replicas=world, rank=rank, shuffle=False, drop_last=drop_last
    )
    return list(sampler)


def test_idx_and_csv_directories_through_spark(spark, tmp_path):
    idx_dir, csv_dir = tmp_path / "idx", tmp_path / "csv"
    idx_dir.mkdir()
    csv_dir.mkdir()
    written = write_mnist_dir(idx_dir, n_train=25, n_test=7)
    for split, (images, labels) in written.items():
        (csv_dir / f"mnist_{split}.csv").write_text(csv_text(images, labels))
    for directory in (idx_dir, csv_dir):
        for split in ("train", "test"):
            images, labels = load_uri(f"file://{directory}", split, spark=spark)
            np.testing.assert_array_equal(images, written[split][0])
            np.testing.assert_array_equal(labels, written[split][1])
    # load_mnist routes a URI through the active session, with the usual float conversion
    x, y = load_mnist(f"file://{idx_dir}", "test")
    np.testing.assert_array_equal(x, load_mnist(idx_dir, "test")[0])
    # errors keep their meaning through Spark
    (idx_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataFormatError, match="missing the test labels.*t10k-images"):
        load_raw(f"file://{idx_dir}", "test", spark=spark)
    with pytest.raises(DataFormatError, match="cannot list files"):
        load_uri(f"file://{tmp_path}/nothing-here", "train", spark=spark)


@pytest.mark.parametrize("world, drop_last", [(3, False), (4, True)])
def test_shards_per_rank_equal_torch_distributed_sampler(spark, tmp_path, world, drop_last):
    written = write_mnist_dir(tmp_path, n_train=26, n_test=5)
    images, labels = written["train"]
    shards = shard_uri(spark, f"file://{tmp_path}", world, "train", drop_last)
    assert shards.getNumPartitions() == world
    seen = []
    for rank in range(world):
        idx = _torch_indices(26, world, rank, drop_last)
        x, y = collect_shard(shards, rank)
        np.testing.assert_array_equal(x, images[idx])
        np.testing.assert_array_equal(y, labels[idx])
        seen += idx
    assert set(seen) == set(range(26 if not drop_last else 24))
    # the task of rank r sees exactly its records: count them inside the tasks
    sizes = shards.mapPartitions(lambda it: [sum(1 for _ in it)]).collect()
    assert sizes == [len(_torch_indices(26, world, r, drop_last)) for r in range(world)]


def test_csv_shards_and_dataframe_shards(spark, tmp_path):
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (11, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 11)
    (tmp_path / "train.csv").write_text(csv_text(images, labels))
    (tmp_path / "test.csv").write_text(csv_text(images[:2], labels[:2]))
    shards = shard_uri(spark, f"file://{tmp_path}", 2, "train")
    for rank in range(2):
        idx = _torch_indices(11, 2, rank, False)
        x, y = collect_shard(shards, rank)
        np.testing.assert_array_equal(x, images[idx])
        np.testing.assert_array_equal(y, labels[idx])
    df = spark.createDataFrame([(int(i), int(i) * 10) for i in range(10)], "id long, v long")
    df = df.repartition(3).orderBy("id")  # several partitions, a defined order
    for rank in (0, 3):  # the first rank, and the last one (which gets padding)
        rows = shard_dataframe(df, 4, rank).collect()
        assert [r.id for r in rows] == _torch_indices(10, 4, rank, False)


def test_bad_file_read_inside_a_task_raises_data_format_error(spark, tmp_path):
    write_mnist_dir(tmp_path, n_train=6, n_test=2, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    shards = shard_uri(spark, f"file://{tmp_path}", 2, "train")
    with pytest.raises(DataFormatError, match="train-images-idx3-ubyte: truncated"):
        collect_shard(shards, 0)


def test_shards_feed_a_barrier_stage_one_rank_per_task(spark, tmp_path):
    from pyspark import BarrierTaskContext

    from sparkgrad.dataset.spark_io import records_to_arrays

    written = write_mnist_dir(tmp_path, n_train=9, n_test=2)
    images = written["train"][0]

    def rank_task(records):
        rank = BarrierTaskContext.get().partitionId()
        x, y = records_to_arrays(records)
        return [(rank, x.reshape(len(x), -1).sum(axis=1).tolist())]

    shards = shard_uri(spark, f"file://{tmp_path}", 2, "train")
    out = dict(shards.barrier().mapPartitions(rank_task).collect())
    for rank in range(2):
        idx = _torch_indices(9, 2, rank, False)
        assert out[rank] == images[idx].reshape(len(idx), -1).sum(axis=1).tolist()
