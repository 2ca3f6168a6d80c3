"""What every fitted sparkgrad model shares: weights, spec, persistence, local predictions.

A model holds the weights as NumPy arrays under PyTorch's names (``0.weight``, ...), the
resolved architecture spec (:mod:`.spec`) and the training loss of every epoch. It is a
``pyspark.ml.Model`` with the estimator's Params copied in, ``MLWritable`` and
``MLReadable`` through :mod:`.persistence`, and it scores DataFrames in ``transform``
through :mod:`.predict` (the broadcast of its weights is made once and reused).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyspark.ml import Model
from pyspark.ml.util import MLReadable, MLWritable

from sparkgrad.spark.ml.params import SparkgradParams, SparkgradParamSetters
from sparkgrad.spark.ml.persistence import SparkgradModelReader, SparkgradModelWriter


class SparkgradModel(Model, SparkgradParams, SparkgradParamSetters, MLWritable, MLReadable):
    """A trained network and its Params (see the module docstring)."""

    task = "classification"

    def __init__(
        self,
        state_dict: dict[str, np.ndarray] | None = None,
        spec: dict | None = None,
        train_loss: list[float] | None = None,
    ) -> None:
        super().__init__()
        self._state = {k: np.array(v) for k, v in (state_dict or {}).items()}
        self._spec = dict(spec or {})
        self._train_loss = list(train_loss or [])
        self._weights = None  # the broadcast of the weights, made by the first transform
        self._net = None  # the network for local predict(), built on first use

    @property
    def modelSpec(self) -> dict:
        """The resolved architecture spec (``{"name": "mlp", "in": 784, "out": 10, ...}``)."""
        return dict(self._spec)

    @property
    def numFeatures(self) -> int:
        return int(self._spec["in"])

    @property
    def trainingLoss(self) -> list[float]:
        """The mean training loss of every epoch (``maxIter`` values)."""
        return list(self._train_loss)

    def stateDict(self) -> dict[str, np.ndarray]:
        """Copies of the weights under PyTorch's names: ``torch_model.load_state_dict``-ready."""
        return {k: v.copy() for k, v in self._state.items()}

    def _payload(self) -> bytes:
        from safetensors.numpy import save

        from sparkgrad.export.safetensors_io import DIGEST_KEY, tensor_digest

        return save(self._state, metadata={DIGEST_KEY: tensor_digest(self._state)})

    def _broadcast(self, spark: Any) -> Any:
        from sparkgrad.spark.ml.predict import weights_broadcast

        sc = spark.sparkContext
        if self._weights is None or getattr(self._weights, "_sc", sc) is not sc:
            self._weights = weights_broadcast(spark, self._payload())
        return self._weights

    def _raw(self, features: Any) -> np.ndarray:
        """Raw outputs of one feature vector (a Vector, list or array) on the driver."""
        from sparkgrad.spark.ml.predict import forward, load_network

        if self._net is None:
            self._net = load_network(self._spec, self._payload())
        x = np.asarray(features.toArray() if hasattr(features, "toArray") else features)
        return forward(self._net, x.astype(np.float32).reshape(1, -1))[0]

    def write(self) -> SparkgradModelWriter:
        return SparkgradModelWriter(self)

    @classmethod
    def read(cls) -> SparkgradModelReader:
        return SparkgradModelReader(cls)

    def _outputs(self) -> dict[str, str]:
        return {"prediction": self.getPredictionCol()}

    def _transform(self, dataset: Any) -> Any:
        from sparkgrad.spark.ml.predict import add_columns
        from sparkgrad.spark.ml.shards import features_as_array

        features = features_as_array(dataset, self.getFeaturesCol())
        weights = self._broadcast(dataset.sparkSession)
        regression = self.task == "regression"
        return add_columns(dataset, features, self._spec, weights, self._outputs(), regression)
