"""From a user's DataFrame to one Arrow table per rank, checked on the driver first.

``fit(df)`` never collects rows to the driver. It

1. reads the features column as ``array<float>`` (a ``VectorAssembler`` vector, dense or
   sparse, through ``vector_to_array``; or an array column of numbers) and the label as
   ``double`` (:func:`select_columns`);
2. runs **one aggregation** over the data (:func:`summarize`): rows, the shortest and
   longest feature vector, nulls, the label range and whether labels are whole numbers.
   Every data error is raised here, on the driver, before a barrier task starts: an empty
   DataFrame, vectors of varying length, labels outside ``[0, classes)``, fewer rows than
   ranks;
3. numbers the rows in the DataFrame's order (``zipWithIndex``) and sends row ``i`` to the
   ranks of data-parallel coordinate ``i % D`` (:func:`shard_frame`), ``D`` the strategy's
   data-parallel size: every rank for model/pipeline/tensor parallelism (``D = 1``), rank
   ``r`` alone for data parallelism and ZeRO (``D = world``), the dp coordinate for a
   hybrid mesh. The last ``N mod D`` rows are dropped so every coordinate holds exactly
   ``m = N // D`` rows (``DistributedSampler(drop_last=True)``'s rule).

Placing rows *exactly* needs one trick. ``repartition(n, key)`` puts a row in partition
``pmod(hash(key), n)`` (Spark's Murmur3 ``hash``, the same function as the SQL ``hash()``),
so the driver first asks Spark for one key per partition (:func:`partition_keys`) and
tags each row with its rank's key. Each rank checks what it received
(:func:`rank_arrays`): wrong rows or counts raise instead of training on the wrong data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sparkgrad.errors import DataFormatError

X, Y, ROW, KEY = "_sg_x", "_sg_y", "_sg_row", "_sg_key"


@dataclass(frozen=True)
class Summary:
    """What :func:`summarize` found in one pass over the data."""

    rows: int
    num_features: int
    label_min: float
    label_max: float
    whole_labels: bool  # every label is an integer value

    @property
    def num_classes(self) -> int:
        return int(self.label_max) + 1


def feature_kind(df: Any, column: str) -> str:
    """``"vector"`` or ``"array"``; DataFormatError naming the column's type otherwise."""
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql.types import ArrayType, NumericType

    if column not in df.columns:
        raise DataFormatError(
            f"featuresCol {column!r}: expected a column of the DataFrame, found only "
            f"{df.columns[:8]}{' ...' if len(df.columns) > 8 else ''}"
        )
    kind = df.schema[column].dataType
    if isinstance(kind, VectorUDT):
        return "vector"
    if isinstance(kind, ArrayType) and isinstance(kind.elementType, NumericType):
        return "array"
    raise DataFormatError(
        f"featuresCol {column!r}: expected a vector column (VectorAssembler's output) or an "
        f"array of numbers, found {kind.simpleString()}; assemble the feature columns with "
        f"pyspark.ml.feature.VectorAssembler first"
    )


def features_as_array(df: Any, column: str) -> Any:
    """The features column as an ``array<float>`` Column (dense, sparse or array input)."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    if feature_kind(df, column) == "vector":
        return vector_to_array(F.col(column), "float32")
    return F.col(column).cast("array<float>")


def select_columns(df: Any, features: str, label: str | None) -> Any:
    """``(_sg_x array<float>, _sg_y double)``: what the ranks read."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, NumericType

    x = features_as_array(df, features).alias(X)
    if label is None:
        return df.select(x)
    if label not in df.columns:
        raise DataFormatError(f"labelCol {label!r}: expected a column of the DataFrame, not found")
    kind = df.schema[label].dataType
    if not isinstance(kind, NumericType) or isinstance(kind, BooleanType):
        raise DataFormatError(
            f"labelCol {label!r}: expected an integer or double column, found "
            f"{kind.simpleString()}; index string labels with StringIndexer first"
        )
    return df.select(x, F.col(label).cast("double").alias(Y))


def summarize(prepared: Any, features: str, label: str, classification: bool) -> Summary:
    """One pass: rows, vector lengths, nulls, label range (see the module docstring)."""
    from pyspark.sql import functions as F

    size = F.size(F.col(X))
    y = F.col(Y)
    bad_label = y.isNull() | F.isnan(y) | y.isin(float("inf"), float("-inf"))
    row = prepared.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.col(X).isNull().cast("long")).alias("null_x"),
        F.min(size).alias("min_len"),
        F.max(size).alias("max_len"),
        F.sum(bad_label.cast("long")).alias("bad_y"),
        F.min(y).alias("y_min"),
        F.max(y).alias("y_max"),
        F.sum((y != F.floor(y)).cast("long")).alias("fractional"),
    ).first()
    if row.rows == 0:
        raise DataFormatError(
            "the DataFrame is empty: expected rows of features and labels to train on, found 0"
        )
    if row.null_x:
        raise DataFormatError(
            f"featuresCol {features!r}: expected a vector in every row, found {row.null_x} "
            "null rows; drop or impute them first"
        )
    if row.min_len != row.max_len:
        raise DataFormatError(
            f"featuresCol {features!r}: expected vectors of one length, found lengths from "
            f"{row.min_len} to {row.max_len}"
        )
    if row.min_len == 0:
        raise DataFormatError(f"featuresCol {features!r}: expected features, found empty vectors")
    if row.bad_y:
        raise DataFormatError(
            f"labelCol {label!r}: expected a finite number in every row, found {row.bad_y} "
            "null, NaN or infinite labels"
        )
    if classification and (row.fractional or row.y_min < 0):
        raise DataFormatError(
            f"labelCol {label!r}: expected class indices 0, 1, 2, ... (whole numbers >= 0), "
            f"found labels from {row.y_min:g} to {row.y_max:g}"
            f"{' with fractional values' if row.fractional else ''}; index them with "
            "StringIndexer"
        )
    return Summary(row.rows, row.min_len, row.y_min, row.y_max, not row.fractional)


def dp_coordinates(strategy: str, world: int, mesh: str) -> list[int]:
    """Each rank's data-parallel coordinate: which share of the rows it trains on."""
    if strategy in ("data", "zero1", "zero2", "zero3"):
        return list(range(world))
    if strategy == "hybrid":
        from sparkgrad.parallel.hybrid.mesh import mesh_coordinates

        return [c["dp"] for c in mesh_coordinates(mesh, world)]
    return [0] * world  # model, pipeline, tensor: every rank sees the whole batch


def partition_keys(spark: Any, world: int) -> list[int]:
    """``keys[r]``: a long whose Spark hash sends a row to partition ``r`` of ``world``."""
    from pyspark.sql import functions as F

    found: dict[int, int] = {}
    start = 0
    while len(found) < world:  # a few hundred candidates cover hundreds of ranks
        probe = spark.range(start, start + 64 * world)
        for r in probe.select("id", F.pmod(F.hash("id"), F.lit(world)).alias("p")).collect():
            found.setdefault(int(r.p), int(r.id))
        start += 64 * world
    return [found[r] for r in range(world)]


def shard_frame(prepared: Any, coords: list[int], rows_per_coord: int) -> Any:
    """``world`` partitions; partition ``r`` holds rows ``i`` with ``i % D == coords[r]``."""
    from pyspark.sql import functions as F

    world, dp = len(coords), max(coords) + 1
    keys = partition_keys(prepared.sparkSession, world)
    by_coord = [[keys[r] for r in range(world) if coords[r] == d] for d in range(dp)]
    targets = F.array(*[F.array(*[F.lit(k).cast("long") for k in ks]) for ks in by_coord])
    row = F.col(ROW)
    numbered = prepared.zipWithIndex(ROW).where(row < F.lit(rows_per_coord * dp))
    tagged = numbered.withColumn(KEY, F.explode(F.element_at(targets, (row % dp + 1).cast("int"))))
    return tagged.repartition(world, KEY).drop(KEY)


def list_column(column: Any, width: int, what: str) -> np.ndarray:
    """An Arrow list column of ``width`` floats per row as a ``(rows, width)`` float32 array."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    if column.null_count:
        raise DataFormatError(f"{what}: expected a vector in every row, found nulls")
    lengths = column.value_lengths().to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths.min() != width or lengths.max() != width):
        raise DataFormatError(
            f"{what}: expected vectors of {width} features, found lengths from "
            f"{lengths.min()} to {lengths.max()}"
        )
    values = column.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(values, dtype=np.float32).reshape(len(column), width)


def rank_arrays(
    table: Any, rank: int, coord: int, dp: int, rows: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """This rank's ``(features (m, width) float32, labels (m,) float64)`` in row order,
    after checking it holds exactly the ``m`` rows of its data-parallel coordinate."""
    import pyarrow.compute as pc

    table = table.sort_by(ROW)
    index = table.column(ROW).to_numpy()
    if len(index) != rows or (len(index) and np.any(index % dp != coord)):
        raise DataFormatError(
            f"rank {rank} expected the {rows} rows i with i % {dp} == {coord}, found "
            f"{len(index)} rows ({np.count_nonzero(index % dp != coord)} of another rank): "
            "Spark placed the partitions differently from what the driver planned"
        )
    x = list_column(table.column(X), width, f"rank {rank}'s features")
    y = pc.cast(table.column(Y), "float64").to_numpy()
    return x, y
