"""``load_mnist(source, split)`` over directories of IDX or CSV files, and their errors."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from dataset_helpers import csv_text, idx_by_hand, write_mnist_dir

from sparkgrad.dataset import load_mnist, load_mnist_shard, load_raw, parse_source
from sparkgrad.errors import ConfigError, DataFormatError


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("split", ["train", "test"])
def test_idx_directory_reads_back(tmp_path, gz, split):
    written = write_mnist_dir(tmp_path, gz=gz)
    images, labels = load_raw(str(tmp_path), split)
    np.testing.assert_array_equal(images, written[split][0])
    np.testing.assert_array_equal(labels, written[split][1])


def test_float_conversion_matches_torchvision_style_transforms(mnist_dir):
    directory, written = mnist_dir
    raw = torch.tensor(written["train"][0])
    x, y = load_mnist(directory, "train")  # ToTensor: /255, flattened
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (30, 784)
    np.testing.assert_allclose(x, (raw.float() / 255).reshape(30, -1).numpy(), rtol=1e-6)
    xs, _ = load_mnist(directory, "train", flatten=False, standardize=True)  # + Normalize
    expected = ((raw.float() / 255 - 0.1307) / 0.3081).numpy()
    assert xs.shape == (30, 28, 28)
    np.testing.assert_allclose(xs, expected, rtol=1e-5, atol=1e-6)
    x255, _ = load_mnist(directory, "train", normalize=False)
    np.testing.assert_array_equal(x255, raw.reshape(30, -1).float().numpy())


def test_any_idx_dataset_name_works(tmp_path):
    # EMNIST letters: a prefix, "test" instead of "t10k", labels 1..26
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    labels = np.array([1, 26, 5, 9], dtype=np.uint8)
    (tmp_path / "emnist-letters-test-images-idx3-ubyte").write_bytes(idx_by_hand(images))
    (tmp_path / "emnist-letters-test-labels-idx1-ubyte").write_bytes(idx_by_hand(labels))
    with pytest.raises(DataFormatError, match="label 26 at index 1 is outside 0..9"):
        load_raw(tmp_path, "test")
    out_images, out_labels = load_raw(tmp_path, "test", num_classes=27)
    np.testing.assert_array_equal(out_images, images)
    assert out_labels.tolist() == [1, 26, 5, 9]


def _replace(directory, name, array):
    (directory / name).write_bytes(gzip.compress(idx_by_hand(array)))


def test_count_mismatch(mnist_dir):
    directory, written = mnist_dir
    _replace(directory, "train-labels-idx1-ubyte.gz", written["train"][1][:-1].astype(np.uint8))
    with pytest.raises(DataFormatError, match="has 30 images but .* has 29 labels"):
        load_mnist(directory, "train")
    with pytest.raises(DataFormatError, match="has 30 images but .* has 29 labels"):
        load_mnist_shard(directory, 2, 0, "train")


def test_wrong_image_size(mnist_dir):
    directory, _ = mnist_dir
    _replace(directory, "t10k-images-idx3-ubyte.gz", np.zeros((12, 32, 32), np.uint8))
    with pytest.raises(DataFormatError, match=r"t10k-images.*wrong image size.*\(12, 32, 32\)"):
        load_mnist(directory, "test")


def test_labels_out_of_range(mnist_dir):
    directory, written = mnist_dir
    labels = written["test"][1].astype(np.uint8)
    labels[7] = 10
    _replace(directory, "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataFormatError, match="t10k-labels.*label 10 at index 7"):
        load_mnist(directory, "test")


def test_missing_file_lists_what_was_found(mnist_dir):
    directory, _ = mnist_dir
    (directory / "train-labels-idx1-ubyte.gz").unlink()
    (directory / "notes.txt").write_text("hi")
    with pytest.raises(DataFormatError) as info:
        load_mnist(directory, "train")
    message = str(info.value)
    assert "missing the train labels" in message and "train-images-idx3-ubyte.gz" in message
    assert "notes.txt" in message
    load_mnist(directory, "test")  # the other split is still complete


def test_empty_file_in_directory(mnist_dir):
    directory, _ = mnist_dir
    (directory / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(DataFormatError, match="train-images-idx3-ubyte.gz: empty file"):
        load_mnist(directory, "train")


def test_csv_directory_and_single_csv_file(tmp_path):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (50, 784), dtype=np.uint8)
    labels = np.arange(50) % 10
    (tmp_path / "mnist_train.csv").write_text(csv_text(images[:40], labels[:40]))
    (tmp_path / "mnist_test.csv").write_text(csv_text(images[40:], labels[40:], header=False))
    x, y = load_raw(tmp_path, "test")
    np.testing.assert_array_equal(x.reshape(10, -1), images[40:])
    np.testing.assert_array_equal(y, labels[40:])
    # one file: stratified 80/20 holdout, train and test disjoint and complete
    single = tmp_path / "all.csv"
    single.write_text(csv_text(images, labels))
    train, test = load_raw(single, "train"), load_raw(single, "test")
    assert len(train[1]) == 40 and len(test[1]) == 10
    assert np.bincount(test[1]).tolist() == [1] * 10
    rows = {bytes(r) for r in np.concatenate([train[0], test[0]]).reshape(50, -1)}
    assert rows == {bytes(r) for r in images}


def test_file_uri_without_spark_reads_locally(mnist_dir):
    directory, written = mnist_dir
    images, labels = load_raw(f"file://{directory}", "train")
    np.testing.assert_array_equal(images, written["train"][0])


@pytest.mark.parametrize(
    "source, kind",
    [
        (None, "mnist-5k"),
        ("mnist-5k", "mnist-5k"),
        ("synthetic:100", "synthetic"),
        ("hdfs://nn:8020/mnist", "uri"),
        ("s3a://bucket/mnist", "uri"),
        ("file:///tmp", "uri"),
    ],
)
def test_parse_source(source, kind):
    assert parse_source(source).kind == kind


@pytest.mark.parametrize("source", ["synthetic:", "synthetic:0", "synthetic:x", "/no/such/dir"])
def test_unusable_sources(source):
    with pytest.raises(ConfigError):
        parse_source(source)


def test_bad_split():
    with pytest.raises(ConfigError, match="split must be 'train' or 'test'"):
        load_mnist("synthetic:10", "validation")


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("world, drop_last", [(1, False), (4, False), (4, True), (7, False)])
def test_per_rank_shards_equal_torch_distributed_sampler(tmp_path, gz, world, drop_last):
    written = write_mnist_dir(tmp_path, n_train=30, gz=gz)
    images, labels = written["train"]
    seen = []
    for rank in range(world):
        torch_sampler = torch.utils.data.DistributedSampler(
            range(30), num_replicas=world, rank=rank, shuffle=False, drop_last=drop_last
        )
        idx = list(torch_sampler)
        x, y = load_mnist_shard(tmp_path, world, rank, "train", drop_last)
        np.testing.assert_array_equal(x, images[idx])
        np.testing.assert_array_equal(y, labels[idx])
        seen += idx
    assert set(seen) == set(range(30 if not drop_last else len(seen)))


def test_shards_of_generated_sources_partition_them():
    full_x, full_y = load_raw("synthetic:23", "train")
    parts = [load_mnist_shard("synthetic:23", 3, r) for r in range(3)]
    assert sum(len(p[1]) for p in parts) == 24  # 23 padded to 3 x 8
    together = np.concatenate([p[0] for p in parts])
    assert {bytes(r) for r in together} == {bytes(r) for r in full_x}
