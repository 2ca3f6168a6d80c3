"""The CSV layout of SparkTorch and Kaggle: label first, then 784 pixels, header optional."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from dataset_helpers import csv_text
from hypothesis import given, settings
from hypothesis import strategies as st

from sparkgrad.dataset import parse_mnist_csv, read_mnist_csv
from sparkgrad.errors import DataFormatError


def _digits(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 784), dtype=np.uint8), rng.integers(0, 10, n)


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("gz", [True, False])
def test_file_reads_back(tmp_path, header, gz):
    images, labels = _digits()
    data = csv_text(images, labels, header).encode()
    path = tmp_path / ("mnist_train.csv.gz" if gz else "mnist_train.csv")
    path.write_bytes(gzip.compress(data) if gz else data)
    pixels, out_labels = read_mnist_csv(path)
    assert pixels.dtype == np.uint8 and out_labels.dtype == np.int64
    np.testing.assert_array_equal(pixels, images)
    np.testing.assert_array_equal(out_labels, labels)


def test_windows_line_ends_blank_lines_and_label_last():
    images, labels = _digits(3)
    rows = [",".join([*map(str, im.tolist()), str(lb)]) for im, lb in zip(images, labels)]
    text = "\r\n".join(rows[:2]) + "\r\n\r\n" + rows[2] + "\r\n"
    pixels, out_labels = parse_mnist_csv(text, label_column="last")
    np.testing.assert_array_equal(pixels, images)
    np.testing.assert_array_equal(out_labels, labels)


def test_pandas_reads_the_same_numbers(tmp_path):
    pd = pytest.importorskip("pandas")
    images, labels = _digits(5, seed=3)
    path = tmp_path / "train.csv"
    path.write_text(csv_text(images, labels))
    frame = pd.read_csv(path)  # an independent CSV parser
    pixels, out_labels = read_mnist_csv(path)
    np.testing.assert_array_equal(out_labels, frame["label"].to_numpy())
    np.testing.assert_array_equal(pixels, frame.drop(columns="label").to_numpy())


ROW = "3," + ",".join(["0"] * 784)


BAD_CASES = [
    ("", "empty file"),
    ("  \n\n", "empty file"),
    ("label,pixel0\n", "only a header"),
    (ROW + "\n" + "3," + ",".join(["0"] * 783) + "\n", "line 2: wrong column count"),
    ("label,a\n" + ROW + "\n" + ROW + ",7\n", "line 3: wrong column count"),
    ("1,2,3\n4,5,6\n", "wrong column count: expected 785"),
    (ROW + "\n" + ROW.replace(",0", ",x", 1) + "\n", "line 2, column 2: non-numeric"),
    (ROW.replace(",0", ",256", 1), "expected an integer 0..255"),
    (ROW.replace(",0", ",-1", 1), "expected an integer 0..255"),
    (ROW.replace(",0", ",0.5", 1), "expected an integer 0..255"),
    (ROW.replace(",0", ",nan", 1), "expected an integer 0..255"),
    ("10" + ROW[1:], "label 10 is outside 0..9"),
    ("2.5" + ROW[1:], "outside 0..9"),
]


@pytest.mark.parametrize("text, problem", BAD_CASES, ids=[p for _, p in BAD_CASES])
def test_bad_csv_raises_data_format_error(tmp_path, text, problem):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=problem) as info:
        read_mnist_csv(path)
    assert str(path) in str(info.value)


def test_bad_encoding_and_fake_gzip(tmp_path):
    with pytest.raises(DataFormatError, match="not UTF-8"):
        parse_mnist_csv(b"\xff\xfe\x00\x01", "x.csv")
    with pytest.raises(DataFormatError, match="named .gz but is not gzip"):
        parse_mnist_csv(ROW.encode(), "x.csv.gz")


def test_more_classes_can_be_declared():
    row = "25" + ROW[1:]
    with pytest.raises(DataFormatError, match="outside 0..9"):
        parse_mnist_csv(row)
    assert parse_mnist_csv(row, num_classes=27)[1].tolist() == [25]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_parse_or_raise_data_format_error(data):
    try:
        pixels, labels = parse_mnist_csv(data, "random.csv", num_pixels=3)
    except DataFormatError as exc:
        assert "random.csv" in str(exc)
        return
    assert pixels.shape == (len(labels), 3) and labels.min() >= 0 and labels.max() <= 9


_FIELD = st.one_of(
    st.integers(-3, 300).map(str), st.sampled_from(["", " ", "a", "1e2", "nan", "0x1", "#", '"1"'])
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_FIELD, min_size=1, max_size=5), max_size=5), st.booleans())
def test_random_tables_parse_or_raise_data_format_error(rows, header):
    text = ("label,p0,p1,p2\n" if header else "") + "\n".join(",".join(r) for r in rows)
    try:
        pixels, labels = parse_mnist_csv(text, "table.csv", num_pixels=3)
    except DataFormatError:
        return
    # an accepted table must hold exactly the numbers a plain Python parse finds
    expected = [[float(f) for f in r] for r in rows if ",".join(r).strip()]
    np.testing.assert_array_equal(np.column_stack([labels, pixels]), np.array(expected))
