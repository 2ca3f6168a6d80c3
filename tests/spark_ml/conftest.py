"""Fixtures of the Spark ML tests: a real SparkSession and the embedded digits as CSV files.

The digits (``sparkgrad.dataset.load_mnist_5k``) are written the way Spark users get
data: CSV files with the label first and 784 pixel columns, no header, read back with
``spark.read.csv(..., inferSchema=True)``. A few hundred rows keep the fits fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # loopback only

from tests.engine.conftest import _session  # the one SparkSession helper of the tests
from tests.spark_ml.digits_csv import TEST_ROWS, TRAIN_ROWS, write_digits_csv


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """``local[2,2]``: two task slots (two ranks), a failed barrier stage rerun once."""
    yield from _session("local[2,2]", **{"spark.stage.maxConsecutiveAttempts": "2"})


@pytest.fixture(scope="module")
def spark_cluster() -> Iterator[Any]:
    """``local-cluster[2,1,1024]``: two executor JVMs, so the two ranks are two processes.

    The executors import sparkgrad from this checkout (a worktree may differ from the
    installed copy), hence their ``PYTHONPATH``.
    """
    root = str(Path(__file__).resolve().parents[2])
    yield from _session("local-cluster[2,1,1024]", **{"spark.executorEnv.PYTHONPATH": root})


@pytest.fixture(scope="module")
def digits_csv(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``{"train": path, "test": path}`` of small digit CSV files (label first)."""
    folder = tmp_path_factory.mktemp("digits")
    paths = {}
    for split, rows in (("train", TRAIN_ROWS), ("test", TEST_ROWS)):
        paths[split] = str(folder / f"{split}.csv")
        write_digits_csv(paths[split], split, rows)
    return paths
