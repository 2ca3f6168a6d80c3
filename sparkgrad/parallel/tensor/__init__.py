"""Tensor parallelism (Megatron): one layer's matmul split over ranks, the f/g pair.

``comm_ops`` (f/g and the sequence-parallel pair) · ``layers`` (column/row dense) ·
``splits`` (how a parameter is cut, for checkpoints) · ``vocab`` (vocabulary-parallel
embedding, head and cross-entropy) · ``transformer`` (``shard_gpt``, sequence parallelism) ·
``strategy`` (``TensorParallel``).
"""
