"""Fixtures for the dataset tests: an MNIST directory written by hand, and a local Spark."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from dataset_helpers import write_mnist_dir


@pytest.fixture
def mnist_dir(tmp_path: Path) -> tuple[Path, dict]:
    """A temporary directory with gzipped MNIST files, and the arrays written into it."""
    return tmp_path, write_mnist_dir(tmp_path)


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession (2 threads, loopback only) for the whole test session."""
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("sparkgrad-dataset-tests")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    yield session
    session.stop()
