"""Parallel strategies, one per file, all behind one interface (:mod:`.strategy`).

``data`` DataParallel (DDP) · ``model`` ModelParallel · ``pipeline`` PipelineParallel
(GPipe, 1F1B) · ``tensor`` TensorParallel (Megatron column/row layers) · ``zero1..3`` ZeRO ·
``hybrid`` a data x tensor :class:`ProcessMesh`. :func:`make_strategy` builds one by name.
"""

from sparkgrad.parallel.data.buckets import compute_bucket_assignment_by_size
from sparkgrad.parallel.data.data_parallel import DataParallel
from sparkgrad.parallel.data.ddp import DistributedDataParallel
from sparkgrad.parallel.data.ddp_timeline import BucketTiming, StepTimeline
from sparkgrad.parallel.data.strategy import DataParallelStrategy
from sparkgrad.parallel.registry import STRATEGIES, make_strategy
from sparkgrad.parallel.single import SingleProcess
from sparkgrad.parallel.strategy import Strategy
from sparkgrad.parallel.timeline import Timeline

__all__ = [
    "STRATEGIES",
    "BucketTiming",
    "DataParallel",
    "DataParallelStrategy",
    "DistributedDataParallel",
    "SingleProcess",
    "StepTimeline",
    "Strategy",
    "Timeline",
    "compute_bucket_assignment_by_size",
    "make_strategy",
]
