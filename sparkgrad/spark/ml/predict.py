"""``transform(df)``: the model's outputs as new columns, computed by a vectorised Arrow UDF.

The weights travel to the executors **once**: :func:`weights_broadcast` broadcasts the
model's safetensors bytes (checked by their SHA-256 when a task reads them, never a
pickled model) and every task builds the network once, then scores whole Arrow batches:
the features column arrives as an Arrow list array, becomes one ``(rows, features)``
float32 matrix without a Python object per row, and goes through the network in one
forward pass per chunk. The UDF returns one struct column (raw outputs, probabilities,
prediction); ``array_to_vector`` turns the arrays into the ``Vector`` columns Spark ML's
evaluators expect, and the struct is dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

CHUNK_ROWS = 1024  # rows per forward pass: memory stays small for any batch Spark sends


def weights_broadcast(spark: Any, payload: bytes) -> Any:
    """The safetensors bytes as a Spark broadcast variable (bytes, parsed by each task)."""
    return spark.sparkContext.broadcast(payload)


def load_network(spec: dict, payload: bytes) -> Any:
    """The network of a resolved spec with the weights of a safetensors payload (eval mode)."""
    import sparkgrad as sg
    from sparkgrad.export.safetensors_io import parse_safetensors
    from sparkgrad.spark.ml import spec as specs

    arrays, _ = parse_safetensors(payload, "the broadcast model weights")
    net = specs.build(spec, 0)
    net.load_state_dict({k: sg.tensor(v) for k, v in arrays.items()})
    net.eval()
    return net


def forward(net: Any, x: np.ndarray) -> np.ndarray:
    """Raw outputs (logits, log-probabilities or values) for the rows of ``x``, as float64."""
    import sparkgrad as sg

    outs = []
    with sg.no_grad():
        for start in range(0, len(x), CHUNK_ROWS):
            outs.append(np.asarray(net(sg.tensor(x[start : start + CHUNK_ROWS])).numpy()))
    width = outs[0].shape[1] if outs else 1
    return np.concatenate(outs).astype(np.float64) if outs else np.zeros((0, width))


def softmax(raw: np.ndarray) -> np.ndarray:
    shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _list_array(matrix: np.ndarray) -> Any:
    rows, width = matrix.shape
    offsets = pa.array(np.arange(0, rows * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1)))


def scorer(spec: dict, weights: Any, regression: bool) -> Any:
    """The Arrow UDF (iterator form: the network is built once per task)."""
    from pyspark.sql.functions import arrow_udf

    from sparkgrad.spark.ml.shards import list_column

    width = spec["in"]
    kind = (
        "prediction double"
        if regression
        else "raw array<double>, probability array<double>, prediction double"
    )

    @arrow_udf(kind)  # the type hints say: iterator of arrays in, iterator out
    def score(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
        net = load_network(spec, weights.value)
        for column in batches:
            raw = forward(net, list_column(column, width, "featuresCol"))
            if regression:
                yield pa.StructArray.from_arrays([pa.array(raw[:, 0])], names=["prediction"])
                continue
            prediction = pa.array(raw.argmax(axis=1).astype(np.float64))
            arrays = [_list_array(raw), _list_array(softmax(raw)), prediction]
            yield pa.StructArray.from_arrays(arrays, names=["raw", "probability", "prediction"])

    return score


def add_columns(
    df: Any, features: Any, spec: dict, weights: Any, outputs: dict[str, str], regression: bool
) -> Any:
    """``df`` plus the non-empty ``outputs`` columns (``{"prediction": name, "raw": name,
    "probability": name}``); ``features`` is the features Column as ``array<float>``."""
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    tmp = "_sg_scores"
    scored = df.withColumn(tmp, scorer(spec, weights, regression)(features))
    for field, name in outputs.items():
        if not name:
            continue  # Spark ML's convention: an empty column name turns that output off
        value = F.col(f"{tmp}.{field}")
        scored = scored.withColumn(name, value if field == "prediction" else array_to_vector(value))
    return scored.drop(tmp)
