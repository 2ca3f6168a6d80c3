"""Gradient buckets: many small gradients travel as a few large all_reduce calls.

Every collective pays a fixed latency, so reducing 100 gradients one by one is slow. DDP
packs them into *buckets* of about ``bucket_cap_mb`` megabytes and reduces each bucket as
one flat, contiguous array. Two choices decide how well communication hides behind the
backward pass:

1. **Order.** Backward produces gradients roughly in *reverse* registration order (the last
   layer first). Parameters are therefore assigned to buckets in reverse order, so the
   first bucket fills up -- and can start travelling -- while backward is still busy with
   the earlier layers.
2. **A small first bucket** (``first_bucket_mb``, 1 MB in PyTorch): communication starts
   as early as possible instead of waiting for 25 MB of gradients.

:func:`compute_bucket_assignment_by_size` is PyTorch's rule
(``torch.distributed._compute_bucket_assignment_by_size``): walk the tensors in the given
order, keep one open bucket per dtype (one flat buffer has one dtype), close a bucket once
its size *reaches* the current limit (so a bucket may exceed it by one tensor), use the
first limit for each dtype's first bucket and the last limit after that.

:class:`Bucket` is one bucket at run time: a flat buffer, the slice of it each parameter
owns, how many gradients are still missing, and the pending all_reduce.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from sparkgrad import distributed as dist
from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError


def compute_bucket_assignment_by_size(
    tensors: Sequence[Any], bucket_size_limits: Sequence[int]
) -> tuple[list[list[int]], list[int]]:
    """Group ``tensors`` (in the order given) into buckets of about the given byte sizes.

    Returns ``(bucket_indices, per_bucket_size_limits)``: the positions in ``tensors`` of
    each bucket's members, and the limit each bucket was filled up to. Buckets come out
    sorted by their smallest member position, as in PyTorch.

    >>> sizes = [np.zeros(n, np.float32) for n in (5, 150, 30, 600)]
    >>> compute_bucket_assignment_by_size(sizes, [600, 2000])
    ([[0, 1], [2, 3]], [600, 2000])
    """
    if not bucket_size_limits or any(int(b) <= 0 for b in bucket_size_limits):
        raise ConfigError(f"expected positive bucket size limits, found {list(bucket_size_limits)}")
    limits = [int(b) for b in bucket_size_limits]
    done: list[tuple[list[int], int]] = []
    open_buckets: dict[Any, tuple[list[int], int]] = {}  # dtype -> (members, bytes)
    limit_pos: dict[Any, int] = {}  # dtype -> index into limits
    for i, t in enumerate(tensors):
        key = np.dtype(t.dtype)
        members, nbytes = open_buckets.get(key, ([], 0))
        members.append(i)
        nbytes += int(t.size) * key.itemsize
        pos = limit_pos.setdefault(key, 0)
        if nbytes >= limits[pos]:
            done.append((members, limits[pos]))
            open_buckets.pop(key, None)
            limit_pos[key] = min(pos + 1, len(limits) - 1)
        else:
            open_buckets[key] = (members, nbytes)
    for key, (members, _) in open_buckets.items():
        done.append((members, limits[limit_pos[key]]))
    done.sort(key=lambda bucket: min(bucket[0]))
    return [m for m, _ in done], [limit for _, limit in done]


class Bucket:
    """One bucket at run time: flat buffer, per-parameter slices, readiness, pending work.

    Args:
        index: the bucket's position; buckets are launched strictly in index order, so
            every rank issues the same sequence of collectives.
        params: the member parameters (all of one dtype and device).
    """

    def __init__(self, index: int, params: Sequence[Tensor]) -> None:
        self.index = index
        self.params = list(params)
        self.offsets: list[int] = []
        total = 0
        for p in self.params:
            self.offsets.append(total)
            total += p.array.size
        xp = array_module(self.params[0].array)
        self.buffer = xp.zeros(total, dtype=self.params[0].array.dtype)
        self.nbytes = int(self.buffer.nbytes)
        self.pending = len(self.params)
        self.work: Any = None
        self.launched_at: float | None = None

    def reset(self) -> None:
        """Start a new iteration: every member's gradient is missing again."""
        self.pending = len(self.params)
        self.work = None
        self.launched_at = None

    def _slice(self, position: int) -> Any:
        start = self.offsets[position]
        return self.buffer[start : start + self.params[position].array.size]

    def fill(self, position: int) -> None:
        """Copy member ``position``'s gradient into the buffer (zeros if it has none)."""
        p, view = self.params[position], self._slice(position)
        if p.grad is None:
            view[...] = 0
        else:
            view[...] = p.grad.array.reshape(-1)
        self.pending -= 1

    @property
    def ready(self) -> bool:
        """True once every member's gradient is in the buffer."""
        return self.pending == 0

    def launch(self, all_reduce: Any) -> None:
        """Start ``all_reduce(buffer)`` (it returns a work handle, or None when synchronous)."""
        self.launched_at = time.perf_counter()
        self.work = all_reduce(self.buffer)

    def wait_and_unpack(self) -> float:
        """Wait for the reduction, copy the averaged values into each ``p.grad``.

        A parameter without a gradient gets a new one (it was treated as zeros). Returns
        the seconds spent waiting.
        """
        t0 = time.perf_counter()
        if self.work is not None:
            self.work.wait()
        waited = time.perf_counter() - t0
        for position, p in enumerate(self.params):
            view = self._slice(position).reshape(p.array.shape)
            if p.grad is None:
                p.grad = Tensor._wrap(view.copy())
            else:
                p.grad.array[...] = view
        self.work = None
        return waited


def broadcast_coalesced(tensors: Sequence[Tensor], src: int, group: Any = None) -> None:
    """Copy global rank ``src``'s values of ``tensors`` to every rank, one call per dtype.

    The tensors are flattened into one buffer per dtype (as a bucket is), broadcast, and
    copied back: a handful of collectives instead of one per tensor.
    """
    by_dtype: dict[Any, list[Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.array.dtype, []).append(t)
    for members in by_dtype.values():
        xp = array_module(members[0].array)
        flat = xp.concatenate([t.array.reshape(-1) for t in members])
        dist.broadcast(flat, src=src, group=group)
        offset = 0
        for t in members:
            t.array[...] = flat[offset : offset + t.array.size].reshape(t.array.shape)
            offset += t.array.size
