"""Clear errors, raised on the driver before any barrier task starts, and safe loading.

Lessons:
- the data is checked in one pass before training: a features column that is not a
  vector or array, vectors of varying length, labels outside [0, classes), an empty
  DataFrame, fewer rows than ranks; each error says what was expected and what was found;
- ``mode`` is validated when set, and a mode the estimator cannot run yet names itself;
- loading a model whose files are missing or tampered raises CheckpointError, and no
  half-loaded model comes back.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors

from sparkgrad.errors import CheckpointError, ConfigError, DataFormatError
from sparkgrad.spark.ml import SparkgradClassificationModel, SparkgradClassifier

pytestmark = pytest.mark.slow  # a SparkSession per module and Spark jobs: the full suite runs it

SMALL = {"maxIter": 1, "batchSize": 4, "model": {"name": "mlp", "hidden": [4]}}


def _frame(spark, rows, schema="features array<float>, label double"):
    return spark.createDataFrame(rows, schema)


def test_features_column_must_be_vector_or_array(spark):
    df = _frame(spark, [("a", 0.0)] * 4, "features string, label double")
    with pytest.raises(DataFormatError, match=r"expected a vector column .* found string"):
        SparkgradClassifier(**SMALL).fit(df)


def test_vectors_of_varying_length(spark):
    df = _frame(spark, [([1.0, 2.0], 0.0), ([1.0, 2.0, 3.0], 1.0)] * 4)
    with pytest.raises(DataFormatError, match="vectors of one length, found lengths from 2 to 3"):
        SparkgradClassifier(**SMALL).fit(df)


@pytest.mark.parametrize("label", [-1.0, 0.5])
def test_labels_must_be_class_indices(spark, label):
    df = _frame(spark, [([1.0, 2.0], label)] + [([1.0, 2.0], 1.0)] * 7)
    with pytest.raises(DataFormatError, match=r"expected class indices 0, 1, 2"):
        SparkgradClassifier(**SMALL).fit(df)


def test_labels_beyond_the_models_classes(spark):
    df = _frame(spark, [([1.0, 2.0], float(i % 5)) for i in range(8)])
    model = {"name": "mlp", "hidden": [4], "classes": 3}
    with pytest.raises(DataFormatError, match=r"expected labels in \[0, 3\).*up to 4"):
        SparkgradClassifier(**{**SMALL, "model": model}).fit(df)


def test_empty_dataframe(spark):
    with pytest.raises(DataFormatError, match="the DataFrame is empty"):
        SparkgradClassifier(**SMALL).fit(_frame(spark, []))


def test_fewer_rows_than_ranks(spark):
    df = _frame(spark, [([1.0, 2.0], 0.0)])
    with pytest.raises(DataFormatError, match="1 rows, fewer than numRanks=2"):
        SparkgradClassifier(**SMALL).fit(df)


def test_unknown_modes_and_bad_staleness():
    with pytest.raises(ConfigError, match="mode must be one of sync, async, hogwild, ssp"):
        SparkgradClassifier(mode="eventual")
    with pytest.raises(ConfigError, match="needs --staleness"):  # before the data is read
        SparkgradClassifier(mode="ssp", **SMALL).fit(None)
    with pytest.raises(ConfigError, match="staleness must be >= 0"):
        SparkgradClassifier(mode="ssp", staleness=-1, **SMALL).fit(None)
    with pytest.raises(ConfigError, match="needs --mode ssp"):
        SparkgradClassifier(mode="async", staleness=2, **SMALL).fit(None)


def test_params_are_named_in_engine_errors():
    with pytest.raises(ConfigError, match=r"batchSize 7 .*\(numRanks 2"):
        SparkgradClassifier(batchSize=7).fit(None)
    with pytest.raises(ConfigError, match="model: expected a name among mlp, cnn, vit"):
        SparkgradClassifier(model={"name": "gpt"}).fit(None)
    with pytest.raises(ConfigError, match="not JSON"):
        SparkgradClassifier(model="{mlp")


@pytest.fixture(scope="module")
def saved(spark, tmp_path_factory):
    rng = np.random.default_rng(0)
    rows = [(Vectors.dense(rng.standard_normal(3)), float(i % 2)) for i in range(16)]
    model = SparkgradClassifier(**SMALL).fit(spark.createDataFrame(rows, ["features", "label"]))
    path = str(tmp_path_factory.mktemp("saved") / "model")
    model.save(path)
    return path, model


def _copy(saved, tmp_path):
    target = str(tmp_path / "copy")
    shutil.copytree(saved[0], target)
    return target


def test_load_roundtrip(saved):
    path, model = saved
    loaded = SparkgradClassificationModel.load(path)
    for name, value in model.stateDict().items():
        np.testing.assert_array_equal(loaded.stateDict()[name], value)
    assert loaded.uid == model.uid and loaded.trainingLoss == model.trainingLoss


def test_load_missing_folder(spark, tmp_path):
    with pytest.raises(CheckpointError, match="cannot read its metadata"):
        SparkgradClassificationModel.load(str(tmp_path / "nowhere"))


def test_load_missing_weights(saved, tmp_path):
    path = _copy(saved, tmp_path)
    os.remove(os.path.join(path, "data", "model.safetensors"))
    with pytest.raises(CheckpointError, match="expected a file, found none"):
        SparkgradClassificationModel.load(path)


def test_load_tampered_weights(saved, tmp_path):
    path = _copy(saved, tmp_path)
    weights = os.path.join(path, "data", "model.safetensors")
    raw = bytearray(open(weights, "rb").read())
    raw[-3] ^= 0xFF  # one bit pattern inside the last tensor
    open(weights, "wb").write(bytes(raw))
    for crc in (os.path.join(path, "data", ".model.safetensors.crc"),):
        if os.path.exists(crc):
            os.remove(crc)  # Hadoop's checksum would catch it first; we must catch it too
    with pytest.raises(CheckpointError, match="SHA-256"):
        SparkgradClassificationModel.load(path)


def test_load_tampered_metadata(saved, tmp_path):
    path = _copy(saved, tmp_path)
    (part,) = [f for f in os.listdir(os.path.join(path, "metadata")) if f.startswith("part-")]
    part = os.path.join(path, "metadata", part)
    meta = json.loads(open(part).read())
    meta["sparkgrad"]["modelSpec"]["hidden"] = [8]
    open(part, "w").write(json.dumps(meta))
    for f in os.listdir(os.path.join(path, "metadata")):
        if f.endswith(".crc"):
            os.remove(os.path.join(path, "metadata", f))
    with pytest.raises(CheckpointError, match="describe different models"):
        SparkgradClassificationModel.load(path)


def test_save_and_load_through_a_hadoop_uri(saved, tmp_path):
    """A ``file://`` URI goes through Hadoop's FileSystem, as ``hdfs://`` would."""
    _, model = saved
    uri = (tmp_path / "via-uri").as_uri()
    model.write().overwrite().save(uri)
    assert os.path.isfile(tmp_path / "via-uri" / "data" / "model.safetensors")
    assert not [f for f in os.listdir(tmp_path / "via-uri" / "data") if ".tmp-" in f]
    loaded = SparkgradClassificationModel.load(uri)
    np.testing.assert_array_equal(loaded.stateDict()["0.weight"], model.stateDict()["0.weight"])
