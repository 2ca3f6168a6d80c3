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

**The GPT** (``--model gpt``) is split by :func:`~sparkgrad.parallel.tensor.transformer.shard_gpt`:
attention by heads, the MLP column-then-row, the embedding and head by vocabulary slice,
and the loss becomes :class:`~sparkgrad.parallel.tensor.vocab.VocabParallelCrossEntropy`
(the ``V``-wide logits are never gathered while training; :meth:`predict` gathers them).
With ``sequence_parallel=True`` (``--sequence-parallel``) the LayerNorm/dropout regions hold
``T/tp`` positions and the replicated parameters' gradients are summed after backward.

**The encoder-decoder** (``--model seq2seq``) is split by
:func:`~sparkgrad.parallel.tensor.seq2seq.shard_seq2seq`: every attention (encoder self,
decoder causal self, decoder cross over the memory) by heads, every feed-forward
column-then-row; its 13-token embedding and head stay replicated, so the loss is the plain
one and :meth:`predict` returns the full logits as they are.

Checkpoints are the plain model's: :meth:`TensorParallel.full_state_dict` gathers the
slices (``all_gather``) and glues them back as each parameter's
:class:`~sparkgrad.parallel.tensor.splits.Split` says (rows, columns, Q/K/V blocks,
uneven vocabulary rows), and :meth:`TensorParallel.load_full_state` cuts a full state
again, so a checkpoint moves freely between strategies and world sizes.
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
from sparkgrad.models.gpt import GPT
from sparkgrad.models.seq2seq import Seq2SeqTransformer
from sparkgrad.parallel.strategy import LossFn, OptimizerFactory, Strategy, numpy_optimizer_state
from sparkgrad.parallel.tensor.layers import ColumnParallelDense, RowParallelDense
from sparkgrad.parallel.tensor.seq2seq import shard_seq2seq
from sparkgrad.parallel.tensor.splits import Split, cut_full, gather_full, split_specs
from sparkgrad.parallel.tensor.transformer import (
    check_sequence_length,
    shard_gpt,
    sync_sequence_parallel_grads,
)
from sparkgrad.parallel.tensor.vocab import vocab_parallel_loss, vocab_sizes
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


class TensorParallel(Strategy):
    """Megatron tensor parallelism over ``process_group`` (see the module docstring)."""

    name = "tensor"

    cuts_layers = True
    models = ("mlp", "gpt", "seq2seq")  # the models whose layers it knows how to cut

    @classmethod
    def tensor_ways(cls, config: Any) -> int:
        """Over how many ranks each layer is split."""
        return config.world_size

    @classmethod
    def check_config(cls, config: Any) -> None:
        ways = cls.tensor_ways(config)
        sp = getattr(config, "sequence_parallel", False)
        if config.model != "gpt" and sp:
            raise ConfigError(
                f"--sequence-parallel splits a Transformer's sequence: expected "
                f"--model gpt, found --model {config.model}"
            )
        if config.model == "mlp":
            bad = [w for w in config.hidden if w % ways]
            if bad:
                raise ConfigError(
                    f"tensor parallelism over {ways} ranks splits every hidden width "
                    f"{ways} ways: {bad} in --hidden {','.join(map(str, config.hidden))} "
                    f"do not divide"
                )
            return
        # tp | heads | d_model, so the MLP width 4·d_model and d_model divide too
        for what, size in (
            ("--heads", config.heads),
            ("--context (the sequence, under --sequence-parallel)", config.context if sp else 0),
        ):
            if size % ways:
                raise ConfigError(
                    f"tensor parallelism over {ways} ranks splits {what} evenly: expected a "
                    f"multiple of {ways}, found {size}"
                )

    @classmethod
    def options_from(cls, config: Any) -> dict[str, Any]:
        return {"sequence_parallel": bool(getattr(config, "sequence_parallel", False))}

    def __init__(
        self,
        model: Module,
        optimizer_factory: OptimizerFactory,
        loss_fn: LossFn,
        process_group: Any = None,
        sequence_parallel: bool = False,
    ) -> None:
        group = resolve(process_group)
        super().__init__(group.rank(), group.size(), group)
        self.tp_group, self.sequence_parallel = group, sequence_parallel
        self.is_gpt = isinstance(model, GPT)
        if self.is_gpt:
            self.model = shard_gpt(model, group, sequence_parallel)
            self.loss_fn = vocab_parallel_loss(loss_fn, group)
        elif sequence_parallel:
            raise ConfigError(
                f"sequence parallelism splits a Transformer's sequence: expected a GPT, "
                f"found {type(model).__name__}"
            )
        elif isinstance(model, Seq2SeqTransformer):  # the 13-token vocabulary: replicated
            self.model, self.loss_fn = shard_seq2seq(model, group), loss_fn
        else:
            self.model, self.loss_fn = shard_sequential(model, group), loss_fn
        self._splits = split_specs(self.model)  # state_dict key -> Split (None: replicated)
        self._names = [k for k, _ in self.model.named_parameters()]  # = optimizer indices
        self.optimizer = optimizer_factory(self.model.parameters())

    # -- memory --------------------------------------------------------------------------------
    @classmethod
    def memory_plan(cls, job: Any, rank: int = 0) -> Any:
        """Rank ``rank`` of ``t = world_size``: the column/row/vocabulary pieces of every
        parameter and the replicated rest; the whole batch's activations with heads and MLP
        width ``/t`` (under sequence parallelism the LayerNorm regions ``/t`` too)."""
        from sparkgrad.parallel.memory_plan import rank_plan

        sp = bool(job.options.get("sequence_parallel", False))
        t = job.world_size
        return rank_plan(cls.name, job, rank, job.batch_size, tp=t, tp_rank=rank,
                         sequence_parallel=sp)  # fmt: skip

    # -- training --------------------------------------------------------------------------
    def train_step(self, x: Tensor, y: Tensor) -> float:
        self.model.train()
        self._check_input(x)
        self.optimizer.zero_grad()
        loss = timed(self.timeline, "forward", lambda: self.loss_fn(self.model(x), y))
        timed(self.timeline, "backward", loss.backward)
        if self.sequence_parallel:  # replicated parameters saw T/tp positions each
            with self.timeline.span("comm"):
                sync_sequence_parallel_grads(self.model, self.tp_group)
        self.after_backward()
        with self.timeline.span("optimizer"):
            self.optimizer.step()
        return self.global_loss(float(loss.item()))

    def _check_input(self, x: Tensor) -> None:
        if self.sequence_parallel:
            check_sequence_length(x.shape[1], self.tp_group)

    def after_backward(self) -> None:
        """Hook between backward and the step (the hybrid mesh averages over dp here)."""

    def global_loss(self, loss: float) -> float:
        """The global-batch loss: every tensor-parallel rank already has it."""
        return loss

    def predict(self, x: Tensor) -> Tensor:
        self._check_input(x)
        self.model.eval()
        with sg.no_grad():
            out = self.model(x)  # collective: the g ops all_reduce inside
            if self.is_gpt:  # each rank holds logits of its vocabulary slice: glue them
                sizes = vocab_sizes(self.model.vocab_size, self.tp_group.size())
                full = gather_full(out.array, Split(-1, sizes=sizes), self.tp_group)
                out = sg.tensor(full, device=out.device)
        self.model.train()
        return out

    # -- checkpoints -----------------------------------------------------------------------
    def full_state_dict(self) -> dict[str, np.ndarray]:
        glued: dict[int, np.ndarray] = {}  # a tied parameter is gathered once
        out = {}
        for key, value in self.model.state_dict(keep_vars=True).items():
            if id(value) not in glued:
                glued[id(value)] = gather_full(value.array, self._splits.get(key), self.tp_group)
            out[key] = glued[id(value)]
        return out

    def full_optimizer_state_dict(self) -> dict[str, Any]:
        sd = numpy_optimizer_state(self.optimizer)
        params = dict(self.model.named_parameters())
        state = {}
        for i in sorted(sd["state"]):  # the same order on every rank
            name = self._names[i]
            state[i] = {
                k: gather_full(v, self._splits[name], self.tp_group)
                if v.shape == params[name].shape
                else v
                for k, v in sd["state"][i].items()
            }
        return {"state": state, "param_groups": sd["param_groups"]}

    def load_full_state(self, model_state: dict, optimizer_state: dict | None = None) -> None:
        own = self.model.state_dict(keep_vars=True)
        missing = [k for k in own if k not in model_state]
        if missing:
            raise CheckpointError(f"model state is missing {missing}; found {sorted(model_state)}")
        local = {
            k: cut_full(_array(model_state[k]), self._splits.get(k), self.tp_group, k, v.shape)
            for k, v in own.items()
        }
        self.model.load_state_dict(local)
        if optimizer_state is None:
            return
        params = dict(self.model.named_parameters())
        state = {}
        for key, saved in optimizer_state["state"].items():
            name = self._names[int(key)]
            p, split = params[name], self._splits[name]
            state[int(key)] = {
                k: cut_full(_array(v), split, self.tp_group, f"optimizer {name}.{k}", p.shape)
                if np.ndim(_array(v)) == p.ndim
                else v
                for k, v in saved.items()
            }
        self.optimizer.load_state_dict(
            {"state": state, "param_groups": optimizer_state["param_groups"]}
        )


def _array(value: Any) -> np.ndarray:
    return np.asarray(to_numpy(value.array if isinstance(value, Tensor) else value))
