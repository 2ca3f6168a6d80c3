"""Solutions of notebook 10 (Spark ML pipelines and asynchronous training)."""

# 1. A mode the estimator cannot run yet is a configuration error, raised on the driver
#    before any data is read or any task starts.
solution_1 = "ConfigError"
