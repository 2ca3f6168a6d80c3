"""Cut a ``Sequential`` into pipeline stages, and put the stages back together.

Model and pipeline parallelism give each rank a *contiguous* run of the network's layers:
rank 0 the first few, rank ``p-1`` the last few and the loss. Where to cut?

- The cutting unit is a ``Linear`` together with what follows it up to the next
  ``Linear`` (its ``ReLU``): an activation function never lands on another rank than the
  layer it belongs to, so exactly one tensor crosses each boundary.
- **Balanced** (the default): choose the ``p`` contiguous groups of units whose largest
  parameter count is as small as possible (a small dynamic programme). Parameters stand
  in for compute here: a ``Linear`` does ``2 * params`` flops per row.
- **Explicit**: ``split=[2, 1, 1]`` gives 2 Linears to stage 0 and one each to stages 1
  and 2 (for a 4-Linear model on 3 ranks).

    >>> model = Sequential(Linear(12, 16), ReLU(), Linear(16, 16), ReLU(), Linear(16, 4))
    >>> partition(model, stages=2)                # module index ranges [start, end)
    [(0, 2), (2, 5)]

Keys never change: a stage is ``model[start:end]``, a Sequential that keeps the original
keys (``2.weight``), so a stage's ``state_dict`` is a slice of the full one.
:func:`gather_arrays` is the way back: every stage contributes its named arrays and every
rank ends with all of them (what ``full_state_dict`` returns).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from sparkgrad.autodiff.nn import Linear, Sequential
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.errors import ConfigError


def linear_units(model: Module) -> list[tuple[int, int]]:
    """Module index ranges ``[start, end)`` that each hold one ``Linear`` and what follows it."""
    if not isinstance(model, Sequential):
        raise ConfigError(
            f"model and pipeline parallelism expect an nn.Sequential of Linear and ReLU "
            f"layers, found {type(model).__name__}"
        )
    starts = [i for i, m in enumerate(model) if isinstance(m, Linear)]
    if not starts:
        raise ConfigError("expected a Sequential with at least one Linear layer, found none")
    starts[0] = 0  # anything before the first Linear rides with it
    return list(zip(starts, starts[1:] + [len(model)]))


def balanced_split(sizes: list[int], parts: int) -> list[int]:
    """How many consecutive ``sizes`` each of ``parts`` groups takes, minimising the largest sum.

    ``best[k][i]`` = the smallest possible largest group when the first ``i`` items form
    ``k`` groups; the last group is ``items[j:i]`` for the best ``j``.
    """
    n, inf = len(sizes), float("inf")
    prefix = np.concatenate([[0], np.cumsum(sizes)])
    best = [[inf] * (n + 1) for _ in range(parts + 1)]
    cut = [[0] * (n + 1) for _ in range(parts + 1)]
    best[0][0] = 0
    for k in range(1, parts + 1):
        for i in range(k, n + 1):
            for j in range(k - 1, i):
                cost = max(best[k - 1][j], prefix[i] - prefix[j])
                if cost < best[k][i]:
                    best[k][i], cut[k][i] = cost, j
    counts, i = [], n
    for k in range(parts, 0, -1):
        counts.append(i - cut[k][i])
        i = cut[k][i]
    return counts[::-1]


def partition(model: Module, stages: int, split: list[int] | None = None) -> list[tuple[int, int]]:
    """Module index ranges ``[start, end)`` of each of ``stages`` stages (see module docstring)."""
    units = linear_units(model)
    if stages > len(units):
        raise ConfigError(
            f"{stages} pipeline stages need at least {stages} Linear layers (one per stage), "
            f"found {len(units)}; use fewer ranks or a deeper model"
        )
    if split is None:
        sizes = [sum(p.size for p in _params(model, a, b)) for a, b in units]
        counts = balanced_split(sizes, stages)
    else:
        counts = [int(c) for c in split]
        if len(counts) != stages or min(counts) < 1 or sum(counts) != len(units):
            raise ConfigError(
                f"split must list {stages} positive Linear counts (one per stage) summing to "
                f"{len(units)}, the model's Linear layers; found {list(split)}"
            )
    ranges, first = [], 0
    for c in counts:
        ranges.append((units[first][0], units[first + c - 1][1]))
        first += c
    return ranges


def _params(model: Module, start: int, end: int) -> list[Any]:
    return [p.array for m in list(model)[start:end] for p in m.parameters()]


def parameter_indices(model: Module, start: int, end: int) -> list[int]:
    """Positions in ``model.parameters()`` of the parameters of modules ``start..end-1``."""
    keys = list(model._modules)[start:end]
    return [
        i for i, (name, _) in enumerate(model.named_parameters()) if name.split(".", 1)[0] in keys
    ]


def gather_arrays(pg: Any, mine: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every rank's named arrays, on every rank (a collective).

    Rank by rank, the owner broadcasts a small JSON header (names, shapes, dtypes; never
    pickle) and then the arrays themselves, so the receivers can allocate buffers for
    arrays they have never seen.
    """
    out: dict[str, np.ndarray] = {}
    for root in range(pg.size):
        header = b""
        if pg.rank == root:
            items = [[k, list(np.shape(v)), np.asarray(v).dtype.str] for k, v in mine.items()]
            header = json.dumps(items).encode()
        length = np.array([len(header)], dtype=np.int64)
        pg.broadcast(length, root=root)
        raw = np.frombuffer(header, np.uint8).copy() if pg.rank == root else None
        raw = raw if raw is not None else np.empty(int(length[0]), np.uint8)
        pg.broadcast(raw, root=root)
        for key, shape, dtype in json.loads(raw.tobytes().decode()):
            if pg.rank == root:
                buf = np.array(mine[key], dtype=dtype).reshape(shape)
            else:
                buf = np.empty(shape, dtype)
            pg.broadcast(buf, root=root)
            out[key] = buf
    return out
