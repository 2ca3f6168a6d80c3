"""Parallel strategies: DataParallel, ModelParallel, PipelineParallel, TensorParallel, ZeRO."""
