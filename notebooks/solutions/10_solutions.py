"""Solutions of notebook 10 (Spark ML pipelines and asynchronous training)."""

# 1. mode="ssp" without a staleness bound is a configuration error (the engine's rule, with the
#    Params' names), raised on the driver before any data is read or any task starts.
solution_1 = "ConfigError"
