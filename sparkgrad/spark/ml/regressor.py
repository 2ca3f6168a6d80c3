"""``SparkgradRegressor`` and ``SparkgradRegressionModel``: the classifier's twin, trained with MSE.

Everything is shared with :mod:`.classifier` (Params, sharding, the launch, persistence,
the Arrow UDF); the differences are the label (any finite double), the network's one
output and the loss (``MSELoss``), and ``transform`` adding only ``prediction``.
``RegressionEvaluator`` scores it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyspark import keyword_only

from sparkgrad.spark.ml.estimator import SparkgradEstimator
from sparkgrad.spark.ml.model import SparkgradModel


class SparkgradRegressor(SparkgradEstimator):
    """A pyspark.ml Estimator for a network with one output, trained with squared error."""

    task = "regression"

    @keyword_only
    def __init__(
        self,
        *,
        featuresCol: str = "features",
        labelCol: str = "label",
        predictionCol: str = "prediction",
        maxIter: int = 10,
        stepSize: float = 0.05,
        seed: int = 0,
        batchSize: int = 64,
        numRanks: int = 2,
        optimizer: str = "sgd",
        momentum: float = 0.9,
        strategy: str = "data",
        mode: str = "sync",
        staleness: int | None = None,
        model: str | dict | None = None,
    ) -> None:
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, **kwargs: Any) -> SparkgradRegressor:
        kwargs = {k: v for k, v in self._input_kwargs.items() if v is not None}
        return self._set(**kwargs)

    def _make_model(self, state_dict: dict, spec: dict, train_loss: list[float]) -> Any:
        return SparkgradRegressionModel(state_dict, spec, train_loss)


class SparkgradRegressionModel(SparkgradModel):
    """A fitted :class:`SparkgradRegressor`: ``transform`` adds ``prediction``."""

    task = "regression"

    def predict(self, value: Any) -> float:
        """The prediction for one feature vector."""
        return float(np.asarray(self._raw(value))[0])
