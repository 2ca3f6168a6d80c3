"""Data behind a Hadoop URI (``hdfs://``, ``s3a://``, ``file://``), read through Spark.

Python code in a Spark task cannot open an ``hdfs://`` path itself; the JVM can. So we let
Spark's own readers fetch the bytes and do the parsing in Python:

- :func:`load_uri` (driver): the whole split as arrays. Files are listed with the
  ``binaryFile`` source selecting only ``path`` (no content is read), then the two files
  of the split are fetched and parsed with the same code as local files.
- :func:`shard_uri` (driver, for a barrier stage): an RDD with one partition per rank.
  Each file is read and parsed by *one* task, which sends every record straight to the
  partition of the rank that owns it; a rank's task then sees only its own records,
  never the whole data set. Ownership is ``DistributedSampler(shuffle=False)``'s: the
  sample list padded by repeating its head, rank ``r`` taking positions ``r, r + n, ...``.
- :func:`shard_dataframe`: the same ownership for rows of any DataFrame, as a filter.

Use it as ``shard_uri(spark, uri, n).barrier().mapPartitions(train_rank)``, with
``records_to_arrays`` turning the partition into ``(images, labels)``. pyspark is imported
inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from sparkgrad.dataset.csv import parse_mnist_csv
from sparkgrad.dataset.idx import parse_idx
from sparkgrad.dataset.mnist_files import check_images_labels, check_split, choose_files
from sparkgrad.dataset.sampler import DistributedSampler, total_size
from sparkgrad.errors import ConfigError, DataFormatError

_DATA_ERROR = re.compile(r"DataFormatError: (.*)")


def positions_of(index: int, n: int, num_replicas: int, drop_last: bool = False) -> list[int]:
    """Positions of sample ``index`` in the padded (or trimmed) list of ``n`` samples.

    Position ``p`` belongs to rank ``p % num_replicas``. A sample appears once, twice or
    more when padding repeats the head, or not at all when ``drop_last`` trims it.
    """
    return list(range(index, total_size(n, num_replicas, drop_last), n)) if n else []


def _session(spark: Any) -> Any:
    from pyspark import TaskContext
    from pyspark.sql import SparkSession

    if spark is not None:
        return spark
    if TaskContext.get() is not None:
        raise ConfigError(
            "no SparkSession inside a Spark task: read Hadoop URIs on the driver "
            "(load_uri, shard_uri) and hand each task its shard"
        )
    return SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()


def reraise_data_format_error(exc: Exception) -> None:
    """Re-raise a Spark job failure caused by a DataFormatError in a task as that error.

    Spark wraps a task's exception in its own (``PythonException``, ``Py4JJavaError``); the
    message keeps the original line, which is all the user needs.
    """
    found = _DATA_ERROR.search(str(exc))
    if found:
        raise DataFormatError(found.group(1).strip()) from None
    raise exc


def list_files(uri: str, spark: Any = None) -> list[str]:
    """Full paths of the files at ``uri`` (a directory or a file); reads no content."""
    spark = _session(spark)
    try:
        rows = spark.read.format("binaryFile").load(uri).select("path").collect()
    except Exception as exc:  # AnalysisException: PATH_NOT_FOUND, ...
        raise DataFormatError(f"{uri}: cannot list files ({str(exc).splitlines()[0]})") from None
    return sorted(r.path for r in rows)


def read_files(paths: list[str], spark: Any = None) -> dict[str, bytes]:
    """``{path: bytes}`` of whole files, fetched by Spark and collected on the driver."""
    rows = _session(spark).read.format("binaryFile").load(paths).select("path", "content")
    return {r.path: bytes(r.content) for r in rows.collect()}


def load_uri(
    uri: str, split: str = "train", num_classes: int = 10, spark: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(uint8 images (N, 28, 28), int64 labels)`` of ``split`` from a directory URI."""
    from sparkgrad.dataset.embedded import holdout_split

    check_split(split)
    files = list_files(uri, spark)
    kind, first, second = choose_files(files, split, uri)
    if kind == "idx":
        data = read_files([first, second], spark)
        images, labels = parse_idx(data[first], first), parse_idx(data[second], second)
        return check_images_labels(images, labels, first, second, num_classes)
    pixels, labels = parse_mnist_csv(read_files([first], spark)[first], first, 784, num_classes)
    if second == "holdout":
        idx = holdout_split(labels, split)
        pixels, labels = pixels[idx], labels[idx]
    return pixels.reshape(-1, 28, 28), labels


def _idx_records(path: str, data: bytes, num_replicas: int, drop_last: bool) -> Iterable:
    """``(position, (kind, path, payload, shape, dtype))`` per record of one file (in a task).

    ``kind`` is ``"x"`` (an image, payload = its bytes) or ``"y"`` (a label, payload = int);
    a record padded in twice is sent twice, to two positions.
    """
    array = parse_idx(data, path)
    kind = "x" if array.ndim > 1 else "y"
    for i, record in enumerate(array):
        payload = record.tobytes() if kind == "x" else int(record)
        for p in positions_of(i, len(array), num_replicas, drop_last):
            yield p, (kind, path, payload, tuple(array.shape[1:]), array.dtype.str)


def _pair_up(items: Iterable, num_classes: int) -> Iterable:
    """Join images and labels by position, in order (runs in the rank's task)."""
    by_position: dict[int, dict[str, Any]] = {}
    for p, (kind, path, payload, shape, dtype) in items:
        by_position.setdefault(p, {})[kind] = (path, payload, shape, dtype)
    for p in sorted(by_position):
        parts = by_position[p]
        if len(parts) != 2:
            path = next(iter(parts.values()))[0]
            missing = "label" if "x" in parts else "image"
            raise DataFormatError(f"{path}: image count != label count (no {missing} at {p})")
        (img_path, pixels, shape, dtype), (lbl_path, label, _, _) = parts["x"], parts["y"]
        image = np.frombuffer(pixels, dtype=dtype).reshape(shape)
        image, labels = check_images_labels(
            image[None], np.array([label]), img_path, lbl_path, num_classes
        )
        yield image[0].tobytes(), int(labels[0])


def shard_uri(
    spark: Any,
    uri: str,
    num_replicas: int,
    split: str = "train",
    drop_last: bool = False,
    num_classes: int = 10,
) -> Any:
    """An RDD of ``num_replicas`` partitions; partition ``r`` holds rank ``r``'s records.

    Records are ``(784 uint8 pixel bytes, int label)`` in the order of the rank's
    ``DistributedSampler(shuffle=False)`` indices. Works for the IDX files and for
    train/test CSV files; nothing is computed until an action (or a barrier stage) runs.
    """
    check_split(split)
    spark = _session(spark)
    kind, first, second = choose_files(list_files(uri, spark), split, uri)
    if kind == "idx":
        files = spark.read.format("binaryFile").load([first, second]).select("path", "content")
        keyed = files.rdd.flatMap(
            lambda row: _idx_records(row.path, bytes(row.content), num_replicas, drop_last)
        )
        parted = keyed.partitionBy(num_replicas, lambda p: p % num_replicas)
        return parted.mapPartitions(lambda it: _pair_up(it, num_classes), True)
    if second == "holdout":
        raise ConfigError(
            f"{uri}: per-rank shards need *train*.csv and *test*.csv files (found one CSV file)"
        )
    text = spark.sparkContext.textFile(first)
    head = text.take(1)
    if not head:
        raise DataFormatError(f"{first}: empty file (expected CSV rows of label + pixels)")
    has_header = not _is_number(head[0].split(",")[0])

    def data_lines(partition: int, lines: Iterable[str]) -> Iterable[str]:
        lines = iter(lines)
        if partition == 0 and has_header:
            next(lines, None)
        return (line for line in lines if line.strip())

    rows = text.mapPartitionsWithIndex(data_lines)
    return _shard_keyed(rows.zipWithIndex(), num_replicas, drop_last).map(
        lambda line: _csv_record(line, first, num_classes)
    )


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _csv_record(line: str, name: str, num_classes: int) -> tuple[bytes, int]:
    pixels, labels = parse_mnist_csv(line, name, 784, num_classes)
    return pixels[0].tobytes(), int(labels[0])


def _shard_keyed(indexed: Any, num_replicas: int, drop_last: bool) -> Any:
    """(value, index) pairs -> values in ``num_replicas`` partitions, rank order kept."""
    n = indexed.count()
    keyed = indexed.flatMap(
        lambda vi: [(p, vi[0]) for p in positions_of(vi[1], n, num_replicas, drop_last)]
    )
    parted = keyed.partitionBy(num_replicas, lambda p: p % num_replicas)
    return parted.mapPartitions(lambda it: (v for _, v in sorted(it, key=lambda pv: pv[0])), True)


def shard_dataframe(df: Any, num_replicas: int, rank: int, drop_last: bool = False) -> Any:
    """The rows of ``df`` that rank ``rank`` owns (padding included), in the rank's order.

    Rows are numbered in the DataFrame's order (``zipWithIndex``), then kept where their
    position ``p`` satisfies ``p % num_replicas == rank``: each task filters its own
    partition, no task reads the whole DataFrame.
    """
    DistributedSampler(range(1), num_replicas, rank)  # validates num_replicas and rank
    indexed = df.rdd.zipWithIndex()
    n = indexed.count()
    mine = indexed.flatMap(
        lambda ri: [
            (p, ri[0])
            for p in positions_of(ri[1], n, num_replicas, drop_last)
            if p % num_replicas == rank
        ]
    )
    return df.sparkSession.createDataFrame(mine.sortByKey().values(), df.schema)


def records_to_arrays(records: Iterable[tuple[bytes, int]]) -> tuple[np.ndarray, np.ndarray]:
    """``(uint8 images (k, 28, 28), int64 labels (k,))`` from a rank's shard records."""
    records = list(records)
    images = np.frombuffer(b"".join(r[0] for r in records), dtype=np.uint8).reshape(-1, 28, 28)
    return images, np.array([r[1] for r in records], dtype=np.int64)


def collect_shard(shards: Any, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Bring one rank's partition of :func:`shard_uri` to the driver (runs only that task)."""
    sc = shards.context
    try:
        records = sc.runJob(shards, lambda it: it, [rank])
    except Exception as exc:
        reraise_data_format_error(exc)
    return records_to_arrays(records)
