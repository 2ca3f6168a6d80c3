"""Context parallelism: the sequence split over ranks, attention as ring attention.

- :mod:`.chunks`: the contiguous and the balanced ("zigzag") causal split of a sequence,
  its inverse, and the mask between a query chunk and a key chunk.
- :mod:`.ring_attention`: :func:`ring_attention`, one autograd op whose forward passes K/V
  round the ring merging softmaxes online and whose backward sends dK/dV home the same way.
- :mod:`.gpt`: :func:`context_parallel_gpt` swaps a GPT's attention kernels for ring
  attention and its position lookup for this rank's positions.
- :mod:`.strategy`: :class:`ContextParallel`, ``--strategy context``.
"""

from sparkgrad.parallel.context.chunks import (
    block_mask,
    gather_sequence,
    positions,
    rank_chunks,
    split_sequence,
)
from sparkgrad.parallel.context.ring_attention import RingAttention, ring_attention

__all__ = [
    "RingAttention",
    "block_mask",
    "gather_sequence",
    "positions",
    "rank_chunks",
    "ring_attention",
    "split_sequence",
]
