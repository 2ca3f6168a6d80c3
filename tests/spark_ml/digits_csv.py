"""The embedded digits as Spark users have them: CSV files, label first, read with Spark.

Shared by the Spark ML tests (imported as ``tests.spark_ml.digits_csv``; the fixtures that
use these live in this folder's ``conftest.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

TRAIN_ROWS, TEST_ROWS = 600, 300


def write_digits_csv(path: str, split: str, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Write ``rows`` embedded digits of ``split`` as ``label,p0,...,p783`` lines."""
    from sparkgrad.dataset import load_mnist_5k

    images, labels = load_mnist_5k(split)
    pixels, labels = images.reshape(len(images), -1)[:rows], labels[:rows]
    table = np.column_stack([labels, pixels]).astype(np.int64)
    np.savetxt(path, table, fmt="%d", delimiter=",")
    return pixels, labels


def read_digits(spark: Any, path: str) -> Any:
    """The CSV as Spark users read it: ``_c0`` the label, ``_c1.._c784`` the pixels."""
    return spark.read.csv(path, inferSchema=True)


def digits_pipeline(**params: Any) -> Any:
    """VectorAssembler (pixels -> features) -> scale to [0, 1] -> SparkgradClassifier."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import ElementwiseProduct, VectorAssembler
    from pyspark.ml.linalg import Vectors

    from sparkgrad.spark.ml import SparkgradClassifier

    assemble = VectorAssembler(inputCols=[f"_c{i}" for i in range(1, 785)], outputCol="pixels")
    scale = ElementwiseProduct(
        scalingVec=Vectors.dense([1 / 255] * 784), inputCol="pixels", outputCol="features"
    )
    defaults = {
        "labelCol": "_c0",
        "maxIter": 4,
        "batchSize": 32,
        "model": {"name": "mlp", "hidden": [64]},
    }
    return Pipeline(stages=[assemble, scale, SparkgradClassifier(**{**defaults, **params})])
