"""SparkgradClassifier in real Spark ML pipelines, on the embedded digits read from CSV.

Lessons:
- ``Pipeline([VectorAssembler, scaling, SparkgradClassifier]).fit(df)`` trains on two
  ranks from a CSV file, and the model's columns are Spark ML's: ``rawPrediction`` and
  ``probability`` vectors, a double ``prediction``, scored by the usual evaluator;
- a two-rank fit takes the same steps as one process training on the same rows in the
  same order, so the weights agree (the order is spelled out in ``training.py``);
- ``PipelineModel.save``/``load`` round-trips with identical predictions, and the saved
  weights load into a ``torch.nn.Sequential`` that computes the same logits.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.evaluation import MulticlassClassificationEvaluator

from sparkgrad.spark.ml import SparkgradClassificationModel, SparkgradClassifier
from tests.spark_ml.digits_csv import TEST_ROWS, digits_pipeline, read_digits

pytestmark = (
    pytest.mark.slow
)  # each module fits on Spark (~30 s a fit on 2 cores): the full suite runs them


@pytest.fixture(scope="module")
def fitted(spark, digits_csv):
    """A PipelineModel fitted on the digits CSV (2 ranks, 4 epochs) and its test frame."""
    train = read_digits(spark, digits_csv["train"])
    return digits_pipeline().fit(train), read_digits(spark, digits_csv["test"])


def test_fit_from_csv_transform_and_evaluate(fitted):
    model, test = fitted
    stage = model.stages[-1]
    assert isinstance(stage, SparkgradClassificationModel)
    assert stage.modelSpec == {"name": "mlp", "hidden": [64], "in": 784, "out": 10}
    assert len(stage.trainingLoss) == 4 and stage.trainingLoss[-1] < stage.trainingLoss[0]
    scored = model.transform(test)
    assert {"rawPrediction", "probability", "prediction"} <= set(scored.columns)
    kinds = dict(scored.dtypes)
    assert (kinds["rawPrediction"], kinds["probability"], kinds["prediction"]) == (
        "vector",
        "vector",
        "double",
    )
    evaluator = MulticlassClassificationEvaluator(labelCol="_c0", metricName="accuracy")
    accuracy = evaluator.evaluate(scored)
    assert accuracy > 0.8, f"test accuracy {accuracy:.3f} after 4 epochs on 600 digits"
    rows = scored.select("rawPrediction", "probability", "prediction").collect()
    assert len(rows) == TEST_ROWS
    raw = np.array([r.rawPrediction.toArray() for r in rows])
    prob = np.array([r.probability.toArray() for r in rows])
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal([r.prediction for r in rows], raw.argmax(axis=1))
    expected = np.exp(raw - raw.max(axis=1, keepdims=True))
    np.testing.assert_allclose(prob, expected / expected.sum(axis=1, keepdims=True), rtol=1e-6)


def test_single_vector_predictions_match_transform(fitted):
    model, test = fitted
    stage = model.stages[-1]
    row = model.transform(test).select("features", "rawPrediction", "prediction").first()
    np.testing.assert_allclose(
        stage.predictRaw(row.features).toArray(), row.rawPrediction.toArray(), rtol=1e-5
    )
    assert stage.predict(row.features) == row.prediction


def test_pipeline_save_load_roundtrip_and_torch_loads_the_weights(fitted, tmp_path):
    import torch
    from safetensors.torch import load_file

    model, test = fitted
    path = str(tmp_path / "digits-model")
    model.write().overwrite().save(path)
    loaded = PipelineModel.load(path)
    stage = loaded.stages[-1]
    assert isinstance(stage, SparkgradClassificationModel)
    assert stage.uid == model.stages[-1].uid and stage.getLabelCol() == "_c0"
    cols = ("rawPrediction", "probability", "prediction")
    before = model.transform(test).select(*cols).collect()
    after = loaded.transform(test).select(*cols).collect()
    assert [r.prediction for r in before] == [r.prediction for r in after]
    np.testing.assert_array_equal(
        [r.rawPrediction.toArray() for r in before], [r.rawPrediction.toArray() for r in after]
    )

    (weights,) = glob.glob(os.path.join(path, "stages", "*", "data", "model.safetensors"))
    net = torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    net.load_state_dict(load_file(weights))
    features = loaded.transform(test).select("features", "rawPrediction").collect()
    x = torch.tensor(np.array([r.features.toArray() for r in features]), dtype=torch.float32)
    with torch.no_grad():
        logits = net(x).numpy()
    expected = np.array([r.rawPrediction.toArray() for r in features])
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)


def test_unfitted_pipeline_and_estimator_save_their_params(spark, tmp_path):
    from pyspark.ml import Pipeline

    pipeline = digits_pipeline(stepSize=0.02, numRanks=2, optimizer="adam")
    pipeline.write().overwrite().save(str(tmp_path / "pipeline"))
    clf = Pipeline.load(str(tmp_path / "pipeline")).getStages()[-1]
    assert isinstance(clf, SparkgradClassifier)
    assert (clf.getStepSize(), clf.getOptimizer()) == (0.02, "adam")
    assert json.loads(clf.getModel()) == {"name": "mlp", "hidden": [64]}


def test_default_estimator_fits_with_no_arguments(spark):
    """``SparkgradClassifier().fit(df)``: an MLP sized from 5 features and 3 classes."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
    from pyspark.ml.linalg import Vectors

    df = spark.createDataFrame(
        [(Vectors.dense(r), float(lbl)) for r, lbl in zip(x, y)], ["features", "label"]
    )
    model = SparkgradClassifier(maxIter=1).fit(df)
    assert model.modelSpec == {"name": "mlp", "hidden": [256, 256], "in": 5, "out": 3}
    assert model.numClasses == 3 and model.numFeatures == 5
    assert model.transform(df).count() == 96


@pytest.mark.parametrize("mode, staleness", [("async", None), ("ssp", 1)])
def test_asynchronous_modes_fit_through_the_parameter_server(spark, digits_csv, mode, staleness):
    """The estimator's mode Param: workers push to the server on the driver; the fitted
    model holds the server's weights and scores like the synchronous one.

    Plain SGD here, not the default momentum 0.9: stale gradients already act as extra
    momentum (Mitliagkas et al. 2016, "Asynchrony begets momentum"), and with both the
    accuracy after 4 epochs swung from 0.72 to 0.86 between runs (thread timing decides
    the staleness); with momentum 0 and stepSize 0.1 it stayed within 0.83-0.87."""
    train = read_digits(spark, digits_csv["train"])
    test = read_digits(spark, digits_csv["test"])
    model = digits_pipeline(mode=mode, staleness=staleness, momentum=0.0, stepSize=0.1)
    model = model.fit(train)
    stage = model.stages[-1]
    assert stage.getMode() == mode and len(stage.trainingLoss) == 4
    evaluator = MulticlassClassificationEvaluator(labelCol="_c0", metricName="accuracy")
    accuracy = evaluator.evaluate(model.transform(test))
    assert accuracy > 0.75, f"{mode}: test accuracy {accuracy:.3f} after 4 epochs on 600 digits"
