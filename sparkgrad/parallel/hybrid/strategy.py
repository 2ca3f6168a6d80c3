"""``HybridParallel``: data parallelism *of* tensor-parallel replicas, on a process mesh.

With the mesh ``"dp=2,tp=2"`` on 4 ranks (see :mod:`~sparkgrad.parallel.hybrid.mesh`)::

    grid = [[0 1]      tp groups (split each layer):   [0 1]  [2 3]
            [2 3]]     dp groups (split the batch):    [0 2]  [1 3]

Ranks 0 and 1 together hold one copy of the model, each with half of every split layer
(:class:`~sparkgrad.parallel.tensor.strategy.TensorParallel` inside the tp group),
and train on the first half of the global batch; ranks 2 and 3 hold another copy and
train on the second half. After backward, each rank averages its gradients with its
data-parallel partner -- the rank holding the *same slice* of the *other* copy -- so both
copies take the step a single process takes on the whole batch::

    forward/backward       tensor parallel inside the tp group (f/g all_reduces)
    all_reduce(grads)/dp   over the dp group (one flat buffer, after backward)
    optimizer.step()       on the local slices

``data_parallel_size`` is ``dp`` and ``data_parallel_rank`` the dp coordinate, so the ranks
of one tp group read the same rows. ``pp`` > 1 (pipeline stages) is not supported yet.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.distributed.state import resolve
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.hybrid.mesh import ProcessMesh, parse_mesh
from sparkgrad.parallel.strategy import LossFn, OptimizerFactory
from sparkgrad.parallel.tensor.strategy import TensorParallel


class HybridParallel(TensorParallel):
    """Tensor parallel within ``mesh``'s tp groups, data parallel across its dp groups."""

    name = "hybrid"

    @classmethod
    def tensor_ways(cls, config: Any) -> int:
        return parse_mesh(config.mesh, config.world_size)["tp"]

    @classmethod
    def check_config(cls, config: Any) -> None:
        sizes = parse_mesh(config.mesh, config.world_size)
        for axis, what in (("pp", "pipeline"), ("cp", "context")):
            if sizes[axis] > 1:
                raise ConfigError(
                    f"--mesh {config.mesh}: the hybrid strategy runs data x tensor meshes; a "
                    f"{what} axis ({axis}={sizes[axis]}) is not supported yet (use {axis}=1)"
                )
        super().check_config(config)

    @classmethod
    def batch_ways(cls, config: Any) -> int:
        return parse_mesh(config.mesh, config.world_size)["dp"]

    @classmethod
    def group_sizes(cls, config: Any) -> list[int]:
        sizes = parse_mesh(config.mesh, config.world_size).values()
        return [config.world_size] + [n for n in sizes if n > 1]

    @classmethod
    def options_from(cls, config: Any) -> dict[str, Any]:
        return {**super().options_from(config), "mesh": config.mesh}  # + sequence_parallel

    def __init__(
        self,
        model: Module,
        optimizer_factory: OptimizerFactory,
        loss_fn: LossFn,
        process_group: Any = None,
        mesh: str | ProcessMesh = "dp=2,tp=2",
        sequence_parallel: bool = False,
    ) -> None:
        parent = resolve(process_group)
        if isinstance(mesh, str):
            mesh = ProcessMesh(mesh, process_group)
        if mesh.size("pp") > 1 or mesh.size("cp") > 1:
            raise ConfigError(
                f"HybridParallel: pipeline (pp={mesh.size('pp')}) and context "
                f"(cp={mesh.size('cp')}) axes are not supported yet; use a mesh with pp=1 and "
                "cp=1 such as 'dp=2,tp=2'"
            )
        self.mesh = mesh
        self.dp_group = mesh.group("dp")
        super().__init__(model, optimizer_factory, loss_fn, mesh.group("tp"), sequence_parallel)
        self.rank, self.world_size = parent.rank(), parent.size()
        self.timeline.rank = self.rank

    @property
    def data_parallel_size(self) -> int:
        return self.mesh.size("dp")

    @property
    def data_parallel_rank(self) -> int:
        return self.mesh.coords["dp"]

    def after_backward(self) -> None:
        """Average every gradient over the dp group: one all_reduce of one flat buffer."""
        n = self.dp_group.size()
        if n == 1:
            return
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        xp = array_module(grads[0].array)
        flat = xp.concatenate([g.array.reshape(-1) for g in grads])
        self.dp_group.pg.all_reduce(flat)
        flat /= n
        offset = 0
        for g in grads:  # views of the averaged buffer (backward's arrays are not written)
            g.array = flat[offset : offset + g.array.size].reshape(g.array.shape)
            offset += g.array.size

    def global_loss(self, loss: float) -> float:
        """The mean of the dp replicas' losses (equal pieces of the batch)."""
        if self.dp_group.size() == 1:
            return loss
        buf = np.array([loss], dtype=np.float64)
        self.dp_group.pg.all_reduce(buf)
        return float(buf[0] / self.dp_group.size())
