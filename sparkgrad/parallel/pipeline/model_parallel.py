"""``ModelParallel``: the network's layers split across ranks -- the naive form.

A model too big for one device can be cut into consecutive pieces, one per rank
(:func:`~sparkgrad.parallel.pipeline.partition.partition`). A training step then walks down the
ranks and back up::

    rank 0: F ---send act--> .........................idle.......... <--recv grad-- B
    rank 1:       idle       F --send act--> ......idle...... <--grad-- B
    rank 2:                  idle            F  loss  B  ---send grad-->

- **forward**: rank ``s`` receives the activation of rank ``s-1`` (rank 0 reads the
  batch), runs its layers and sends the result to rank ``s+1``. The last rank computes
  the loss. Shapes are known from the layer widths, so only the numbers travel.
- **backward**: the receiving rank made the activation a *leaf* that requires grad, so
  after its backward the activation's ``.grad`` is exactly what the previous rank needs
  to continue its own backward; it is sent back.
- **update**: each rank steps an optimizer over its own layers only.

Only one rank computes at any moment: with ``p`` ranks each idles ``(p-1)/p`` of the
step. The timeline records every blocked ``recv`` as ``idle``, so :meth:`report` shows
that bubble; :class:`~sparkgrad.parallel.pipeline.pipeline_parallel.PipelineParallel` shrinks it
with micro-batches.

Every rank sees the whole global batch (``data_parallel_size == 1``): rank 0 uses the
features, the last rank the labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import sparkgrad as sg
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.saved_memory import observe_graph
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import CheckpointError, ConfigError
from sparkgrad.parallel.pipeline.partition import gather_arrays
from sparkgrad.parallel.pipeline.stages import make_stage
from sparkgrad.parallel.strategy import (
    LossFn,
    OptimizerFactory,
    Strategy,
    numpy_optimizer_state,
    numpy_state,
)


class ModelParallel(Strategy):
    """Rank ``s`` of a ``p``-stage model-parallel run: it holds and trains stage ``s``.

    Args:
        model: the full ``Sequential`` (built from the same seed on every rank).
        optimizer_factory: ``params -> optimizer``, applied to this stage's parameters.
        loss_fn: mean loss ``(logits, labels) -> Tensor`` (computed on the last stage).
        process_group: the ranks of the pipeline, in stage order (default: the world).
        split: Linear layers per stage (e.g. ``[2, 1]``); default: balanced by parameters.
    """

    name = "model"

    cuts_layers = True
    models = ("mlp", "gpt")  # the models whose layers it knows how to cut (see .stages)

    @classmethod
    def check_config(cls, config: Any) -> None:
        if config.model == "gpt":  # units: the embedding, each block, the head
            units, what = config.layers + 2, "units (the embedding, each block, the head)"
            more = "more --layers"
        else:
            units, what, more = len(config.hidden) + 1, "Linear layers", "more --hidden layers"
        if config.world_size > units:
            raise ConfigError(
                f"--strategy {cls.name} puts at least one of the model's {what} on each of "
                f"the {config.world_size} ranks, but --model {config.model} has only {units}: "
                f"use --world-size <= {units} or {more}"
            )
        if config.split is not None and (
            len(config.split) != config.world_size or sum(config.split) != units
        ):
            raise ConfigError(
                f"--split needs {config.world_size} positive counts of {what} summing "
                f"to {units}, found {','.join(map(str, config.split))}"
            )
        if config.model == "gpt" and config.world_size > 1 and config.tie_weights:
            raise ConfigError(
                f"--strategy {cls.name} with --tie-weights: the head and the token embedding "
                "share one matrix, which would live on the first and the last stage; drop "
                "--tie-weights or use another strategy"
            )

    @classmethod
    def options_from(cls, config: Any) -> dict[str, Any]:
        return {} if config.split is None else {"split": list(config.split)}

    def __init__(
        self,
        model: Module,
        optimizer_factory: OptimizerFactory,
        loss_fn: LossFn,
        process_group: Any = None,
        split: list[int] | None = None,
    ) -> None:
        from sparkgrad.distributed.state import resolve

        group = resolve(process_group)
        super().__init__(group.rank(), group.size(), group)
        self.pg, self.loss_fn = group.pg, loss_fn
        self.stage, self.stages = group.rank(), group.size()
        self.plan = make_stage(model, self.stage, self.stages, split)  # an MLP's or a GPT's
        self.module, self.param_index = self.plan.module, self.plan.param_index
        self.total_params = len(list(model.parameters()))
        self.dtype = self.plan.dtype
        self.is_first, self.is_last = self.stage == 0, self.stage == self.stages - 1
        self.optimizer = optimizer_factory(self.module.parameters())
        if len(self.optimizer.param_groups) != 1:
            raise ConfigError(
                f"{type(self).__name__} expects an optimizer with one parameter group, "
                f"found {len(self.optimizer.param_groups)}"
            )

    # -- moving activations and their gradients ----------------------------------------------
    def _recv(self, shape: tuple[int, ...], peer: int, label: str) -> np.ndarray:
        buf = np.empty(shape, self.dtype)
        with self.timeline.span("idle", label):  # blocked until the neighbour sends
            self.pg.recv(buf, peer)
        return buf

    def _send(self, array: Any, peer: int, label: str) -> None:
        self.pg.send(self.wire(array), peer)  # the timeline records it as a comm span

    def wire(self, array: Any) -> Any:
        """``array`` in the stages' wire dtype (the parameters' float32): under autocast a
        stage may end in a 16-bit activation (an MLP stage's ReLU of a lowered Linear), and
        the neighbour's buffer is allocated before it knows; the cast is exact (every
        float16/bfloat16 value is a float32 value), and the gradient coming back is cast to
        the activation's dtype again (:meth:`_backward`)."""
        return array if array.dtype == self.dtype else array.astype(self.dtype)

    def _forward(self, x: Tensor, y: Tensor, mb: int, rows: slice, scale: int) -> tuple:
        """Forward of one (micro-)batch on this stage; returns ``(input leaf, output)``.

        On the last stage the output is the loss divided by ``scale`` (the number of
        micro-batches), so the summed gradients are those of the whole batch's mean.
        """
        n = len(range(*rows.indices(len(x))))
        if self.is_first:
            inp = self.plan.first_input(x.array[rows])
        else:
            buf = self._recv(self.plan.input_shape(x, n), self.stage - 1, f"act mb{mb}")
            inp = Tensor(buf, requires_grad=True)  # a leaf: its .grad goes back
        with self.timeline.span("forward", f"F{mb}"):
            out = self.module(inp)
            if self.is_last:
                out = self.loss_fn(out, Tensor(y.array[rows])) / scale
        observe_graph(out)  # a tracker, if on, sees every micro-batch still alive (GPipe: all)
        if not self.is_last:
            self._send(out.array, self.stage + 1, f"act mb{mb}")
        return inp, out

    def _backward(self, inp: Tensor, out: Tensor, mb: int) -> None:
        """Backward of one (micro-)batch: receive d(loss)/d(out), send d(loss)/d(inp)."""
        grad = None
        if not self.is_last:
            shape = tuple(out.array.shape)  # d(loss)/d(out) has the shape of out
            buf = self._recv(shape, self.stage + 1, "grad")
            grad = Tensor(buf if buf.dtype == out.dtype else buf.astype(out.dtype))
        with self.timeline.span("backward", f"B{mb}"):
            out.backward(grad)
        if not self.is_first:
            self._send(inp.grad.array, self.stage - 1, f"grad mb{mb}")

    def _share_loss(self, loss: float) -> float:
        """The last stage's loss, on every rank."""
        buf = np.array([loss], dtype=np.float64)
        self.pg.broadcast(buf, root=self.stages - 1)
        return float(buf[0])

    # -- the Strategy interface ---------------------------------------------------------------
    def train_step(self, x: Tensor, y: Tensor) -> float:
        self.module.train()
        self.optimizer.zero_grad()
        inp, out = self._forward(x, y, 0, slice(None), 1)
        self._backward(inp, out, 0)
        self.after_backward()
        with self.timeline.span("optimizer"):
            self.optimizer.step()
        return self._share_loss(float(out.item()) if self.is_last else 0.0)

    def after_backward(self) -> None:
        """Hook between backward and the step (a mesh averages over its replicas here)."""

    def predict(self, x: Tensor) -> Tensor:
        self.module.eval()
        with sg.no_grad():
            if self.is_first:
                inp = self.plan.first_input(x.array)
            else:
                inp = Tensor(np.empty(self.plan.input_shape(x, len(x)), self.dtype))
                self.pg.recv(inp.array, self.stage - 1)
            out = self.module(inp)
            if not self.is_last:
                self.pg.send(self.wire(out.array), self.stage + 1)
        self.module.train()
        logits = (
            np.array(self.wire(out.array))
            if self.is_last
            else np.empty(self.plan.logits_shape(x, len(x)), self.dtype)
        )
        self.pg.broadcast(logits, root=self.stages - 1)
        return Tensor(logits)

    def full_state_dict(self) -> dict[str, np.ndarray]:
        return gather_arrays(self.pg, numpy_state(self.module))

    def full_optimizer_state_dict(self) -> dict[str, Any]:
        local = numpy_optimizer_state(self.optimizer)
        mine = {
            f"{self.param_index[i]}/{name}": value
            for i, buffers in local["state"].items()
            for name, value in buffers.items()
        }
        state: dict[int, dict[str, np.ndarray]] = {}
        for key, value in gather_arrays(self.pg, mine).items():
            index, name = key.split("/", 1)
            state.setdefault(int(index), {})[name] = value
        group = {k: v for k, v in local["param_groups"][0].items() if k != "params"}
        group["params"] = list(range(self.total_params))
        return {"state": dict(sorted(state.items())), "param_groups": [group]}

    def load_full_state(self, model_state: dict, optimizer_state: dict | None = None) -> None:
        keys = list(self.module.state_dict())
        missing = [k for k in keys if k not in model_state]
        if missing:
            raise CheckpointError(
                f"stage {self.stage} expected keys {keys} in the model state, missing {missing}"
            )
        self.module.load_state_dict({k: model_state[k] for k in keys})
        if optimizer_state is None:
            return
        saved = {int(k): v for k, v in optimizer_state["state"].items()}
        groups = optimizer_state["param_groups"]
        if len(groups) != 1:
            raise CheckpointError(f"expected one optimizer parameter group, found {len(groups)}")
        group = {k: v for k, v in groups[0].items() if k != "params"}
        group["params"] = list(range(len(self.param_index)))
        local = {i: saved[g] for i, g in enumerate(self.param_index) if g in saved}
        self.optimizer.load_state_dict({"state": local, "param_groups": [group]})

    # -- memory --------------------------------------------------------------------------------
    @classmethod
    def memory_plan(cls, job: Any, rank: int = 0) -> Any:
        """Stage ``rank`` holds its units' parameters and one batch's activations."""
        return cls.stage_memory_plan(job, rank, micro_batches=1, schedule="gpipe")

    @classmethod
    def stage_memory_plan(cls, job: Any, rank: int, micro_batches: int, schedule: str) -> Any:
        """Stage ``rank`` of ``world_size``: the units of its balanced (or ``split``) share, and
        their activations for ``batch / micro_batches`` rows times the micro-batches in flight."""
        from sparkgrad.parallel.memory_plan import in_flight, rank_plan, stage_units

        stages = job.world_size
        first, last = stage_units(job.model, stages, job.options.get("split"))[rank]
        k = in_flight(schedule, rank, stages, micro_batches)
        m = micro_batches
        note = f"stage {rank}: units {first}..{last - 1}; {k} of {m} micro-batches alive"
        return rank_plan(
            cls.name, job, rank, job.batch_size // m, (first, last), in_flight=k,
            notes=[note], micro_batches=m, scaled_loss=True,
        )  # fmt: skip

    def memory_holders(self) -> tuple[Any, Any]:
        return self.module, self.optimizer

    def bubble_measured(self) -> float:
        """Share of this rank's forward + backward + idle time spent idle (blocked in recv)."""
        t = self.timeline.totals()
        busy = t["forward"] + t["backward"] + t["idle"]
        return t["idle"] / busy if busy > 0 else 0.0

    def report(self) -> dict[str, Any]:
        return {
            **super().report(),
            "stage": self.stage,
            "layers": self.plan.units,
            "bubble_measured": self.bubble_measured(),
            "bubble_theoretical": (self.stages - 1) / self.stages,
        }
