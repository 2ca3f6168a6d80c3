"""sparkgrad in Spark ML: Estimators that train on DataFrames, Models that ``transform``.

``SparkgradClassifier().fit(df)`` trains a network on the rows of ``df`` inside Spark
(a barrier stage of ``numRanks`` tasks, each reading only its own partition, through the
engine's :class:`~sparkgrad.engine.spark_runner.SparkRunner`, strategies and Trainer);
the returned :class:`SparkgradClassificationModel` adds ``rawPrediction``,
``probability`` and ``prediction`` in ``transform`` with a vectorised Arrow UDF, works
with ``MulticlassClassificationEvaluator``, ``ParamGridBuilder`` + ``CrossValidator`` /
``TrainValidationSplit``, and saves with Spark ML's own ``write().save(path)`` (params as
JSON, weights as safetensors PyTorch loads), inside a ``PipelineModel`` too.

Files: :mod:`.params` (the Params), :mod:`.spec` (the ``model`` JSON spec),
:mod:`.shards` (DataFrame -> per-rank Arrow tables, the driver-side checks),
:mod:`.training` (what a rank runs), :mod:`.estimator` (``fit``), :mod:`.model`,
:mod:`.classifier`, :mod:`.regressor`, :mod:`.predict` (the Arrow UDF),
:mod:`.persistence` and :mod:`.hadoop_files` (save/load).
"""

from sparkgrad.spark.ml.classifier import SparkgradClassificationModel, SparkgradClassifier
from sparkgrad.spark.ml.regressor import SparkgradRegressionModel, SparkgradRegressor

__all__ = [
    "SparkgradClassificationModel",
    "SparkgradClassifier",
    "SparkgradRegressionModel",
    "SparkgradRegressor",
]
