"""Model and pipeline parallelism: consecutive layers per rank, micro-batch schedules."""
