"""``ProcessMesh``: the ranks laid out on one grid, one process group per axis.

Hybrid parallelism combines ways of splitting the work: ``dp`` (data: the batch), ``pp``
(pipeline: the layers, in stages), ``cp`` (context: the sequence) and ``tp`` (tensor: each
layer's matrices). With 8 ranks and the spec ``"dp=2,pp=2,tp=2"``, the ranks are numbered
into a ``(dp, pp, cp, tp)`` grid (here cp=1)::

    grid = numpy.arange(8).reshape(2, 2, 1, 2)     # grid[d, p, c, t] = global rank

    dp=0: pp=0 [0 1]     dp=1: pp=0 [4 5]        tp groups: a row      [0 1], [2 3], ...
          pp=1 [2 3]           pp=1 [6 7]        pp groups: a column   [0 2], [1 3], ...
                                                 dp groups: across     [0 4], [1 5], ...

A rank's group along an axis is the ranks that differ from it *only* in that axis: its
tensor-parallel partners share its data, its stage and its piece of the sequence; its
data-parallel partners hold the same slice of the same stage. The order of the axes is
Megatron-LM's: tensor parallelism innermost (it talks the most, so its ranks are
neighbours: the same machine, in a real cluster), then context, then pipeline, data
outermost (it talks once per step).

Every group comes from the one grid, so the groups always agree with each other, and
every rank creates every group in the same order (``new_group`` is a collective-style
call: all members of the parent group must make it, members or not).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.distributed.state import Group, resolve
from sparkgrad.errors import ConfigError

AXES = ("dp", "pp", "cp", "tp")  # outermost first: grid[d, p, c, t] = rank


def parse_mesh(spec: str, world_size: int) -> dict[str, int]:
    """``"dp=2,tp=2"`` -> ``{"dp": 2, "pp": 1, "cp": 1, "tp": 2}`` (missing axes are 1).

    Raises :class:`ConfigError` for bad syntax, unknown or repeated axes, sizes below 1,
    or a product that is not ``world_size``.
    """
    if not isinstance(spec, str):
        raise ConfigError(f"mesh spec: expected a string like 'dp=2,tp=2', found {spec!r}")
    sizes = dict.fromkeys(AXES, 1)
    seen: set[str] = set()
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, eq, value = (s.strip() for s in part.partition("="))
        if not eq or not name or not value:
            raise ConfigError(
                f"mesh spec {spec!r}: expected 'axis=size' items separated by commas "
                f"(e.g. 'dp=2,tp=2'), found {part!r}"
            )
        if name not in AXES:
            raise ConfigError(f"mesh spec {spec!r}: expected axes among {AXES}, found {name!r}")
        if name in seen:
            raise ConfigError(f"mesh spec {spec!r}: axis {name!r} is given twice")
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(
                f"mesh spec {spec!r}: expected a positive integer size for {name}, found {value!r}"
            )
        seen.add(name)
        sizes[name] = int(value)
    product = int(np.prod([sizes[a] for a in AXES]))
    if product != world_size:
        raise ConfigError(
            f"mesh spec {spec!r}: dp*pp*cp*tp = {product}, expected the world size {world_size}; "
            f"choose sizes whose product is {world_size}"
        )
    return sizes


def mesh_coordinates(spec: str, world_size: int) -> list[dict[str, int]]:
    """Every rank's place on the grid, ``[{"dp": 0, "pp": 0, "cp": 0, "tp": 1}, ...]``
    (arithmetic only: the driver uses it before any rank or group exists)."""
    sizes = parse_mesh(spec, world_size)
    grid = np.arange(world_size).reshape(*(sizes[a] for a in AXES))
    return [{a: int(c) for a, c in zip(AXES, np.argwhere(grid == r)[0])} for r in range(world_size)]


def axis_groups(grid: np.ndarray, axis: str) -> list[list[int]]:
    """Every group along ``axis``: lists of ranks that differ only in that coordinate."""
    a = AXES.index(axis)
    moved = np.moveaxis(grid, a, -1)  # the axis last, the others flattened in order
    return [[int(r) for r in row] for row in moved.reshape(-1, grid.shape[a])]


class ProcessMesh:
    """The ``(dp, pp, cp, tp)`` grid of ``process_group``'s ranks and this rank's groups.

    ``mesh.group("tp")`` is this rank's tensor-parallel group (a ``dist`` group handle),
    ``mesh.coords`` its place on the grid (``{"dp": 1, "pp": 0, "cp": 0, "tp": 0}``), and
    ``mesh.size("dp")`` an axis's length. Ranks in the spec and the grid are indices in
    ``process_group`` (the default group: global ranks).
    """

    def __init__(self, spec: str, process_group: Any = None) -> None:
        parent = resolve(process_group)
        self.spec = spec
        self.sizes = parse_mesh(spec, parent.size())
        self.grid = np.arange(parent.size()).reshape(*(self.sizes[a] for a in AXES))
        self.rank = parent.rank()
        where = np.argwhere(self.grid == self.rank)[0]
        self.coords = {a: int(c) for a, c in zip(AXES, where)}
        self._groups: dict[str, Group] = {}
        for axis in AXES:  # every rank makes every group, in the same order
            for ranks in axis_groups(self.grid, axis):
                pg = parent.pg.new_group(ranks)
                if pg is not None:
                    self._groups[axis] = Group(pg)

    def size(self, axis: str) -> int:
        """How many ranks lie along ``axis``."""
        return self.sizes[self._check(axis)]

    def group(self, axis: str) -> Group:
        """This rank's process group along ``axis`` (``"dp"``, ``"pp"``, ``"cp"`` or ``"tp"``)."""
        return self._groups[self._check(axis)]

    def _check(self, axis: str) -> str:
        if axis not in AXES:
            raise ConfigError(f"ProcessMesh: expected an axis among {AXES}, found {axis!r}")
        return axis

    def __repr__(self) -> str:
        shape = ", ".join(f"{a}={self.sizes[a]}" for a in AXES)
        rows = np.array2string(self.grid, separator=" ").splitlines()
        grid = "\n".join(("    " + line).rstrip() for line in rows)
        return f"ProcessMesh({shape}, rank {self.rank} at {self.coords})\n{grid}"
