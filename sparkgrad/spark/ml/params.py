"""The Params of sparkgrad's Spark ML estimators and models, with Spark ML's names.

Where Spark ML has a name, we use it: ``maxIter`` is the number of epochs, ``stepSize``
the learning rate, ``seed`` the seed; ``featuresCol``, ``labelCol``, ``predictionCol``,
``probabilityCol`` and ``rawPredictionCol`` keep Spark's defaults (``features``,
``label``, ``prediction``, ``probability``, ``rawPrediction``). The rest are sparkgrad's:

==============  ======================  ==================================================
Param           default                 meaning
==============  ======================  ==================================================
``batchSize``   64                      the *global* batch of one optimizer step
``numRanks``    2                       Spark barrier tasks (ranks) that train together
``optimizer``   ``"sgd"``               sgd, adam, adamw, adadelta, rmsprop, adagrad
``momentum``    0.9                     SGD's and RMSprop's momentum
``strategy``    ``"data"``              a synchronous strategy: data, zero1-3, model, ...
``mode``        ``"sync"``              sync, async, hogwild or ssp (issue 20)
``staleness``   unset                   ssp only: how many steps a worker may run ahead
``model``       MLP 256-256             a JSON architecture spec (:mod:`.spec`)
==============  ======================  ==================================================

Values are checked when they are set (a type converter per Param), so a bad value fails
at ``setStepSize(...)`` or in ``ParamGridBuilder``'s ``fit``, on the driver. ``model``
holds canonical JSON text: a dict given to ``setModel`` is stored as its JSON, never as
an object, so every copy of an estimator (``copy()``, CrossValidator's) owns its value.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import (
    HasFeaturesCol,
    HasLabelCol,
    HasMaxIter,
    HasPredictionCol,
    HasSeed,
    HasStepSize,
)

from sparkgrad.errors import ConfigError

MODES = ("sync", "async", "hogwild", "ssp")
DEFAULT_MODEL = {"name": "mlp", "hidden": [256, 256]}


def _choice(name: str, choices: tuple[str, ...]) -> Any:
    def convert(value: Any) -> str:
        text = TypeConverters.toString(value)
        if text not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, found {value!r}")
        return text

    return convert


def _positive_int(name: str) -> Any:
    def convert(value: Any) -> int:
        number = TypeConverters.toInt(value)
        if number < 1:
            raise ConfigError(f"{name} must be an integer >= 1, found {value!r}")
        return number

    return convert


def _float_in(name: str, low: float, high: float, low_open: bool, high_open: bool) -> Any:
    def convert(value: Any) -> float:
        number = TypeConverters.toFloat(value)
        inside = (number > low if low_open else number >= low) and (
            number < high if high_open else number <= high
        )
        if not (math.isfinite(number) and inside):
            bounds = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise ConfigError(f"{name} must be a finite number in {bounds}, found {value!r}")
        return number

    return convert


def to_model_spec(value: Any) -> str:
    """A dict or JSON text -> canonical JSON text of an object with a ``"name"``."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"model must be a JSON object such as {json.dumps(DEFAULT_MODEL)}, found "
                f"text that is not JSON ({exc.msg} at position {exc.pos})"
            ) from None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ConfigError(
            f'model must be a JSON object with a "name", such as '
            f"{json.dumps(DEFAULT_MODEL)}, found {value!r}"
        )
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model must be JSON-serialisable, found {value!r} ({exc})") from None


class SparkgradParams(
    HasFeaturesCol, HasLabelCol, HasPredictionCol, HasSeed, HasMaxIter, HasStepSize
):
    """The Params every sparkgrad estimator and model shares (see the module docstring)."""

    batchSize = Param(
        Params._dummy(),
        "batchSize",
        "the global batch of one optimizer step (split over the data-parallel ranks)",
        typeConverter=_positive_int("batchSize"),
    )
    numRanks = Param(
        Params._dummy(),
        "numRanks",
        "how many Spark barrier tasks (ranks) train together",
        typeConverter=_positive_int("numRanks"),
    )
    optimizer = Param(
        Params._dummy(),
        "optimizer",
        "sgd, adam, adamw, adadelta, rmsprop or adagrad (PyTorch's defaults but the lr)",
        typeConverter=TypeConverters.toString,  # checked against the engine's list in fit
    )
    momentum = Param(
        Params._dummy(),
        "momentum",
        "momentum of sgd and rmsprop, in [0, 1)",
        typeConverter=_float_in("momentum", 0.0, 1.0, False, True),
    )
    strategy = Param(
        Params._dummy(),
        "strategy",
        "a synchronous strategy: data, zero1, zero2, zero3, model, pipeline, tensor, hybrid",
        typeConverter=TypeConverters.toString,  # checked against the engine's list in fit
    )
    mode = Param(
        Params._dummy(),
        "mode",
        f"how the ranks combine their updates: {', '.join(MODES)}",
        typeConverter=_choice("mode", MODES),
    )
    staleness = Param(
        Params._dummy(),
        "staleness",
        "mode ssp: how many steps (clocks) a worker may run ahead of the slowest, >= 0",
        typeConverter=TypeConverters.toInt,  # checked by the engine's rules in fit
    )
    model = Param(
        Params._dummy(),
        "model",
        'architecture as JSON, e.g. {"name": "mlp", "hidden": [256, 256]}; the input and '
        "output sizes come from the data",
        typeConverter=to_model_spec,
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(
            maxIter=10,
            stepSize=0.05,
            seed=0,  # Spark's default is a hash of the class name; a fixed seed is repeatable
            batchSize=64,
            numRanks=2,
            optimizer="sgd",
            momentum=0.9,
            strategy="data",
            mode="sync",
            model=to_model_spec(DEFAULT_MODEL),
        )

    def getBatchSize(self) -> int:
        return self.getOrDefault(self.batchSize)

    def getNumRanks(self) -> int:
        return self.getOrDefault(self.numRanks)

    def getOptimizer(self) -> str:
        return self.getOrDefault(self.optimizer)

    def getMomentum(self) -> float:
        return self.getOrDefault(self.momentum)

    def getStrategy(self) -> str:
        return self.getOrDefault(self.strategy)

    def getMode(self) -> str:
        return self.getOrDefault(self.mode)

    def getStaleness(self) -> int | None:
        return self.getOrDefault(self.staleness) if self.isDefined(self.staleness) else None

    def getModel(self) -> str:
        """The architecture spec as JSON text (``json.loads`` it for a dict)."""
        return self.getOrDefault(self.model)


class SparkgradParamSetters:
    """``setX(value)`` for every Param of :class:`SparkgradParams` (estimators and models)."""

    def setFeaturesCol(self, value: str) -> Any:
        return self._set(featuresCol=value)

    def setLabelCol(self, value: str) -> Any:
        return self._set(labelCol=value)

    def setPredictionCol(self, value: str) -> Any:
        return self._set(predictionCol=value)

    def setSeed(self, value: int) -> Any:
        return self._set(seed=value)

    def setMaxIter(self, value: int) -> Any:
        return self._set(maxIter=value)

    def setStepSize(self, value: float) -> Any:
        return self._set(stepSize=value)

    def setBatchSize(self, value: int) -> Any:
        return self._set(batchSize=value)

    def setNumRanks(self, value: int) -> Any:
        return self._set(numRanks=value)

    def setOptimizer(self, value: str) -> Any:
        return self._set(optimizer=value)

    def setMomentum(self, value: float) -> Any:
        return self._set(momentum=value)

    def setStrategy(self, value: str) -> Any:
        return self._set(strategy=value)

    def setMode(self, value: str) -> Any:
        return self._set(mode=value)

    def setStaleness(self, value: int) -> Any:
        return self._set(staleness=value)

    def setModel(self, value: str | dict) -> Any:
        return self._set(model=value)
