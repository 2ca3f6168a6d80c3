"""Model selection and the regressor twin, as Spark ML users run them.

Lessons:
- ``ParamGridBuilder`` + ``TrainValidationSplit`` / ``CrossValidator`` fit one copy of the
  estimator per grid point: every copy owns its Params, the original is left unchanged,
  and the best model carries the winning value;
- ``SparkgradRegressor`` (MSE, one output) fits a smooth function and scores with
  ``RegressionEvaluator``;
- ``SparkRunner.run(..., inputs=df)`` hands rank ``r`` partition ``r`` of a DataFrame as a
  ``pyarrow.Table``, and nothing else.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from pyspark import cloudpickle
from pyspark.ml.evaluation import MulticlassClassificationEvaluator, RegressionEvaluator
from pyspark.ml.linalg import Vectors
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder, TrainValidationSplit

from sparkgrad.engine.spark_runner import SparkRunner
from sparkgrad.spark.ml import SparkgradClassifier, SparkgradRegressionModel, SparkgradRegressor

pytestmark = pytest.mark.slow  # grids of Spark fits: the full suite runs them

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import tests


@pytest.fixture(scope="module")
def blobs(spark):
    """Three well separated Gaussian blobs in 4 dimensions: 120 rows."""
    rng = np.random.default_rng(1)
    centers = np.array([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0]], dtype=np.float64)
    labels = np.arange(120) % 3
    x = centers[labels] + 0.5 * rng.standard_normal((120, 4))
    rows = [(Vectors.dense(r), float(lbl)) for r, lbl in zip(x, labels)]
    return spark.createDataFrame(rows, ["features", "label"])


def _grid(clf):
    return ParamGridBuilder().addGrid(clf.stepSize, [1e-5, 0.1]).build()


def test_train_validation_split_picks_the_learning_rate(blobs):
    clf = SparkgradClassifier(maxIter=3, batchSize=8, model={"name": "mlp", "hidden": [8]})
    tvs = TrainValidationSplit(
        estimator=clf,
        estimatorParamMaps=_grid(clf),
        evaluator=MulticlassClassificationEvaluator(metricName="accuracy"),
        trainRatio=0.75,
        seed=0,
    )
    fitted = tvs.fit(blobs)
    assert fitted.bestModel.getStepSize() == 0.1
    assert fitted.validationMetrics[1] > 0.9 > fitted.validationMetrics[0]
    assert clf.getStepSize() == 0.05 and not clf.isSet(clf.stepSize)  # the original untouched


@pytest.mark.slow  # five fits (2 folds x 2 points, then the best on all rows)
def test_cross_validator_over_a_small_grid(blobs):
    clf = SparkgradClassifier(maxIter=3, batchSize=8, model={"name": "mlp", "hidden": [8]})
    cv = CrossValidator(
        estimator=clf,
        estimatorParamMaps=_grid(clf),
        evaluator=MulticlassClassificationEvaluator(metricName="accuracy"),
        numFolds=2,
        seed=0,
    )
    fitted = cv.fit(blobs)
    assert len(fitted.avgMetrics) == 2 and fitted.avgMetrics[1] > fitted.avgMetrics[0]
    assert fitted.bestModel.getStepSize() == 0.1 and not clf.isSet(clf.stepSize)


def test_regressor_fits_and_saves(spark, tmp_path):
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (160, 2))
    y = 2 * x[:, 0] - x[:, 1] + 0.5
    df = spark.createDataFrame(
        [(Vectors.dense(r), float(t)) for r, t in zip(x, y)], ["features", "label"]
    )
    reg = SparkgradRegressor(
        maxIter=20, batchSize=16, stepSize=0.05, model={"name": "mlp", "hidden": [16]}
    )
    model = reg.fit(df)
    rmse = RegressionEvaluator(metricName="rmse").evaluate(model.transform(df))
    assert rmse < 0.25 * float(np.std(y)), f"rmse {rmse:.3f} vs std {np.std(y):.3f}"
    model.save(str(tmp_path / "reg"))
    loaded = SparkgradRegressionModel.load(str(tmp_path / "reg"))
    row = df.first()
    assert loaded.predict(row.features) == pytest.approx(model.predict(row.features), rel=1e-6)


def _gather(ctx):
    """Rank 0 returns its own ids (a pyarrow Table column) and every rank's row count."""
    import pyarrow as pa

    assert isinstance(ctx.records, pa.Table)
    mine = ctx.records.column("id").to_numpy().astype(np.int64)
    counts = ctx.pg.all_gather(np.array([len(mine)], dtype=np.int64))
    return {"ids": mine, "counts": counts} if ctx.rank == 0 else None


def test_runner_hands_each_rank_its_dataframe_partition(spark):
    df = spark.range(10).repartition(2, "id").cache()
    first = df.rdd.mapPartitionsWithIndex(lambda i, rows: (r.id for r in rows if i == 0))
    out = SparkRunner(spark, 2).run(_gather, inputs=df)
    assert sorted(out["ids"].tolist()) == sorted(first.collect())
    assert out["counts"].ravel().tolist() == [len(first.collect()), 10 - len(first.collect())]
