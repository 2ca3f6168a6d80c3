"""The IDX format: files written by hand with NumPy must read back exactly, and every kind
of damage must raise DataFormatError naming the file, never another exception."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from dataset_helpers import idx_by_hand
from hypothesis import given, settings
from hypothesis import strategies as st

from sparkgrad.dataset import (
    idx_bytes,
    parse_idx,
    read_idx,
    read_idx_records,
    read_idx_shape,
    write_idx,
)
from sparkgrad.errors import DataFormatError

DTYPES = ["uint8", "int8", "int16", "int32", "float32"]


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_hand_written_file_reads_back(tmp_path, dtype, gz):
    array = (np.random.default_rng(0).normal(size=(7, 3, 5)) * 50).astype(dtype)
    data = idx_by_hand(array)
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    path.write_bytes(gzip.compress(data) if gz else data)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.shape == array.shape
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("dtype", DTYPES)
def test_writer_produces_the_format_bytes(tmp_path, dtype):
    array = np.arange(24).reshape(2, 3, 4).astype(dtype)
    assert idx_bytes(array) == idx_by_hand(array)
    write_idx(tmp_path / "a.gz", array)
    assert gzip.decompress((tmp_path / "a.gz").read_bytes()) == idx_by_hand(array)


def test_mnist_header_bytes_are_the_published_ones():
    # train-images-idx3-ubyte starts with 0x00000803, 60000, 28, 28 (yann.lecun.com/exdb/mnist)
    header = idx_bytes(np.zeros((60000, 28, 28), np.uint8))[:16]
    assert header.hex() == "00000803" + "0000ea60" + "0000001c" + "0000001c"


@pytest.mark.parametrize("gz", [False, True])
def test_read_records_reads_the_requested_rows_in_order(tmp_path, gz):
    array = np.random.default_rng(1).integers(0, 256, size=(23, 28, 28), dtype=np.uint8)
    path = tmp_path / ("r.gz" if gz else "r")
    write_idx(path, array)
    wanted = [5, 0, 22, 5, 13]  # any order, repeats allowed (as padding needs)
    np.testing.assert_array_equal(read_idx_records(path, wanted), array[wanted])
    assert read_idx_records(path, []).shape == (0, 28, 28)
    assert read_idx_shape(path) == (23, 28, 28)
    with pytest.raises(DataFormatError, match="record index 23"):
        read_idx_records(path, [23])


GOOD = idx_by_hand(np.arange(12, dtype=np.uint8).reshape(3, 4))


@pytest.mark.parametrize(
    "data, problem",
    [
        (b"", "empty file"),
        (b"\x00\x00", "truncated"),
        (b"\x00\x01\x08\x02" + GOOD[4:], "wrong magic number"),
        (b"\x00\x00\x07\x02" + GOOD[4:], "wrong magic number"),
        (b"\x00\x00\x08\x00", "wrong magic number"),
        (GOOD[:10], "truncated header"),
        (GOOD[:-1], "truncated"),
        (GOOD + b"\x00", "trailing bytes"),
        (gzip.compress(GOOD)[:-9], "not a valid gzip stream"),
        (b"\x1f\x8b" + b"garbage", "not a valid gzip stream"),
    ],
)
def test_damaged_files_raise_data_format_error(tmp_path, data, problem):
    path = tmp_path / "broken-idx"
    path.write_bytes(data)
    with pytest.raises(DataFormatError, match=problem) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_gz_name_that_is_not_gzip(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(GOOD)
    for read in (read_idx, read_idx_shape, lambda p: read_idx_records(p, [0])):
        with pytest.raises(DataFormatError, match="named .gz but is not gzip"):
            read(path)


def test_raw_file_size_must_match_the_header_for_record_reads(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(GOOD[:-2])
    with pytest.raises(DataFormatError, match="the file has"):
        read_idx_records(path, [0])


def test_writer_rejects_what_idx_cannot_hold():
    with pytest.raises(DataFormatError, match="cannot write IDX"):
        idx_bytes(np.zeros(3, dtype=np.int64))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_parse_or_raise_data_format_error(data):
    try:
        out = parse_idx(data, "random")
    except DataFormatError as exc:
        assert "random" in str(exc)
        return
    # a successful parse must be exactly what the header promised
    assert idx_bytes(out) == data


@settings(max_examples=80, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(0, 40))
def test_random_tails_on_a_valid_header_and_gzip(tail, cut):
    for data in (GOOD[:cut] + tail, gzip.compress(GOOD)[:cut] + tail):
        try:
            out = parse_idx(data, "mutated")
        except DataFormatError:
            continue
        assert idx_bytes(out) == (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
