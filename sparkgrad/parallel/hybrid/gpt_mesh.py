"""``GPTMesh``: the GPT on the whole ``dp x pp x cp x tp`` mesh, the axes composed as Megatron
composes them (``--strategy hybrid --mesh dp=2,pp=2,tp=2 --model gpt``).

Every rank builds the full GPT from the seed and keeps its share, axis by axis, each axis
one piece that already works alone, handed the group of that axis (:mod:`.mesh`)::

    tp  shard_gpt(model, tp_group)             heads, MLP columns/rows, vocabulary slices
    cp  context_parallel_gpt(model, cp_group)  ring attention, this rank's positions
    pp  PipelineParallel(model, ..., pp_group) a run of units (embedding, blocks, head)
    dp  (this file) the batch's rows; gradients averaged with the replicas after backward

A training step on rank (d, p, c, t)::

    rows of replica d  ->  chunks c of every window  ->  stage p's micro-batches, each
    forward/backward split over the tp group and attending round the cp ring
    ->  all_reduce(grads)/dp over dp, then /cp over cp  ->  the same step on every replica

The replicas along dp and cp hold the same weights and see different tokens, so averaging
their gradients gives the gradient of the whole batch's mean loss -- when every replica
scores the same number of tokens. That holds for the GPT's text task (every target is
scored); a batch with ignored targets (``ignore_index``) would make the mean of means
differ from the mean, so the mesh refuses one (``--strategy context`` alone weights by
token counts; the pipeline's micro-batches have the same limit).

Checkpoints are the plain model's: each stage glues its tensor-parallel slices
(:mod:`~sparkgrad.parallel.tensor.splits`), then the stages are gathered over pp.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import sparkgrad as sg
from sparkgrad.autodiff.backend import array_module, to_numpy
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.distributed.state import resolve
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.context.chunks import gather_sequence, split_sequence
from sparkgrad.parallel.context.gpt import context_parallel_gpt
from sparkgrad.parallel.hybrid.mesh import ProcessMesh
from sparkgrad.parallel.pipeline.partition import gather_arrays
from sparkgrad.parallel.pipeline.pipeline_parallel import PipelineParallel
from sparkgrad.parallel.strategy import LossFn, OptimizerFactory, Strategy, numpy_optimizer_state
from sparkgrad.parallel.tensor.splits import Split, cut_full, gather_full, split_specs
from sparkgrad.parallel.tensor.transformer import shard_gpt
from sparkgrad.parallel.tensor.vocab import vocab_parallel_loss, vocab_sizes


class GPTMesh(Strategy):
    """One rank of a GPT trained on a ``dp x pp x cp x tp`` mesh (see the module docstring)."""

    name = "hybrid"

    def __init__(
        self,
        model: Module,
        optimizer_factory: OptimizerFactory,
        loss_fn: LossFn,
        process_group: Any = None,
        mesh: str | ProcessMesh = "dp=2,pp=2,tp=2",
        micro_batches: int = 1,
        schedule: str = "1f1b",
        split: list[int] | None = None,
    ) -> None:
        parent = resolve(process_group)
        self.mesh = ProcessMesh(mesh, process_group) if isinstance(mesh, str) else mesh
        self.groups = {a: self.mesh.group(a) for a in ("dp", "pp", "cp", "tp")}
        self.ignore_index = getattr(loss_fn, "ignore_index", -100)
        tp, cp = self.groups["tp"], self.groups["cp"]
        if tp.size() > 1:
            model = shard_gpt(model, tp)
            loss_fn = vocab_parallel_loss(loss_fn, tp)
        if cp.size() > 1:
            model = context_parallel_gpt(model, cp)
        self.vocab_size = model.vocab_size
        self.splits = split_specs(model)  # state_dict key -> its tensor-parallel Split
        self.pipe = PipelineParallel(
            model, optimizer_factory, loss_fn, self.groups["pp"], micro_batches, schedule, split
        )
        self.pipe.after_backward = self._average_replicas
        super().__init__(parent.rank(), parent.size())
        self.timeline = self.pipe.timeline  # the stage's spans; bytes of every axis below
        self.timeline.rank = self.rank
        for axis in ("dp", "cp", "tp"):
            self.timeline.watch(self.groups[axis])

    @classmethod
    def memory_plan(cls, job: Any, rank: int = 0) -> Any:
        """Composed, axis by axis: stage ``p``'s units (pp), their tp pieces (tp), ``1/cp`` of
        every sequence (cp), ``batch / dp / m`` rows per micro-batch (dp) and the schedule's
        micro-batches in flight."""
        from sparkgrad.parallel.hybrid.mesh import AXES, parse_mesh
        from sparkgrad.parallel.memory_plan import in_flight, rank_plan, stage_units

        sizes = parse_mesh(job.options.get("mesh", "dp=2,pp=2,tp=2"), job.world_size)
        dp, pp, cp, tp = (sizes[a] for a in AXES)
        _, p, _, t = (int(i) for i in np.unravel_index(rank, (dp, pp, cp, tp)))  # grid[d,p,c,t]
        m, schedule = job.options.get("micro_batches", 1), job.options.get("schedule", "1f1b")
        first, last = stage_units(job.model, pp, job.options.get("split"))[p]
        k = in_flight(schedule, p, pp, m)
        note = f"stage {p}: units {first}..{last - 1}; {k} of {m} micro-batches alive"
        return rank_plan(
            cls.name, job, rank, job.batch_size // dp // m, (first, last), tp=tp, tp_rank=t,
            cp=cp, in_flight=k, notes=[note], scaled_loss=True, micro_batches=m,
        )  # fmt: skip

    def memory_holders(self) -> tuple[Any, Any]:
        return self.pipe.module, self.pipe.optimizer

    @property
    def data_parallel_size(self) -> int:
        return self.mesh.size("dp")

    @property
    def data_parallel_rank(self) -> int:
        return self.mesh.coords["dp"]

    # -- training ----------------------------------------------------------------------------
    def _chunks(self, a: Any) -> Tensor:
        """This rank's balanced chunks of every window (all of it when cp = 1)."""
        cp = self.groups["cp"]
        if cp.size() == 1:
            return a if isinstance(a, Tensor) else sg.tensor(a)
        return sg.tensor(split_sequence(a.array, cp.rank(), cp.size(), True, dim=1))

    def train_step(self, x: Tensor, y: Tensor) -> float:
        splits_tokens = self.groups["cp"].size() > 1 or self.pipe.micro_batches > 1
        if splits_tokens and bool((y.array == self.ignore_index).any()):
            raise ConfigError(
                f"the GPT mesh averages equal shares of tokens: expected no target equal to "
                f"ignore_index {self.ignore_index} with cp > 1 or micro-batches > 1"
            )
        loss = self.pipe.train_step(self._chunks(x), self._chunks(y))
        return self._mean([loss], ("cp", "dp"))[0]

    def _mean(self, values: list[float], axes: tuple[str, ...]) -> list[float]:
        buf = np.array(values, dtype=np.float64)
        for axis in axes:
            group = self.groups[axis]
            if group.size() > 1:
                group.pg.all_reduce(buf)
                buf /= group.size()
        return [float(v) for v in buf]

    def _average_replicas(self) -> None:
        """The stage's gradients averaged over dp, then over cp: one flat buffer each."""
        params = [p for p in self.pipe.module.parameters() if p.grad is not None]
        sizes = [self.groups[a].size() for a in ("dp", "cp")]
        if not params or sizes == [1, 1]:
            return
        xp = array_module(params[0].array)
        flat = xp.concatenate([p.grad.array.reshape(-1) for p in params])
        with self.timeline.span("comm", "replica grads"):
            for axis, n in zip(("dp", "cp"), sizes):
                if n > 1:
                    self.groups[axis].pg.all_reduce(flat)
                    flat /= n
        offset = 0
        for p in params:  # views of the averaged buffer
            p.grad.array = flat[offset : offset + p.array.size].reshape(p.array.shape)
            offset += p.array.size

    def predict(self, x: Tensor) -> Tensor:
        """Full logits on every rank: through the stages, vocabulary slices glued on the last
        stage, broadcast over pp, the sequence chunks put back over cp."""
        pipe, plan, tp = self.pipe, self.pipe.plan, self.groups["tp"]
        local_x = self._chunks(x)
        pipe.module.eval()
        with sg.no_grad():
            if pipe.is_first:
                inp = plan.first_input(local_x.array)
            else:
                inp = Tensor(np.empty(plan.input_shape(local_x, len(x)), pipe.dtype))
                pipe.pg.recv(inp.array, pipe.stage - 1)
            out = pipe.module(inp)
            if not pipe.is_last:
                pipe.pg.send(pipe.wire(out.array), pipe.stage + 1)
        pipe.module.train()
        shape = plan.logits_shape(local_x, len(x))
        if pipe.is_last:
            logits = np.array(to_numpy(pipe.wire(out.array)))  # 16-bit under autocast
            if tp.size() > 1:
                sizes = vocab_sizes(self.vocab_size, tp.size())
                logits = gather_full(logits, Split(-1, sizes=sizes), tp)
        else:
            logits = np.empty(shape, pipe.dtype)
        pipe.pg.broadcast(logits, root=pipe.stages - 1)
        cp = self.groups["cp"]
        if cp.size() > 1:
            logits = gather_sequence(list(cp.pg.all_gather(logits)), balanced=True, dim=1)
        return sg.tensor(logits)

    # -- checkpoints: tp slices glued per stage, then the stages gathered over pp ------------
    def full_state_dict(self) -> dict[str, np.ndarray]:
        glued: dict[int, np.ndarray] = {}  # a tied parameter is gathered once
        mine = {}
        for key, value in self.pipe.module.state_dict(keep_vars=True).items():
            if id(value) not in glued:
                glued[id(value)] = gather_full(value.array, self.splits.get(key), self.groups["tp"])
            mine[key] = glued[id(value)]
        return gather_arrays(self.pipe.pg, mine)

    def full_optimizer_state_dict(self) -> dict[str, Any]:
        local = numpy_optimizer_state(self.pipe.optimizer)
        named = list(self.pipe.module.named_parameters())
        mine = {}
        for i, buffers in local["state"].items():
            name, param = named[i]
            for key, value in buffers.items():
                if value.shape == param.shape:
                    value = gather_full(value, self.splits[name], self.groups["tp"])
                mine[f"{self.pipe.param_index[i]}/{key}"] = value
        state: dict[int, dict[str, np.ndarray]] = {}
        for key, value in gather_arrays(self.pipe.pg, mine).items():
            index, name = key.split("/", 1)
            state.setdefault(int(index), {})[name] = value
        group = {k: v for k, v in local["param_groups"][0].items() if k != "params"}
        group["params"] = list(range(self.pipe.total_params))
        return {"state": dict(sorted(state.items())), "param_groups": [group]}

    def load_full_state(self, model_state: dict, optimizer_state: dict | None = None) -> None:
        tp = self.groups["tp"]
        own = self.pipe.module.state_dict(keep_vars=True)
        self.pipe.module.load_state_dict(
            {k: cut_full(_array(model_state[k]), self.splits.get(k), tp, k, v.shape)
             for k, v in own.items()}
        )  # fmt: skip
        if optimizer_state is None:
            return
        saved = {int(k): v for k, v in optimizer_state["state"].items()}
        named = list(self.pipe.module.named_parameters())
        local = {}
        for i, g in enumerate(self.pipe.param_index):
            if g in saved:
                name, param = named[i]
                local[i] = {
                    k: cut_full(
                        _array(v), self.splits[name], tp, f"optimizer {name}.{k}", param.shape
                    )
                    if np.ndim(_array(v)) == param.ndim
                    else v
                    for k, v in saved[g].items()
                }
        group = {k: v for k, v in optimizer_state["param_groups"][0].items() if k != "params"}
        group["params"] = list(range(len(self.pipe.param_index)))
        self.pipe.optimizer.load_state_dict({"state": local, "param_groups": [group]})

    def report(self) -> dict[str, Any]:
        return {**self.pipe.report(), "rank": self.rank, "strategy": self.name,
                "mesh": dict(self.mesh.sizes), "coords": dict(self.mesh.coords)}  # fmt: skip


def _array(value: Any) -> np.ndarray:
    return np.asarray(to_numpy(value.array if isinstance(value, Tensor) else value))
