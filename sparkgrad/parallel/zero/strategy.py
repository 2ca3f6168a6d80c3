"""``ZeRO``: data parallel that shards what every rank would otherwise hold a copy of.

Plain data parallel keeps, on each of ``N`` ranks, the full parameters, the full
gradients and the full optimizer state. ZeRO (Rajbhandari et al., 2019; DeepSpeed) keeps
the training *identical* -- every rank still trains on its rows of the global batch and
the step is the one a single process takes on the whole batch -- but splits the state:

- **stage 1** shards the optimizer state. Gradients are averaged in full (all_reduce),
  each rank runs the optimizer on its shard only, and an all_gather brings every rank the
  updated parameters.
- **stage 2** also shards the gradients: a reduce_scatter gives each rank only the
  averaged gradient of its shard (half the traffic of an all_reduce), the full gradient
  is dropped.
- **stage 3** also shards the parameters: a rank holds ``1/N`` of each layer and gathers
  a layer's weights just before its forward; a Linear frees them after and gathers them
  again for its backward (:mod:`~sparkgrad.parallel.zero.shard_unit`), any other layer keeps
  them until its backward (:mod:`~sparkgrad.parallel.zero.stage3`). Every model the
  engine trains works, tied weights included.

The optimizer works on one flat shard tensor per unit (``optimizer_factory([shard])``):
SGD and Adam are elementwise, so stepping a slice of the flattened parameters equals
stepping the parameters. Shards are padded flat buffers as in DeepSpeed
(:mod:`~sparkgrad.parallel.zero.flat_buffer`), and :meth:`ZeRO.memory_ledger` measures the
bytes each rank really holds (:mod:`~sparkgrad.parallel.memory_ledger`). In fp32 with Adam a
data-parallel rank holds params 4P + grads 4P + ``exp_avg`` and ``exp_avg_sq`` 8P = 16P
bytes, and ZeRO 1/2/3 hold 8P + 8P/N, 4P + 12P/N, 16P/N::

    s = ZeRO(model, lambda p: sg.optim.Adam(p, lr=1e-3), F.cross_entropy, stage=2)
    loss = s.train_step(x_rows, y_rows)
    print(s.memory_ledger().table())

**The paper's precision** (``precision="fp16"`` or ``"bf16"``; ``--precision`` on the command
line): parameters and gradients are 16-bit -- the flat buffer the model reads, the
gradient buffer, every all_gather and reduce_scatter -- and the optimizer steps an fp32
master copy of this rank's shard (:mod:`~sparkgrad.parallel.zero.master_weights`), so its
state is 12 bytes per parameter with Adam and the ledger shows the paper's table:
2Ψ + 2Ψ + 12Ψ/N (stage 1), 2Ψ + 2Ψ/N + 12Ψ/N (stage 2), 16Ψ/N (stage 3). Loss scaling is
the engine's GradScaler (:mod:`sparkgrad.engine.precision`), which then unscales and checks
the fp32 master shards' gradients and agrees with the other ranks on skipping.

Checkpoints hold the full, unsharded model (the fp32 masters, gathered, in a 16-bit run) and
optimizer state in the single-process layout, so they load under any strategy, world size
and precision (``load_full_state`` re-shards):
the plain model's state-dict keys (a tied weight under both its names, buffers such as
``positions.pe`` whole), parameters numbered in ``model.parameters()`` order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.amp.precision_names import sixteen_bit_dtype
from sparkgrad.autodiff.backend import array_module, device_of, to_numpy
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.distributed.state import resolve
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.memory_ledger import MemoryLedger, optimizer_arrays
from sparkgrad.parallel.strategy import (
    LossFn,
    OptimizerFactory,
    Strategy,
    local_predict,
    numpy_state,
)
from sparkgrad.parallel.timeline import timed
from sparkgrad.parallel.zero.shard_unit import ShardUnit
from sparkgrad.parallel.zero.stage3 import shard_model


class ZeRO(Strategy):
    """ZeRO stage 1, 2 or 3 over the data-parallel ranks of ``process_group``.

    Args:
        model: the full model, built from the same seed on every rank (rank 0's weights
            are broadcast). Stage 3 changes it in place: afterwards it holds only shards.
        optimizer_factory: ``params -> optimizer``; it gets the flat shard tensors.
        loss_fn: a mean loss ``loss_fn(logits, labels)``.
        process_group: the data-parallel group (default: the default group).
        stage: 1, 2 or 3 (anything else is a :class:`~sparkgrad.errors.ConfigError`).
        precision: ``"fp32"`` (everything fp32), or ``"fp16"``/``"bf16"``: the paper's
            mixed precision, 16-bit parameters and gradients and an fp32 master copy of
            this rank's shard for the optimizer
            (:mod:`~sparkgrad.parallel.zero.master_weights`).
    """

    name = "zero"
    splits_batch = True

    def __init__(
        self,
        model: Module,
        optimizer_factory: OptimizerFactory,
        loss_fn: LossFn,
        process_group: Any = None,
        stage: int = 1,
        precision: str = "fp32",
    ) -> None:
        if stage not in (1, 2, 3):
            raise ConfigError(
                f"ZeRO: expected stage 1 (optimizer state), 2 (+ gradients) or 3 "
                f"(+ parameters), found stage={stage!r}"
            )
        low = sixteen_bit_dtype(precision, "ZeRO: precision")  # None for fp32
        if precision == "bf16" and any(device_of(p.array) == "cuda" for p in model.parameters()):
            raise ConfigError(
                "ZeRO: precision bf16 on cuda: CuPy has no bfloat16 arrays; use fp16 on cuda"
            )
        group = resolve(process_group)
        super().__init__(group.rank(), group.size(), group)
        self.name, self.stage, self.loss_fn = f"zero{stage}", stage, loss_fn
        self.precision = precision
        self.predict_is_collective = stage == 3  # stage 3 gathers weights to predict
        self.pg = group.pg
        self.param_names = [n for n, _ in model.named_parameters()]
        self._index = {n: i for i, n in enumerate(self.param_names)}  # optimizer numbering
        named = {id(p): n for n, p in model.named_parameters()}
        state = model.state_dict(keep_vars=True)
        self.state_keys = list(state)
        # state key -> parameter name (a tied weight has two keys, one name); other keys
        # are buffers, never sharded
        self._param_of = {k: named[id(v)] for k, v in state.items() if id(v) in named}
        self._buffer_keys = [k for k in state if k not in self._param_of]
        if stage == 3:
            self.model, self.units = shard_model(model, self.pg, low)
            self._params: list[Tensor] = []
            self._grad_buffer = None
        else:
            self.model, self._params = model, list(model.parameters())
            arrays = [p.array for p in self._params]
            unit = ShardUnit(self.param_names, arrays, self.pg, True, low)
            for p, view in zip(self._params, unit.layout.views(unit.full)):
                p.array = view  # the model now reads and writes the flat buffer
            self.units = [unit]
            size = unit.layout.padded_numel if stage == 1 else unit.layout.shard_numel
            self._grad_buffer = array_module(unit.full).zeros(size, dtype=unit.layout.dtype)
        self.masters = [u.master for u in self.units if u.master is not None]  # 16-bit runs
        self.optimizer = optimizer_factory([u.optimized for u in self.units])

    @classmethod
    def options_from(cls, config: Any) -> dict[str, Any]:
        """``--precision fp16|bf16``: the paper's precision (16-bit params and grads)."""
        return {**super().options_from(config), "precision": config.precision}

    # ---- one step ---------------------------------------------------------------------------
    def train_step(self, x: Tensor, y: Tensor) -> float:
        self.model.train()
        self.optimizer.zero_grad()
        for p in [*self._params, *(u.shard for u in self.units)]:
            p.grad = None
        loss = timed(self.timeline, "forward", lambda: self.loss_fn(self.model(x), y))
        timed(self.timeline, "backward", loss.backward)  # stage 3 reduce_scatters in here
        if self.stage < 3:
            self._reduce_gradients()
        with self.timeline.span("optimizer"):
            for m in self.masters:
                m.grad_to_master()  # fp32(16-bit grad shard)
            self.optimizer.step()  # on the fp32 masters (the GradScaler may skip it)
            for m in self.masters:
                m.params_from_master()  # 16-bit shard = cast(master)
        if self.stage < 3:
            unit = self.units[0]
            unit.gather(out=unit.full)  # every rank gets every updated shard
        return self._global_mean(float(loss.item()))

    def _reduce_gradients(self) -> None:
        """Stage 1: all_reduce the full flat gradient; stage 2: reduce_scatter it."""
        unit = self.units[0]
        grads = [None if p.grad is None else p.grad.array for p in self._params]
        if self.stage == 1:
            flat = unit.all_reduce(unit.layout.flatten(grads, out=self._grad_buffer))
            shard_grad = unit.layout.shard(flat, self.rank)
        else:
            flat = unit.layout.flatten(grads)  # temporary: only the shard survives
            shard_grad = unit.reduce_scatter(flat, out=self._grad_buffer)
            del flat
        unit.shard.grad = Tensor._wrap(shard_grad)
        for p in self._params:
            p.grad = None  # autograd's per-parameter gradients are no longer needed

    def _global_mean(self, value: float) -> float:
        buf = np.array([value], dtype=np.float64)
        self.pg.all_reduce(buf)
        return float(buf[0] / self.world_size)

    def predict(self, x: Tensor) -> Tensor:
        return local_predict(self.model, x)

    # ---- checkpoints: full state in, full state out --------------------------------------------
    def full_state_dict(self) -> dict[str, np.ndarray]:
        if self.stage < 3 and not self.masters:
            return numpy_state(self.model)  # the full flat buffer is here already
        params = {}  # gathered shards (the fp32 masters in a 16-bit run)
        for unit in self.units:
            params.update(zip(unit.names, unit.full_arrays()))
        buffers = numpy_state(self.model)  # whole buffers (and parameters emptied or gone)
        return {
            k: np.array(params[self._param_of[k]]) if k in self._param_of else buffers[k]
            for k in self.state_keys
        }

    def full_optimizer_state_dict(self) -> dict[str, Any]:
        sd = self.optimizer.state_dict()
        state: dict[int, dict[str, np.ndarray]] = {}
        for u, unit in enumerate(self.units):
            count = len(unit.names)
            per_param: list[dict[str, np.ndarray]] = [{} for _ in range(count)]
            for key, value in sd["state"].get(u, {}).items():
                array = value.array if isinstance(value, Tensor) else value
                if tuple(array.shape) == tuple(unit.shard.shape):  # sharded: gather it
                    pieces = unit.full_arrays(array)
                else:  # a scalar such as Adam's step, the same on every rank
                    pieces = [np.array(to_numpy(array)) for _ in range(count)]
                for d, piece in zip(per_param, pieces):
                    d[key] = piece
            state.update({self._index[n]: d for n, d in zip(unit.names, per_param) if d})
        (group,) = sd["param_groups"]
        hyper = {k: v for k, v in group.items() if k != "params"}
        params = list(range(len(self.param_names)))
        return {"state": dict(sorted(state.items())), "param_groups": [{**hyper, "params": params}]}

    def load_full_state(self, model_state: dict, optimizer_state: dict | None = None) -> None:
        missing = [k for k in self.param_names if k not in model_state]
        if missing:
            raise ConfigError(f"ZeRO.load_full_state: the model state lacks keys {missing}")
        for unit in self.units:
            unit.load([_host(model_state[k]) for k in unit.names])
        self._load_buffers(model_state)
        if optimizer_state is None:
            return
        groups = optimizer_state.get("param_groups", [])
        if len(groups) != 1:
            raise ConfigError(
                f"ZeRO.load_full_state: expected an optimizer state with one param group, "
                f"found {len(groups)}"
            )
        saved = {int(k): v for k, v in optimizer_state["state"].items()}
        shard_state = {}
        for u, unit in enumerate(self.units):
            entries = [saved.get(self._index[n]) for n in unit.names]
            if all(e is None for e in entries):
                continue
            if any(e is None for e in entries):
                raise ConfigError(
                    f"ZeRO.load_full_state: optimizer state for some but not all of "
                    f"{unit.names}; expected all or none"
                )
            shard_state[u] = {key: self._shard_entry(unit, key, entries) for key in entries[0]}
        hyper = {k: v for k, v in groups[0].items() if k != "params"}
        params = list(range(len(self.units)))
        self.optimizer.load_state_dict(
            {"state": shard_state, "param_groups": [{**hyper, "params": params}]}
        )

    def _load_buffers(self, model_state: dict) -> None:
        """Copy the buffers (never sharded: every rank holds them whole) that the state has."""
        buffers = self.model.state_dict()  # detached tensors sharing memory with the model
        for k in self._buffer_keys:
            if k not in model_state:
                continue
            value, target = _host(model_state[k]), buffers[k].array
            if value.shape != target.shape:
                raise ConfigError(
                    f"ZeRO.load_full_state: buffer '{k}' has shape {value.shape} in the "
                    f"state, expected {target.shape}"
                )
            target[...] = array_module(target).asarray(value)

    def _shard_entry(self, unit: ShardUnit, key: str, entries: list[dict]) -> np.ndarray:
        values = [_host(e[key]) for e in entries]
        if [v.shape for v in values] == unit.layout.shapes:
            return unit.shard_of(values, unit.optimized.dtype)  # shaped like each parameter
        if all(v.ndim == 0 for v in values):
            return values[0]  # a scalar such as step
        raise ConfigError(
            f"ZeRO.load_full_state: optimizer buffer '{key}' has shapes "
            f"{[v.shape for v in values]}, expected scalars or {unit.layout.shapes}"
        )

    # ---- reports ------------------------------------------------------------------------------
    def memory_ledger(self) -> MemoryLedger:
        """The bytes this rank holds now (measured, see :class:`MemoryLedger`)."""
        if self.stage < 3:
            params = [self.units[0].full]
            grads = [self._grad_buffer] + [p.grad for p in self._params]
        else:
            params = [u.shard.array for u in self.units]
            grads = [u.shard.grad for u in self.units]
        kind = type(self.optimizer).__name__.lower()
        if kind == "sgd" and not self.optimizer.param_groups[0].get("momentum"):
            kind = "none"
        return MemoryLedger(
            params,
            grads,
            optimizer_arrays(self.optimizer) + [m.tensor for m in self.masters],
            stage=self.stage,
            world_size=self.world_size,
            numel=sum(u.layout.numel for u in self.units),
            optimizer=kind if kind in ("adam", "adamw", "sgd") else "none",
            precision=self.precision,
        )

    def report(self) -> dict[str, Any]:
        return {**super().report(), "stage": self.stage, "memory": self.memory_ledger().as_dict()}


def _host(value: Any) -> np.ndarray:
    """A saved value (Tensor, NumPy or CuPy array, number) as a NumPy array."""
    return np.asarray(to_numpy(value.array if isinstance(value, Tensor) else value))
