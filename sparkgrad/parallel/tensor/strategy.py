"""``TensorParallel``: every Linear of the MLP split over the ranks (Megatron style).

The model's Linear layers are taken in pairs: the first of each pair becomes a
:class:`~sparkgrad.parallel.tensor.layers.ColumnParallelDense` (rank ``r`` computes
output features ``r``), the second a
:class:`~sparkgrad.parallel.tensor.layers.RowParallelDense` (it takes exactly those
features and adds the partial sums with one ``all_reduce``). The ReLU between them works
on the slices as they are. For the MLP ``Linear-ReLU-Linear-ReLU-Linear-ReLU-Linear``::

    rank r:   x ─f─ [W0 rows r] ─ReLU─ [W2 cols r] ─g─ ─f─ [W4 rows r] ─ReLU─ [W6 cols r] ─g─ logits

Each pair costs one all_reduce forward (``g``) and one backward (``f``). Every rank sees
the whole batch (``data_parallel_size`` 1) and computes the same loss.

**An odd number of Linear layers**: the last one (the classifier head) is *replicated*:
every rank holds it whole and applies it to the all-reduced activations. We chose this
over a gathered column-parallel head because the head is small (``hidden x classes``),
its width (10 classes) is often not divisible by the tensor-parallel size, and it needs
no communication at all. Its gradient is still right without any all_reduce: its input
(the output of ``g``) and the gradient reaching it (from the same loss on the same
logits) are bit-identical on every rank, so every rank computes the same full gradient
and takes the same step -- the replicas never drift apart. (Only the *last* Linear may be
unpaired; ``g``'s identity backward relies on everything after it being replicated.)

Checkpoints are the plain model's: :meth:`TensorParallel.full_state_dict` gathers the
slices (``all_gather``) and glues them back on the split dimension, and
:meth:`TensorParallel.load_full_state` cuts a full state again, so a checkpoint moves
freely between strategies and world sizes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import sparkgrad as sg
from sparkgrad.autodiff.backend import to_numpy
from sparkgrad.autodiff.nn.activation import GELU, ReLU, Sigmoid, Tanh
from sparkgrad.autodiff.nn.containers import Sequential
from sparkgrad.autodiff.nn.linear import DenseLayer
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.distributed.state import resolve
from sparkgrad.errors import CheckpointError, ConfigError
from sparkgrad.parallel.strategy import LossFn, OptimizerFactory, Strategy, numpy_optimizer_state
from sparkgrad.parallel.tensor.layers import ColumnParallelDense, RowParallelDense
from sparkgrad.parallel.timeline import timed

ELEMENTWISE = (ReLU, GELU, Tanh, Sigmoid)  # safe on a slice of the features


def shard_sequential(model: Module, group: Any) -> Sequential:
    """The tensor-parallel copy of ``model``: Linear pairs become column/row layers.

    Keys stay those of the plain model (``0.weight``, ``2.weight``...), so the local
    ``state_dict`` and ``parameters()`` order line up with the full model's.
    """
    if not isinstance(model, Sequential):
        raise ConfigError(f"TensorParallel expects an nn.Sequential, found {type(model).__name__}")
    modules = list(model)
    linear = [i for i, m in enumerate(modules) if isinstance(m, DenseLayer)]
    n = group.size()
    out = list(modules)
    for col, row in zip(linear[0::2], linear[1::2]):
        between = modules[col + 1 : row]
        if not all(isinstance(m, ELEMENTWISE) for m in between):
            names = [type(m).__name__ for m in between]
            raise ConfigError(
                f"TensorParallel: between Linear layers {col} and {row} expected only "
                f"elementwise activations {[c.__name__ for c in ELEMENTWISE]}, found {names}"
            )
        width = modules[col].out_features
        if width % n:
            raise ConfigError(
                f"TensorParallel over {n} ranks splits layer {col}'s {width} output features "
                f"(the input of layer {row}) evenly: {n} does not divide {width}; choose a "
                f"tensor-parallel size that divides every split hidden width"
            )
        out[col] = ColumnParallelDense.from_dense(modules[col], group)
        out[row] = RowParallelDense.from_dense(modules[row], group)
    return Sequential(*out)


def split_dims(model: Module) -> dict[str, int | None]:
    """Each parameter name -> the dimension it is split along (None: replicated)."""
    dims: dict[str, int | None] = {}
    for prefix, module in model.named_children():
        for name, _ in module.named_parameters():
            dims[f"{prefix}.{name}"] = getattr(module, "shard_dims", {}).get(name)
    return dims


class TensorParallel(Strategy):
    """Megatron tensor parallelism over ``process_group`` (see the module docstring)."""

    name = "tensor"

    cuts_layers = True
    models = ("mlp",)  # the models whose layers it knows how to cut

    @classmethod
    def tensor_ways(cls, config: Any) -> int:
        """Over how many ranks each layer is split."""
        return config.world_size

    @classmethod
    def check_config(cls, config: Any) -> None:
        ways = cls.tensor_ways(config)
        bad = [w for w in config.hidden if w % ways]
        if bad:
            raise ConfigError(
                f"tensor parallelism over {ways} ranks splits every hidden width "
                f"{ways} ways: {bad} in --hidden {','.join(map(str, config.hidden))} "
                f"do not divide"
            )

    def __init__(
        self,
        model: Module,
        optimizer_factory: OptimizerFactory,
        loss_fn: LossFn,
        process_group: Any = None,
    ) -> None:
        group = resolve(process_group)
        super().__init__(group.rank(), group.size(), group)
        self.tp_group, self.loss_fn = group, loss_fn
        self.model = shard_sequential(model, group)
        self._dims = split_dims(self.model)
        self._names = list(self._dims)  # parameters() order = optimizer indices
        self.optimizer = optimizer_factory(self.model.parameters())

    # -- training --------------------------------------------------------------------------
    def train_step(self, x: Tensor, y: Tensor) -> float:
        self.model.train()
        self.optimizer.zero_grad()
        loss = timed(self.timeline, "forward", lambda: self.loss_fn(self.model(x), y))
        timed(self.timeline, "backward", loss.backward)
        self.after_backward()
        with self.timeline.span("optimizer"):
            self.optimizer.step()
        return self.global_loss(float(loss.item()))

    def after_backward(self) -> None:
        """Hook between backward and the step (the hybrid mesh averages over dp here)."""

    def global_loss(self, loss: float) -> float:
        """The global-batch loss: every tensor-parallel rank already has it."""
        return loss

    def predict(self, x: Tensor) -> Tensor:
        self.model.eval()
        with sg.no_grad():
            out = self.model(x)  # collective: the g ops all_reduce inside
        self.model.train()
        return out

    # -- checkpoints -----------------------------------------------------------------------
    def _gather(self, arr: Any, dim: int | None) -> np.ndarray:
        """The full array from every rank's slice along ``dim`` (a copy when replicated)."""
        local = np.ascontiguousarray(to_numpy(arr))
        if dim is None or self.tp_group.size() == 1:
            return np.array(local)
        parts = self.tp_group.pg.all_gather(local)
        return np.concatenate(list(parts), axis=dim)

    def _slice(self, full: Any, dim: int | None, key: str, local_shape: tuple) -> np.ndarray:
        """This rank's slice of a full array, after checking its shape."""
        full = np.asarray(to_numpy(full.array if isinstance(full, Tensor) else full))
        n = self.tp_group.size()
        want = tuple(s * n if d == dim else s for d, s in enumerate(local_shape))
        if full.shape != want:
            raise CheckpointError(
                f"{key}: expected a full tensor of shape {want}, found {full.shape}"
            )
        if dim is None:
            return full.copy()
        return np.split(full, n, axis=dim)[self.tp_group.rank()].copy()

    def full_state_dict(self) -> dict[str, np.ndarray]:
        params = dict(self.model.named_parameters())
        return {k: self._gather(params[k].array, d) for k, d in self._dims.items()}

    def full_optimizer_state_dict(self) -> dict[str, Any]:
        sd = numpy_optimizer_state(self.optimizer)
        params = dict(self.model.named_parameters())
        state = {}
        for i in sorted(sd["state"]):  # the same order on every rank
            p = params[self._names[i]]
            dim = self._dims[self._names[i]]
            state[i] = {
                k: self._gather(v, dim) if v.shape == p.shape else v
                for k, v in sd["state"][i].items()
            }
        return {"state": state, "param_groups": sd["param_groups"]}

    def load_full_state(self, model_state: dict, optimizer_state: dict | None = None) -> None:
        params = dict(self.model.named_parameters())
        missing = [k for k in self._names if k not in model_state]
        if missing:
            raise CheckpointError(f"model state is missing {missing}; found {sorted(model_state)}")
        local = {
            k: self._slice(model_state[k], d, k, params[k].shape) for k, d in self._dims.items()
        }
        self.model.load_state_dict(local)
        if optimizer_state is None:
            return
        state = {}
        for key, saved in optimizer_state["state"].items():
            name = self._names[int(key)]
            p, dim = params[name], self._dims[name]
            state[int(key)] = {
                k: self._slice(v, dim, f"optimizer {name}.{k}", p.shape)
                if np.ndim(to_numpy(v.array if isinstance(v, Tensor) else v)) == p.ndim
                else v
                for k, v in saved.items()
            }
        self.optimizer.load_state_dict(
            {"state": state, "param_groups": optimizer_state["param_groups"]}
        )
