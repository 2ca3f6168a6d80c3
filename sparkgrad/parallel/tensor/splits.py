"""``Split``: how one parameter is cut over the tensor-parallel ranks, and how to undo it.

A checkpoint always holds the plain model (:mod:`~sparkgrad.parallel.strategy`), so for
every split parameter the strategy must be able to glue the ranks' pieces back into the
full tensor and cut a full tensor into this rank's piece. Three cuts cover the GPT::

    Split(dim=0)                    rows split evenly          linear1.weight (4E, E)
    Split(dim=1)                    columns split evenly       linear2.weight (E, 4E)
    Split(dim=0, blocks=3)          3 blocks along dim 0,      in_proj_weight (3E, E) =
                                    each split evenly          [Wq; Wk; Wv]: rank r keeps
                                                               rows r of Wq, of Wk and of Wv
    Split(dim=0, sizes=(4, 4, 3))   uneven rows (11 = 4+4+3)   token.weight (V, E)

With ``blocks=3`` over 2 ranks the full tensor and the pieces line up like this::

    full  [ Wq0 Wq1 | Wk0 Wk1 | Wv0 Wv1 ]      rank 0 [ Wq0 | Wk0 | Wv0 ]
                                               rank 1 [ Wq1 | Wk1 | Wv1 ]

``sizes`` are the per-rank lengths of each block along ``dim`` (the vocabulary slices of
:func:`~sparkgrad.parallel.tensor.vocab.vocab_sizes`); ``None`` means even. Unequal pieces
travel through ``all_gather`` (which wants equal shapes) padded to the longest, then trimmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import to_numpy
from sparkgrad.errors import CheckpointError


@dataclass(frozen=True)
class Split:
    """``blocks`` equal blocks along ``dim``, each cut over the ranks (``sizes`` or evenly)."""

    dim: int = 0
    blocks: int = 1
    sizes: tuple[int, ...] | None = None

    def lengths(self, local_len: int, n: int) -> list[int]:
        """Every rank's length of one block along ``dim`` (this rank's block: ``local_len``)."""
        return list(self.sizes) if self.sizes is not None else [local_len // self.blocks] * n

    def full_shape(self, local_shape: tuple[int, ...], n: int) -> tuple[int, ...]:
        """The shape of the whole tensor, from this rank's piece."""
        dim = self.dim % len(local_shape)
        total = self.blocks * sum(self.lengths(local_shape[dim], n))
        return tuple(total if d == dim else s for d, s in enumerate(local_shape))

    def cut(self, full: np.ndarray, rank: int, n: int, local_len: int) -> np.ndarray:
        """Rank ``rank``'s piece of ``full``: its slice of every block, blocks concatenated."""
        dim = self.dim % full.ndim
        bounds = np.cumsum([0, *self.lengths(local_len, n)])
        blocks = np.split(full, self.blocks, axis=dim)
        mine = [np.take(b, np.arange(bounds[rank], bounds[rank + 1]), axis=dim) for b in blocks]
        return np.concatenate(mine, axis=dim)

    def glue(self, parts: list[np.ndarray]) -> np.ndarray:
        """The whole tensor from every rank's piece (the inverse of :meth:`cut`)."""
        dim = self.dim % parts[0].ndim
        per_rank = [np.split(p, self.blocks, axis=dim) for p in parts]
        blocks = [np.concatenate([pr[b] for pr in per_rank], axis=dim) for b in range(self.blocks)]
        return np.concatenate(blocks, axis=dim)


def as_split(value: Split | int | None) -> Split | None:
    """A :class:`Split` from the older ``shard_dims`` spelling (an int is ``Split(dim)``)."""
    return Split(value) if isinstance(value, int) else value


def split_specs(model: Any) -> dict[str, Split | None]:
    """Every ``state_dict`` parameter key -> its :class:`Split` (``None``: replicated).

    Read from each module's ``shard_dims`` (``{"weight": Split(...)}``); a tied parameter
    (``head.weight is token.weight``) appears under both of its keys, as in ``state_dict``.
    """
    specs: dict[str, Split | None] = {}
    for prefix, module in model.named_modules(remove_duplicate=False):
        dims = getattr(module, "shard_dims", {})
        for name, param in module._parameters.items():
            if param is not None:
                specs[f"{prefix}.{name}" if prefix else name] = as_split(dims.get(name))
    return specs


def gather_pieces(local: Any, split: Split, group: Any) -> list[np.ndarray]:
    """Every rank's piece of a split tensor (``all_gather``, padded when uneven)."""
    local = np.ascontiguousarray(to_numpy(local))
    n = group.size()
    if n == 1:
        return [np.array(local)]
    dim = split.dim % local.ndim
    lengths = [split.blocks * s for s in split.lengths(local.shape[dim], n)]
    longest = max(lengths)
    pad = [(0, longest - local.shape[dim]) if d == dim else (0, 0) for d in range(local.ndim)]
    parts = group.pg.all_gather(np.ascontiguousarray(np.pad(local, pad)))
    return [np.take(p, np.arange(length), axis=dim) for p, length in zip(parts, lengths)]


def gather_full(local: Any, split: Split | None, group: Any) -> np.ndarray:
    """The whole tensor on every rank (a copy of ``local`` when it is replicated)."""
    if split is None or group.size() == 1:
        return np.array(to_numpy(local))
    return split.glue(gather_pieces(local, split, group))


def cut_full(
    full: Any, split: Split | None, group: Any, key: str, local_shape: tuple[int, ...]
) -> np.ndarray:
    """This rank's piece of a whole tensor, after checking the whole tensor's shape."""
    full = np.asarray(to_numpy(full))
    n = group.size()
    want = tuple(local_shape) if split is None else split.full_shape(tuple(local_shape), n)
    if full.shape != want:
        raise CheckpointError(f"{key}: expected a full tensor of shape {want}, found {full.shape}")
    if split is None:
        return full.copy()
    local_len = local_shape[split.dim % len(local_shape)]
    return split.cut(full, group.rank(), n, local_len)
