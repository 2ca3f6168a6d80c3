"""Checking a data source without reading it: headers, lengths, first rows, counts, bombs.

The truths: the arrays written into the files (their counts), the readers that read the
whole file (a file the cheap check accepts must read back whole, a file it refuses must be
refused by the full reader too), and the memory a process actually used (``ru_maxrss``).
"""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from dataset_helpers import csv_text, idx_by_hand, write_mnist_dir

from sparkgrad.dataset import (
    MAX_IDX_BYTES,
    check_idx_file,
    count_samples,
    load_raw,
    parse_idx,
    read_idx,
    read_mnist_csv,
    scan_mnist_csv,
)
from sparkgrad.errors import ConfigError, DataFormatError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---- counts agree with what was written -------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_counts_of_an_idx_directory_without_reading_the_images(tmp_path, gz):
    written = write_mnist_dir(tmp_path, n_train=37, n_test=11, gz=gz)
    assert count_samples(str(tmp_path)) == {"train": 37, "test": 11}
    for split in ("train", "test"):  # the full reader agrees
        assert len(load_raw(str(tmp_path), split)[1]) == len(written[split][1])


def test_counts_of_csv_files_match_the_full_parse(tmp_path):
    rng = np.random.default_rng(1)
    for split, n, header in (("train", 23, True), ("test", 7, False)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n)
        text = csv_text(images, labels, header=header).replace("\n", "\r\n", 3) + "\n\n"
        (tmp_path / f"mnist_{split}.csv").write_text(text)
    assert count_samples(str(tmp_path)) == {"train": 23, "test": 7}
    assert len(read_mnist_csv(tmp_path / "mnist_train.csv")[1]) == 23


def test_csv_count_is_exact_across_chunk_boundaries(tmp_path):
    """1 MiB chunks: rows are counted whole even when a chunk ends inside one."""
    images = np.full((700, 28, 28), 255, dtype=np.uint8)  # ~2.9 KB a row: ~2 MB
    text = csv_text(images, np.arange(700) % 10)
    path = tmp_path / "train.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    assert scan_mnist_csv(path) == 700 == len(read_mnist_csv(path)[1])


def test_single_csv_file_counts_follow_the_holdout_split(tmp_path):
    labels = np.repeat(np.arange(10), 6)  # 6 per class: 1 test + 5 train each
    images = np.zeros((60, 28, 28), dtype=np.uint8)
    (tmp_path / "digits.csv").write_text(csv_text(images, labels))
    assert count_samples(str(tmp_path / "digits.csv")) == {"train": 50, "test": 10}
    assert count_samples(str(tmp_path)) == {"train": 50, "test": 10}


def test_builtin_sources_are_counted():
    assert count_samples("synthetic:3") == {"train": 3, "test": 1}
    assert count_samples("mnist-5k") == {"train": 4000, "test": 1000}
    assert count_samples("hdfs://namenode/mnist") is None  # Spark reads it, not the driver


def test_a_file_uri_is_checked_like_its_path(tmp_path):
    write_mnist_dir(tmp_path, n_train=5, n_test=4)
    assert count_samples(tmp_path.as_uri()) == {"train": 5, "test": 4}


# ---- damage is found by the cheap check, named ---------------------------------------------
def _damaged(tmp_path, split_prefix: str, kind: str, data: bytes, gz: bool = False) -> None:
    write_mnist_dir(tmp_path, n_train=20, n_test=20, gz=False)
    name = f"{split_prefix}-{kind}-ubyte"
    (tmp_path / name).unlink()
    (tmp_path / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)


GOOD_IMAGES = idx_by_hand(np.zeros((20, 28, 28), dtype=np.uint8))


@pytest.mark.parametrize(
    "kind, data, gz, problem",
    [
        ("images-idx3", GOOD_IMAGES[:-100], False, "truncated"),
        ("images-idx3", GOOD_IMAGES + b"\x00", False, "too long"),
        ("images-idx3", GOOD_IMAGES[:-100], True, "truncated"),
        ("images-idx3", GOOD_IMAGES + b"\x00", True, "more bytes than the header declares"),
        ("images-idx3", b"\x00\x00\x08\x03 not an idx file", False, "shape"),
        ("images-idx3", b"PK\x03\x04 a zip file", False, "wrong magic number"),
        ("images-idx3", idx_by_hand(np.zeros((20, 27, 28), np.uint8)), False, "wrong image size"),
        ("images-idx3", idx_by_hand(np.zeros((20, 28, 28), np.int16)), False, "uint8"),
        ("labels-idx1", idx_by_hand(np.zeros(19, np.uint8)), False, "19 labels"),
        ("labels-idx1", idx_by_hand(np.full(20, 10, np.uint8)), False, "outside 0..9"),
    ],
)
@pytest.mark.parametrize("prefix", ["train", "t10k"])
def test_damaged_train_or_test_files_are_refused_by_the_cheap_check(
    tmp_path, prefix, kind, data, gz, problem
):
    _damaged(tmp_path, prefix, kind, data, gz)
    with pytest.raises(DataFormatError, match=problem) as info:
        count_samples(str(tmp_path))
    assert f"{prefix}-" in str(info.value)  # the message names the file
    split = "train" if prefix == "train" else "test"
    with pytest.raises(DataFormatError):  # and the full reader refuses it too
        load_raw(str(tmp_path), split)


def test_a_truncated_gzip_is_found_although_its_trailer_cannot_say(tmp_path):
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(GOOD_IMAGES)[:-30])
    with pytest.raises(DataFormatError, match="not a valid gzip stream|truncated"):
        check_idx_file(path)


def test_several_gzip_members_are_accepted_as_gzip_reads_them(tmp_path):
    """The trailer holds only the last member's size: the check then inflates the stream."""
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(GOOD_IMAGES[:1000]) + gzip.compress(GOOD_IMAGES[1000:]))
    assert check_idx_file(path)[1] == (20, 28, 28)
    assert read_idx(path).shape == (20, 28, 28)


@pytest.mark.parametrize("where", ["train", "t10k"])
def test_zero_records_are_a_named_data_error(tmp_path, where):
    _damaged(tmp_path, where, "images-idx3", idx_by_hand(np.zeros((0, 28, 28), np.uint8)))
    _damaged_labels = idx_by_hand(np.zeros(0, np.uint8))
    (tmp_path / f"{where}-labels-idx1-ubyte").write_bytes(_damaged_labels)
    with pytest.raises(DataFormatError, match="no records"):
        count_samples(str(tmp_path))
    with pytest.raises(DataFormatError, match="no records"):
        load_raw(str(tmp_path), "train" if where == "train" else "test")


def test_a_one_row_csv_is_a_named_data_error_not_a_reshape_error(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("5," + ",".join(["0"] * 784) + "\n")
    for source in (str(path), str(tmp_path)):
        with pytest.raises(DataFormatError, match="1 row.*leave no test samples"):
            count_samples(source)
        with pytest.raises(DataFormatError, match="leave no test samples"):
            load_raw(source, "test")


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "empty file"),
        ("label,pixel0\n", "only a header"),
        ("5,1,2,3\n", "wrong column count"),
        ("5," + ",".join(["300"] * 784) + "\n", "pixel 0 is 300"),
        ("x5," + ",".join(["0"] * 784) + "\n5," + ",".join(["a"] * 784), "non-numeric"),
    ],
)
def test_csv_first_rows_are_checked(tmp_path, text, problem):
    path = tmp_path / "mnist_train.csv"
    path.write_text(text)
    (tmp_path / "mnist_test.csv").write_text("1," + ",".join(["0"] * 784) + "\n")
    with pytest.raises(DataFormatError, match=problem):
        count_samples(str(tmp_path))


def test_unreadable_files_are_named_data_errors(tmp_path):
    """A dangling link stands for any file that cannot be opened (this works as root too)."""
    write_mnist_dir(tmp_path, n_train=5, n_test=4, gz=False)
    (tmp_path / "train-images-idx3-ubyte").unlink()
    (tmp_path / "train-images-idx3-ubyte").symlink_to(tmp_path / "gone")
    with pytest.raises(DataFormatError, match="train-images-idx3-ubyte: cannot read the file"):
        count_samples(str(tmp_path))
    with pytest.raises(DataFormatError, match="cannot read the file"):
        load_raw(str(tmp_path), "train")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode bits")
def test_files_without_read_permission_are_named_data_errors(tmp_path):
    write_mnist_dir(tmp_path, n_train=5, n_test=4, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").chmod(0)
    with pytest.raises(DataFormatError, match="t10k-labels-idx1-ubyte: cannot read the file"):
        count_samples(str(tmp_path))


def test_bad_source_strings_are_config_errors(tmp_path):
    for source in ("synthetic:0", "synthetic:x", str(tmp_path / "missing")):
        with pytest.raises(ConfigError):
            count_samples(source)


# ---- gzip bombs --------------------------------------------------------------------------------
def _bomb(path, declared: tuple[int, ...], gib: int = 3) -> None:
    """A gzip file whose header declares ``declared`` uint8s, followed by ``gib`` GiB of
    zeros: one 64 MiB member repeated (a valid multi-member gzip), a few MB in all."""
    header = struct.pack(f">BBBB{len(declared)}I", 0, 0, 8, len(declared), *declared)
    block = gzip.compress(bytes(64 << 20), compresslevel=9, mtime=0)
    with open(path, "wb") as f:
        f.write(gzip.compress(header, mtime=0))
        for _ in range(gib * 16):
            f.write(block)


def _peak_extra_mib(code: str) -> float:
    """Run ``code`` in a fresh interpreter; MiB of peak memory above the baseline after
    importing sparkgrad.dataset (``ru_maxrss`` is in KiB on Linux)."""
    script = textwrap.dedent(
        f"""
        import resource
        from sparkgrad.dataset import check_idx_file, count_samples, parse_idx, read_idx
        from sparkgrad.errors import DataFormatError
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        {code}
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_a_gzip_bomb_stops_at_the_declared_size_in_small_memory(tmp_path):
    """3 MB that inflate to 3 GiB behind a header of 1000 images: every reader stops after
    the 784,000 bytes the header declared, and memory stays within tens of MB."""
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    _bomb(bomb, (1000, 28, 28))
    assert bomb.stat().st_size < 8 << 20
    extra = _peak_extra_mib(
        f"""
        for read in (read_idx, check_idx_file, lambda p: parse_idx(open(p, "rb").read(), p)):
            try:
                read({str(bomb)!r})
                raise SystemExit("the bomb was accepted")
            except DataFormatError as exc:
                assert "more bytes than the header declares" in str(exc), exc
        """
    )
    assert extra < 48, f"{extra:.0f} MiB over the baseline"


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_a_header_declaring_more_than_the_bound_is_refused_before_inflating(tmp_path):
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    _bomb(bomb, (4_000_000, 28, 28), gib=1)  # declares 3.1 GB > 2 GiB
    extra = _peak_extra_mib(
        f"""
        for read in (read_idx, check_idx_file):
            try:
                read({str(bomb)!r})
                raise SystemExit("the bomb was accepted")
            except DataFormatError as exc:
                assert "at most {MAX_IDX_BYTES} bytes" in str(exc), exc
        """
    )
    assert extra < 16, f"{extra:.0f} MiB over the baseline"


def test_the_bound_is_2_gib_and_raw_files_are_bounded_too(tmp_path):
    assert MAX_IDX_BYTES == 2 * 2**30
    header = struct.pack(">BBBBIII", 0, 0, 0x0E, 3, 60000, 2000, 28)  # float64: 26.9 GB
    path = tmp_path / "huge-idx3-ubyte"
    path.write_bytes(header)
    for read in (read_idx, check_idx_file, lambda p: parse_idx(p.read_bytes(), str(p))):
        with pytest.raises(DataFormatError, match="2 GiB") as info:
            read(path)
        assert "26880000000 data bytes" in str(info.value)
