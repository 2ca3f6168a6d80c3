"""``FlatBuffer``: many parameters laid end to end in one padded flat array, cut in N shards.

ZeRO (like DeepSpeed and PyTorch FSDP) does not shard each parameter on its own: it lays
the parameters of a group end to end in one flat array, pads it with zeros to a length
``L`` divisible by the number of ranks ``N``, and gives rank ``r`` the slice
``[r * L/N, (r + 1) * L/N)``. Every shard then has the same length, which is what
``all_gather`` and ``reduce_scatter`` want, and a shard may cut a parameter in two::

    shapes (2, 3) and (3,), N = 2:  numel 9, padded L = 10, shard length 5

    flat:   w00 w01 w02 w10 w11 | w12 b0  b1  b2  pad
            ------ rank 0 ------ ------ rank 1 ------

A ``FlatBuffer`` is only the *layout* (shapes, offsets, lengths); the arrays it describes
belong to whoever calls it. :meth:`flatten` packs arrays into a flat array (padding
zeroed), :meth:`views` gives per-parameter views *into* a flat array (writing through a
view writes the flat array: no copy), :meth:`shard` gives rank ``r``'s slice (a view too).

Padding is zeros and stays zeros in training: its gradient is zero (:meth:`flatten` zeroes
it), and SGD and Adam move a zero parameter with a zero gradient nowhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module
from sparkgrad.errors import ConfigError, ShapeError


class FlatBuffer:
    """The layout of ``shapes`` flattened into one array padded to a multiple of ``world_size``.

    Args:
        shapes: the parameters' shapes, in the order they are laid out.
        world_size: the number of shards ``N`` (the padded length is divisible by it).
        dtype: the element type of the flat arrays (float32 by default).
    """

    def __init__(
        self, shapes: Sequence[tuple[int, ...]], world_size: int, dtype: Any = np.float32
    ) -> None:
        if world_size < 1:
            raise ConfigError(f"FlatBuffer: expected world_size >= 1, found {world_size}")
        self.shapes = [tuple(int(d) for d in s) for s in shapes]
        self.world_size = world_size
        self.dtype = np.dtype(dtype)
        self.sizes = [math.prod(s) for s in self.shapes]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.numel = sum(self.sizes)  # P: the real elements
        self.shard_numel = -(-self.numel // world_size)  # ceil(P / N)
        self.padded_numel = self.shard_numel * world_size  # L, divisible by N

    @classmethod
    def like(cls, arrays: Sequence[Any], world_size: int) -> FlatBuffer:
        """The layout of ``arrays`` (their shapes, the first one's dtype)."""
        if not arrays:
            raise ConfigError("FlatBuffer: expected at least one array to lay out, found none")
        return cls([a.shape for a in arrays], world_size, arrays[0].dtype)

    @property
    def padding(self) -> int:
        """How many zero elements follow the real ones (``L - P``, at most ``N - 1``)."""
        return self.padded_numel - self.numel

    # ---- packing and unpacking -------------------------------------------------------------
    def flatten(self, arrays: Sequence[Any], out: Any = None) -> Any:
        """Copy ``arrays`` end to end into ``out`` (new if None) and zero the padding.

        A missing array (``None``, e.g. a parameter without gradient) counts as zeros.
        """
        if len(arrays) != len(self.shapes):
            raise ShapeError(
                f"FlatBuffer.flatten: expected {len(self.shapes)} arrays, found {len(arrays)}"
            )
        if out is None:
            like = next((a for a in arrays if a is not None), None)
            xp = array_module(like) if like is not None else np
            out = xp.empty(self.padded_numel, dtype=self.dtype)
        self._check_flat(out, "flatten")
        for a, shape, start, size in zip(arrays, self.shapes, self.offsets, self.sizes):
            if a is None:
                out[start : start + size] = 0
                continue
            if tuple(a.shape) != shape:
                raise ShapeError(
                    f"FlatBuffer.flatten: expected an array of shape {shape} at offset "
                    f"{start}, found {tuple(a.shape)}"
                )
            out[start : start + size] = a.reshape(-1)
        out[self.numel :] = 0
        return out

    def views(self, flat: Any) -> list[Any]:
        """Per-parameter views into ``flat`` (no copies: they share its memory)."""
        self._check_flat(flat, "views")
        return [
            flat[start : start + size].reshape(shape)
            for shape, start, size in zip(self.shapes, self.offsets, self.sizes)
        ]

    def shard_range(self, rank: int) -> tuple[int, int]:
        """``[start, stop)`` of rank ``rank``'s shard in the flat array."""
        if not 0 <= rank < self.world_size:
            raise ConfigError(
                f"FlatBuffer: expected a rank in 0..{self.world_size - 1}, found {rank}"
            )
        return rank * self.shard_numel, (rank + 1) * self.shard_numel

    def shard(self, flat: Any, rank: int) -> Any:
        """Rank ``rank``'s slice of ``flat`` (a view)."""
        self._check_flat(flat, "shard")
        start, stop = self.shard_range(rank)
        return flat[start:stop]

    def _check_flat(self, flat: Any, what: str) -> None:
        if tuple(flat.shape) != (self.padded_numel,):
            raise ShapeError(
                f"FlatBuffer.{what}: expected a flat array of shape ({self.padded_numel},), "
                f"found {tuple(flat.shape)}"
            )

    def __repr__(self) -> str:
        return (
            f"FlatBuffer({len(self.shapes)} tensors, numel={self.numel}, "
            f"padded={self.padded_numel}, shards={self.world_size}x{self.shard_numel})"
        )
