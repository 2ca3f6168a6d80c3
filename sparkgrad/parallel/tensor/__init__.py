"""Tensor parallelism (Megatron): one layer's matmul split over ranks, the f/g pair."""
