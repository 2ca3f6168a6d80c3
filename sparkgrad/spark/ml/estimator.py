"""``fit(df)`` for every sparkgrad estimator: check on the driver, shard, launch, wrap.

The steps of :meth:`SparkgradEstimator._fit` (all on the driver until step 5):

1. The Params become one engine :class:`~sparkgrad.engine.config.RunConfig`
   (:meth:`~SparkgradEstimator.run_config`), checked by the engine's own rules (strategy,
   batch split, numbers, mesh), with the messages naming the Params (``batchSize``, not
   ``--batch-size``). ``mode`` enters the run config here and only here.
2. The columns' types are checked (:func:`~.shards.select_columns`).
3. One aggregation over the data (:func:`~.shards.summarize`) finds the features' length
   and the labels' range and raises every data error before any barrier task starts.
4. The spec is resolved against the data (:func:`~.spec.resolve`: an MLP of ``in`` features
   and ``out`` classes by default) and the rows are sharded over the ranks
   (:func:`~.shards.shard_frame`).
5. :class:`~sparkgrad.engine.spark_runner.SparkRunner` runs
   :func:`~.training.fit_rank` on the DataFrame's partitions (a barrier ``mapInArrow``
   stage: rank ``r`` reads partition ``r`` and nothing else) and brings rank 0's weights
   back without pickle; the subclass wraps them in its Model.
"""

from __future__ import annotations

import re
from typing import Any

from pyspark.ml import Estimator
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable

from sparkgrad.engine.config import RunConfig
from sparkgrad.errors import ConfigError, DataFormatError
from sparkgrad.spark.ml import spec as specs
from sparkgrad.spark.ml.params import SparkgradParams, SparkgradParamSetters
from sparkgrad.spark.ml.shards import dp_coordinates, select_columns, shard_frame, summarize

#: The CLI's flag names in the engine's messages -> the Params they come from.
FLAG_TO_PARAM = {
    "--batch-size": "batchSize",
    "--world-size": "numRanks",
    "--epochs": "maxIter",
    "--lr": "stepSize",
    "--hidden": 'model "hidden"',
    "--optimizer": "optimizer",
    "--strategy": "strategy",
    "--momentum": "momentum",
    "--model": "model",
    "--seed": "seed",
}
_FLAG = re.compile("|".join(re.escape(f) + r"\b" for f in FLAG_TO_PARAM))


def _param_names(message: str) -> str:
    return _FLAG.sub(lambda m: FLAG_TO_PARAM[m.group(0)], message)


class SparkgradEstimator(
    Estimator, SparkgradParams, SparkgradParamSetters, DefaultParamsReadable, DefaultParamsWritable
):
    """The shared ``fit``; subclasses set :attr:`task` and implement :meth:`_make_model`."""

    task = "classification"

    def run_config(self) -> RunConfig:
        """The Params as an engine run config (data sizes are added by ``fit``)."""
        spec = specs.parse(self.getModel())
        world = self.getNumRanks()
        config = RunConfig(
            strategy=self.getStrategy(),
            model=spec["name"],
            world_size=world,
            epochs=self.getMaxIter(),
            batch_size=self.getBatchSize(),
            lr=self.getStepSize(),
            optimizer=self.getOptimizer(),
            momentum=self.getMomentum(),
            hidden=tuple(spec.get("hidden", (256, 256))),
            d_model=spec.get("d_model", 64),
            heads=spec.get("heads", 4),
            layers=spec.get("layers", 2),
            dropout=spec.get("dropout", 0.0),
            seed=self.getSeed() % 2**63,  # Spark seeds are any long; the engine's are >= 0
            sim_topology="2x8-h100" if world <= 16 else f"1x{world}-h100",
            progress=False,
        )
        # The one place the mode enters the engine's run config: sync trains with the
        # strategy; async, hogwild and ssp through the parameter server on the driver.
        config.mode, config.staleness = self.getMode(), self.getStaleness()
        config.extra["mode"] = self.getMode()
        config.extra["task"] = self.task
        try:
            config.validate()
        except ConfigError as exc:
            raise ConfigError(f"{type(self).__name__}: {_param_names(str(exc))}") from None
        if world > 1 and config.strategy == "single":
            raise ConfigError(
                f'{type(self).__name__}: strategy "single" trains in one process; use '
                f"numRanks=1 (any strategy) or a parallel strategy for numRanks={world}"
            )
        return config

    def _fit(self, dataset: Any) -> Any:
        config = self.run_config()
        features, label = self.getFeaturesCol(), self.getLabelCol()
        prepared = select_columns(dataset, features, label)
        summary = summarize(prepared, features, label, self.task == "classification")
        spec = specs.parse(self.getModel())
        outputs = 1
        if self.task == "classification":
            classes = specs.fixed_classes(spec)
            if classes is not None and summary.num_classes > classes:
                raise DataFormatError(
                    f"labelCol {label!r}: expected labels in [0, {classes}) (model "
                    f"{spec['name']!r} has {classes} classes), found labels up to "
                    f"{summary.label_max:g}"
                )
            outputs = classes or max(summary.num_classes, 2)
        spec = specs.resolve(spec, summary.num_features, outputs)
        coords = dp_coordinates(config.strategy, config.world_size, config.mesh)
        dp = max(coords) + 1
        per_rank = config.batch_size // dp
        if summary.rows < config.world_size:
            raise DataFormatError(
                f"the DataFrame has {summary.rows} rows, fewer than numRanks="
                f"{config.world_size}: expected at least one row per rank"
            )
        rows_per_coord = summary.rows // dp
        if rows_per_coord < per_rank:
            raise ConfigError(
                f"batchSize {config.batch_size} needs {per_rank} rows on each of {dp} "
                f"data-parallel ranks, but {summary.rows} rows give each only "
                f"{rows_per_coord}: lower batchSize or numRanks"
            )
        config.extra.update(
            model_spec=spec,
            coords=coords,
            dp_size=dp,
            rows_per_coord=rows_per_coord,
        )
        out = self._launch(config, shard_frame(prepared, coords, rows_per_coord))
        model = self._make_model(out["state_dict"], spec, out["train_loss"])
        return self._copyValues(model)

    def _launch(self, config: RunConfig, shards: Any) -> dict:
        """Run :func:`~.training.fit_rank` on every rank over ``shards``' partitions."""
        from sparkgrad.engine.spark_runner import SparkRunner
        from sparkgrad.spark.ml.training import fit_rank

        runner = SparkRunner(shards.sparkSession, config.world_size)  # Spark logs: untouched
        if not config.uses_parameter_server:
            return runner.run(fit_rank, config.to_dict(), inputs=shards)
        from sparkgrad.engine.async_launch import DriverService

        spec = config.extra["model_spec"]
        service = DriverService(
            config,
            shards.sparkSession.sparkContext.master,
            build=lambda: specs.build(spec, config.seed),
        )
        out = runner.run(fit_rank, config.to_dict(), inputs=shards, service=service)
        return service.merge(out)

    def _make_model(self, state_dict: dict, spec: dict, train_loss: list[float]) -> Any:
        raise NotImplementedError
