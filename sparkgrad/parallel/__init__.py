"""Parallel strategies: DataParallel, ModelParallel, PipelineParallel, TensorParallel, ZeRO."""

from sparkgrad.parallel.buckets import compute_bucket_assignment_by_size
from sparkgrad.parallel.data_parallel import DataParallel
from sparkgrad.parallel.ddp_timeline import BucketTiming, StepTimeline

DistributedDataParallel = DataParallel  # PyTorch's name

__all__ = [
    "BucketTiming",
    "DataParallel",
    "DistributedDataParallel",
    "StepTimeline",
    "compute_bucket_assignment_by_size",
]
