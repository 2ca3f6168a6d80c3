"""Spark-facing APIs above the engine: :mod:`sparkgrad.spark.ml` (pyspark.ml Estimators)."""
