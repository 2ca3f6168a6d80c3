"""``ModelShape``: a model the engine trains, as shapes only -- what memory formulas read.

A memory plan (:mod:`~sparkgrad.parallel.memory_plan`) is made on the driver, before any
rank builds a model, so it cannot count arrays: it reads the model's shapes. Two models are
described here, the two every layer-splitting strategy cuts:

- the **MLP** (:func:`sparkgrad.models.mlp.build_mlp`): ``widths = (784, *hidden, 10)``,
  one ``Linear(i, o)`` per pair of widths (weight ``(o, i)``, bias ``(o,)``);
- the **GPT** (:class:`sparkgrad.models.gpt.GPT`): token ``(V, h)`` and position
  ``(T, h)`` embeddings, ``L`` pre-norm blocks (``in_proj (3h, h)`` + bias, ``out_proj
  (h, h)`` + bias, ``linear1 (4h, h)`` + bias, ``linear2 (h, 4h)`` + bias, two LayerNorms of
  ``2h``), the final LayerNorm and the head ``(V, h)`` (none when tied to the embedding)::

      P = (V + T)·h + L·(12h² + 13h) + 2h + V·h·[not tied]

:meth:`ModelShape.tensors` lists every parameter as a :class:`ParamSpec`: its name (the
``state_dict`` key), shape, how tensor parallelism splits it (a
:class:`~sparkgrad.parallel.tensor.splits.Split`, ``None`` = replicated), the pipeline
*unit* it belongs to (MLP: its ``Linear``; GPT: 0 the embedding, ``1..L`` the blocks,
``L+1`` the head) and the module that owns it (ZeRO-3 shards per owning module).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sparkgrad.errors import ConfigError
from sparkgrad.parallel.tensor.splits import Split

QKV, ROWS, COLS, VOCAB = Split(0, blocks=3), Split(0), Split(1), "vocab"


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: key, full shape, tensor-parallel split, pipeline unit, owning module."""

    name: str
    shape: tuple[int, ...]
    split: Split | str | None  # a Split, "vocab" (rows by vocabulary slice) or None
    unit: int
    module: str

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def local_numel(self, tp: int, rank: int) -> int:
        """Elements rank ``rank`` of ``tp`` keeps (vocabulary slices may differ by one row)."""
        if self.split is None or tp == 1:
            return self.numel
        if self.split == VOCAB:  # tensor.vocab.vocab_sizes: V // tp, one more on V % tp ranks
            rows = self.shape[0]
            return self.numel // rows * (rows // tp + (rank < rows % tp))
        return self.numel // tp  # even splits of rows, columns or Q/K/V blocks


@dataclass(frozen=True)
class ModelShape:
    """The MLP (``widths``) or the GPT (``vocab`` ... ``tie_weights``), with ``recompute``."""

    kind: str
    widths: tuple[int, ...] = ()
    vocab: int = 0
    context: int = 0
    d_model: int = 0
    heads: int = 0
    layers: int = 0
    dropout: float = 0.0
    tie_weights: bool = False
    recompute: str = "none"

    @classmethod
    def mlp(cls, hidden: tuple[int, ...] = (256, 256), recompute: str = "none",
            n_in: int = 784, n_out: int = 10) -> ModelShape:  # fmt: skip
        return cls("mlp", widths=(n_in, *hidden, n_out), recompute=recompute)

    @classmethod
    def gpt(cls, vocab: int, context: int = 64, d_model: int = 64, heads: int = 4,
            layers: int = 2, dropout: float = 0.0, tie_weights: bool = False,
            recompute: str = "none") -> ModelShape:  # fmt: skip
        return cls("gpt", (), vocab, context, d_model, heads, layers, dropout, tie_weights,
                   recompute)  # fmt: skip

    @classmethod
    def from_config(cls, config: Any, vocab_size: int | None = None) -> ModelShape:
        """The shape of ``config``'s model (a language model also needs its vocabulary)."""
        if config.model == "mlp":
            return cls.mlp(tuple(config.hidden), config.recompute)
        if config.model == "gpt":
            if not vocab_size:
                raise ConfigError("a GPT's memory plan needs its vocabulary size, found none")
            return cls.gpt(
                vocab_size, config.context, config.d_model, config.heads, config.layers,
                config.dropout, config.tie_weights, config.recompute,
            )  # fmt: skip
        raise ConfigError(
            f"memory plans know the shapes of --model mlp and gpt, found --model {config.model}"
        )

    # -- the parameters ------------------------------------------------------------------------
    def tensors(self) -> list[ParamSpec]:
        """Every parameter, in ``model.parameters()`` order (see the module docstring)."""
        return self._mlp_tensors() if self.kind == "mlp" else self._gpt_tensors()

    @property
    def units(self) -> int:
        """Pipeline units: the MLP's Linear layers; the GPT's embedding, blocks and head."""
        return len(self.widths) - 1 if self.kind == "mlp" else self.layers + 2

    @property
    def numel(self) -> int:
        return sum(p.numel for p in self.tensors())

    def _mlp_tensors(self) -> list[ParamSpec]:
        out, n = [], len(self.widths) - 1
        for i, (a, b) in enumerate(zip(self.widths[:-1], self.widths[1:])):
            paired = i < n - n % 2  # Linear pairs are column- then row-parallel; an odd last one
            column = paired and i % 2 == 0  # is replicated (tensor/strategy.py)
            w = (ROWS if column else COLS) if paired else None
            key = str(2 * i)  # Linear, ReLU, Linear, ...: the Sequential's keys
            out.append(ParamSpec(f"{key}.weight", (b, a), w, i, key))
            out.append(ParamSpec(f"{key}.bias", (b,), ROWS if column else None, i, key))
        return out

    def _gpt_tensors(self) -> list[ParamSpec]:
        h, v, last = self.d_model, self.vocab, self.layers + 1
        out = [ParamSpec("token.weight", (v, h), VOCAB, 0, "token"),
               ParamSpec("position.weight", (self.context, h), None, 0, "position")]  # fmt: skip
        for i in range(self.layers):
            p, u = f"blocks.layers.{i}.", i + 1
            attn = p + "self_attn"
            out += [
                ParamSpec(attn + ".in_proj_weight", (3 * h, h), QKV, u, attn),
                ParamSpec(attn + ".in_proj_bias", (3 * h,), QKV, u, attn),
                ParamSpec(attn + ".out_proj.weight", (h, h), COLS, u, attn),
                ParamSpec(attn + ".out_proj.bias", (h,), None, u, attn),
                ParamSpec(p + "linear1.weight", (4 * h, h), ROWS, u, p + "linear1"),
                ParamSpec(p + "linear1.bias", (4 * h,), ROWS, u, p + "linear1"),
                ParamSpec(p + "linear2.weight", (h, 4 * h), COLS, u, p + "linear2"),
                ParamSpec(p + "linear2.bias", (h,), None, u, p + "linear2"),
            ]
            out += [ParamSpec(f"{p}{n}.{k}", (h,), None, u, p + n)
                    for n in ("norm1", "norm2") for k in ("weight", "bias")]  # fmt: skip
        out += [ParamSpec("norm.weight", (h,), None, last, "norm"),
                ParamSpec("norm.bias", (h,), None, last, "norm")]  # fmt: skip
        if not self.tie_weights:
            out.append(ParamSpec("head.weight", (v, h), VOCAB, last, "head"))
        return out
