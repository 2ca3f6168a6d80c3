"""``SparkgradClassifier`` and ``SparkgradClassificationModel``: a network in a Spark ML Pipeline.

::

    from pyspark.ml import Pipeline
    from pyspark.ml.feature import VectorAssembler
    from sparkgrad.spark.ml import SparkgradClassifier

    digits = spark.read.csv("digits.csv", inferSchema=True)          # _c0 = label
    assemble = VectorAssembler(inputCols=digits.columns[1:], outputCol="features")
    clf = SparkgradClassifier(labelCol="_c0", maxIter=5, numRanks=2,
                              model={"name": "mlp", "hidden": [128]})
    fitted = Pipeline(stages=[assemble, clf]).fit(digits)             # trains on 2 ranks
    fitted.transform(digits).select("prediction", "probability")      # Spark ML columns
    fitted.write().overwrite().save("digits-model")                   # PipelineModel.load

The classifier trains with cross-entropy (NLL for the CNN, which ends in
``log_softmax``). Its model adds Spark ML's three columns: ``rawPrediction`` (the logits,
or the CNN's log-probabilities), ``probability`` (their softmax) and ``prediction`` (the
arg-max, as a double), so ``MulticlassClassificationEvaluator`` works as it does with
Spark's own classifiers. Set a column name to ``""`` to leave that column out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyspark import keyword_only
from pyspark.ml.param.shared import HasProbabilityCol, HasRawPredictionCol

from sparkgrad.spark.ml.estimator import SparkgradEstimator
from sparkgrad.spark.ml.model import SparkgradModel
from sparkgrad.spark.ml.predict import softmax


class _ClassifierParams(HasProbabilityCol, HasRawPredictionCol):
    def setProbabilityCol(self, value: str) -> Any:
        return self._set(probabilityCol=value)

    def setRawPredictionCol(self, value: str) -> Any:
        return self._set(rawPredictionCol=value)


class SparkgradClassifier(SparkgradEstimator, _ClassifierParams):
    """A pyspark.ml Estimator that trains a sparkgrad network on a DataFrame's rows.

    Params (see :mod:`sparkgrad.spark.ml.params`): ``featuresCol``, ``labelCol``,
    ``predictionCol``, ``probabilityCol``, ``rawPredictionCol``, ``maxIter`` (epochs),
    ``stepSize`` (learning rate), ``seed``, ``batchSize`` (global), ``numRanks``,
    ``optimizer``, ``momentum``, ``strategy``, ``mode`` and ``model`` (JSON spec).
    """

    task = "classification"

    @keyword_only
    def __init__(
        self,
        *,
        featuresCol: str = "features",
        labelCol: str = "label",
        predictionCol: str = "prediction",
        probabilityCol: str = "probability",
        rawPredictionCol: str = "rawPrediction",
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
        self._setDefault(
            predictionCol="prediction",
            probabilityCol="probability",
            rawPredictionCol="rawPrediction",
        )
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, **kwargs: Any) -> SparkgradClassifier:
        """Set any of the Params by keyword (``model=None`` keeps the default MLP)."""
        kwargs = {k: v for k, v in self._input_kwargs.items() if v is not None}
        return self._set(**kwargs)

    def _make_model(self, state_dict: dict, spec: dict, train_loss: list[float]) -> Any:
        return SparkgradClassificationModel(state_dict, spec, train_loss)


class SparkgradClassificationModel(SparkgradModel, _ClassifierParams):
    """A fitted :class:`SparkgradClassifier`: ``transform`` adds Spark ML's three columns."""

    task = "classification"

    def __init__(
        self,
        state_dict: dict[str, np.ndarray] | None = None,
        spec: dict | None = None,
        train_loss: list[float] | None = None,
    ) -> None:
        super().__init__(state_dict, spec, train_loss)
        self._setDefault(
            predictionCol="prediction",
            probabilityCol="probability",
            rawPredictionCol="rawPrediction",
        )

    @property
    def numClasses(self) -> int:
        return int(self._spec["out"])

    def _outputs(self) -> dict[str, str]:
        return {
            "raw": self.getRawPredictionCol(),
            "probability": self.getProbabilityCol(),
            "prediction": self.getPredictionCol(),
        }

    def predictRaw(self, value: Any) -> Any:
        """The raw outputs (logits) for one feature vector, as a DenseVector."""
        from pyspark.ml.linalg import DenseVector

        return DenseVector(self._raw(value))

    def predictProbability(self, value: Any) -> Any:
        """The class probabilities for one feature vector, as a DenseVector."""
        from pyspark.ml.linalg import DenseVector

        return DenseVector(softmax(self._raw(value)[None])[0])

    def predict(self, value: Any) -> float:
        """The predicted class index of one feature vector (a double, as Spark ML)."""
        return float(np.argmax(self._raw(value)))
