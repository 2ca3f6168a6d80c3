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
of one tp group read the same rows. A GPT on a mesh with pipeline (``pp``) or context
(``cp``) axes composes every axis in :class:`~sparkgrad.parallel.hybrid.gpt_mesh.GPTMesh`
(:meth:`HybridParallel.build` picks it).
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
        deep = sizes["pp"] > 1 or sizes["cp"] > 1
        if deep and config.model != "gpt":
            raise ConfigError(
                f"--mesh {config.mesh}: pipeline and context axes split a GPT's blocks and "
                f"sequence; --model {config.model} runs data x tensor meshes (use pp=1, cp=1)"
            )
        super().check_config(config)  # the tensor-parallel rules, for the tp axis
        if deep:
            check_gpt_mesh(config, sizes)

    @classmethod
    def batch_ways(cls, config: Any) -> int:
        return parse_mesh(config.mesh, config.world_size)["dp"]

    @classmethod
    def group_sizes(cls, config: Any) -> list[int]:
        sizes = parse_mesh(config.mesh, config.world_size).values()
        return [config.world_size] + [n for n in sizes if n > 1]

    @classmethod
    def options_from(cls, config: Any) -> dict[str, Any]:
        options = {**super().options_from(config), "mesh": config.mesh}  # + sequence_parallel
        sizes = parse_mesh(config.mesh, config.world_size)
        if sizes["pp"] > 1 or sizes["cp"] > 1:  # the GPT mesh: its pipeline's options too
            options.pop("sequence_parallel")
            split = None if config.split is None else list(config.split)
            options.update(
                micro_batches=config.micro_batches, schedule=config.schedule, split=split
            )
        return options

    @classmethod
    def build(cls, model: Module, optimizer_factory: Any, loss_fn: Any, process_group: Any = None,
              **options: Any) -> Any:  # fmt: skip
        """A GPT with a pipeline or context axis runs as :class:`.gpt_mesh.GPTMesh` (every
        axis composed); everything else as this class (data x tensor)."""
        mesh = options.get("mesh", "dp=2,tp=2")
        sizes = mesh.sizes if isinstance(mesh, ProcessMesh) else None
        if sizes is None:
            sizes = parse_mesh(mesh, resolve(process_group).size())
        if sizes["pp"] > 1 or sizes["cp"] > 1:
            from sparkgrad.parallel.hybrid.gpt_mesh import GPTMesh

            return GPTMesh(model, optimizer_factory, loss_fn, process_group, **options)
        return cls(model, optimizer_factory, loss_fn, process_group, **options)

    @classmethod
    def memory_plan(cls, job: Any, rank: int = 0) -> Any:
        """The tensor-parallel pieces of rank ``rank``'s tp coordinate, ``batch / dp`` rows;
        a mesh with pp or cp axes is the GPT mesh's plan."""
        from sparkgrad.parallel.hybrid.gpt_mesh import GPTMesh
        from sparkgrad.parallel.memory_plan import rank_plan

        sizes = parse_mesh(job.options.get("mesh", "dp=2,tp=2"), job.world_size)
        if sizes["pp"] > 1 or sizes["cp"] > 1:
            return GPTMesh.memory_plan(job, rank)
        tp, sp = sizes["tp"], bool(job.options.get("sequence_parallel", False))
        return rank_plan(cls.name, job, rank, job.batch_size // sizes["dp"], tp=tp,
                         tp_rank=rank % tp, sequence_parallel=sp)  # fmt: skip

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
                f"(cp={mesh.size('cp')}) axes are the GPT mesh's (HybridParallel.build, "
                "gpt_mesh.GPTMesh); this class runs data x tensor meshes"
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


def check_gpt_mesh(config: Any, sizes: dict[str, int]) -> None:
    """The GPT mesh's rules beyond tensor parallelism's (expected vs found)."""
    pp, cp, dp = sizes["pp"], sizes["cp"], sizes["dp"]
    units = config.layers + 2
    if getattr(config, "sequence_parallel", False):
        raise ConfigError(
            f"--mesh {config.mesh}: --sequence-parallel runs on data x tensor meshes; with "
            "pipeline or context axes, leave it off"
        )
    if pp > units:
        raise ConfigError(
            f"--mesh {config.mesh}: pp={pp} stages need at least {pp} units (the embedding, "
            f"{config.layers} blocks, the head), found {units}: use pp <= {units} or more --layers"
        )
    if config.split is not None and (len(config.split) != pp or sum(config.split) != units):
        raise ConfigError(
            f"--split needs pp={pp} positive unit counts summing to {units}, found "
            f"{','.join(map(str, config.split))}"
        )
    if pp > 1 and config.tie_weights:
        raise ConfigError(
            f"--mesh {config.mesh} with --tie-weights: the head and the token embedding share "
            "one matrix, which would live on the first and the last stage; drop --tie-weights"
        )
    if config.context % (2 * cp):
        raise ConfigError(
            f"--mesh {config.mesh}: cp={cp} cuts each window into 2·cp = {2 * cp} balanced "
            f"chunks: expected a --context divisible by {2 * cp}, found {config.context}"
        )
    if cp > 1 and config.dropout:
        raise ConfigError(
            f"--mesh {config.mesh}: ring attention (cp > 1) has no dropout: expected --dropout "
            f"0, found {config.dropout}"
        )
    rows = config.batch_size // dp
    if rows % config.micro_batches:
        raise ConfigError(
            f"--micro-batches {config.micro_batches} must divide each data-parallel replica's "
            f"{rows} rows (--batch-size {config.batch_size} / dp={dp})"
        )
