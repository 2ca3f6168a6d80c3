"""ZeRO stages 1-3: data parallelism that shards optimizer state, gradients, parameters."""
