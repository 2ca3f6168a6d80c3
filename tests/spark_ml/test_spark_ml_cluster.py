"""The classifier on ``local-cluster[2,1,1024]``: two executor JVMs, the ranks in two processes."""

from __future__ import annotations

import pytest
from pyspark.ml.evaluation import MulticlassClassificationEvaluator

from tests.spark_ml.digits_csv import digits_pipeline, read_digits


@pytest.mark.slow  # ~15 s to start the two executors, then a fit
def test_pipeline_fits_across_two_executors(spark_cluster, digits_csv):
    train = read_digits(spark_cluster, digits_csv["train"])
    model = digits_pipeline().fit(train)
    scored = model.transform(read_digits(spark_cluster, digits_csv["test"]))
    evaluator = MulticlassClassificationEvaluator(labelCol="_c0", metricName="accuracy")
    assert evaluator.evaluate(scored) > 0.8
