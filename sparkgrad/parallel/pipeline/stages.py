"""``Stage``: what one pipeline rank holds of the model, and the shapes that cross its edges.

Model and pipeline parallelism cut a network into consecutive *units* and give each rank a
run of them. Two networks are cut here:

- the **MLP** (an ``nn.Sequential``): a unit is a ``Linear`` with the activation after it
  (:mod:`.partition`); an activation ``(rows, width)`` crosses each edge;
- the **GPT** (:class:`sparkgrad.models.gpt.GPT`): the units are the embedding (token +
  position + dropout), each Transformer block, and the head (final LayerNorm + the
  vocabulary projection); an activation ``(rows, T, d_model)`` crosses each edge::

      ids ─[embedding]─ x ─[block 0]─ x ─ ... ─[block L-1]─ x ─[head]─ logits
      stage 0 = embedding + blocks 0..k      stage p-1 = blocks ... + head (+ the loss)

A stage's module reuses the model's own submodules (no copies) and keeps the plain
model's keys (``blocks.layers.3.linear1.weight``), so its ``state_dict`` is a slice of the
full one and checkpoints stay strategy-free. The stages are balanced by parameter count
(:func:`~.partition.balanced_split`), or follow ``split`` (units per stage).

**Tied weights** (``--tie-weights``: the head reads out with the token embedding's
matrix) would put one parameter on the first and the last stage; Megatron all-reduces its
gradient between the two. We refuse it instead with a clear error (one process, or an
untied model): the exchange is a lesson of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sparkgrad.autodiff.nn import Linear
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.nn.transformer import Transformer, _maybe_checkpointed
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError
from sparkgrad.models.sequence_parts import check_token_ids
from sparkgrad.parallel.pipeline.partition import balanced_split, parameter_indices, partition


@dataclass
class Stage:
    """Stage ``index``'s module and the shapes at its edges, for a batch ``x`` of ``rows``."""

    module: Module
    param_index: list[int]  # positions of its parameters in model.parameters()
    units: list[str]  # what it holds, for the report
    input_shape: Callable[[Tensor, int], tuple[int, ...]]  # what it receives
    output_shape: Callable[[Tensor, int], tuple[int, ...]]  # what it sends on
    logits_shape: Callable[[Tensor, int], tuple[int, ...]]  # the model's output
    first_input: Callable[[Any], Tensor]  # the batch's rows as the first stage's input
    dtype: Any


def is_gpt(model: Module) -> bool:
    """A GPT (token/position embeddings, blocks, norm, head), however its layers are split."""
    return all(hasattr(model, a) for a in ("token", "position", "blocks", "norm", "head"))


def make_stage(model: Module, stage: int, stages: int, split: list[int] | None) -> Stage:
    """Stage ``stage`` of ``stages`` of an MLP or a GPT (see the module docstring)."""
    return (gpt_stage if is_gpt(model) else mlp_stage)(model, stage, stages, split)


# -- the MLP --------------------------------------------------------------------------------
def mlp_stage(model: Module, stage: int, stages: int, split: list[int] | None) -> Stage:
    ranges = partition(model, stages, split)
    start, end = ranges[stage]
    module = model[start:end]  # keeps the full model's keys: "2.weight"...
    linears = [m for m in module if isinstance(m, Linear)]
    width_in, width_out = linears[0].in_features, linears[-1].out_features
    classes = [m for m in model if isinstance(m, Linear)][-1].out_features
    dtype = linears[0].weight.array.dtype
    return Stage(
        module=module,
        param_index=parameter_indices(model, start, end),
        units=[f"{k}:{type(m).__name__}" for k, m in module._modules.items()],
        input_shape=lambda x, n: (n, width_in),
        output_shape=lambda x, n: (n, width_out),
        logits_shape=lambda x, n: (n, classes),
        first_input=lambda rows: Tensor(rows, dtype=dtype),
        dtype=dtype,
    )


# -- the GPT --------------------------------------------------------------------------------
class GPTStage(Module):
    """Units ``first`` .. ``last - 1`` of a GPT (unit 0 the embedding, 1..L the blocks, L+1
    the head), as one module with the plain model's keys."""

    def __init__(self, model: Module, first: int, last: int) -> None:
        super().__init__()
        n_blocks = len(model.blocks.layers)
        self.__dict__["_gpt"] = model  # not a child: its parameters are not all ours
        self.has_embedding, self.has_head = first == 0, last == n_blocks + 2
        if self.has_embedding:
            self.token, self.position, self.dropout = model.token, model.position, model.dropout
        self.blocks = Module()
        self.blocks.layers = Module()
        for i in range(max(first, 1) - 1, min(last, n_blocks + 1) - 1):
            self.blocks.layers.add_module(str(i), model.blocks.layers[i])
        if self.has_head:
            self.norm, self.head = model.norm, model.head

    def forward(self, x: Tensor) -> Tensor:
        gpt = self.__dict__["_gpt"]
        if self.has_embedding:  # ids (N, T) -> (N, T, d), as GPT.forward
            check_token_ids(x, gpt.vocab_size, gpt.context)
            x = self.token(x) + self.position(gpt._arange(x.shape[1], x.device))
            x = self.dropout(x)
        mask = Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device)
        for layer in self.blocks.layers._modules.values():  # as TransformerEncoder.forward
            run = _maybe_checkpointed(layer, gpt.blocks.checkpoint_layers)
            x = run(x, src_mask=mask, is_causal=True, src_key_padding_mask=None)
        return self.head(self.norm(x)) if self.has_head else x


def gpt_units(model: Module) -> list[tuple[str, list[Module]]]:
    """``(name, modules)`` of each unit: embedding, block 0 .. block L-1, head."""
    blocks = list(model.blocks.layers)
    return (
        [("embedding", [model.token, model.position])]
        + [(f"block {i}", [b]) for i, b in enumerate(blocks)]
        + [("head", [model.norm, model.head])]
    )


def gpt_stage(model: Module, stage: int, stages: int, split: list[int] | None) -> Stage:
    units = gpt_units(model)
    counts = unit_counts(model, units, stages, split)
    first = sum(counts[:stage])
    last = first + counts[stage]
    if stages > 1 and model.head.weight is model.token.weight:
        raise ConfigError(
            "pipeline stages with --tie-weights: the head and the token embedding share one "
            "matrix, which would live on the first and the last stage; train it untied "
            "(no --tie-weights) or on one process"
        )
    module = GPTStage(model, first, last)
    mine = {id(p) for p in module.parameters()}
    d_model = model.token.weight.shape[1]
    dtype = model.token.weight.array.dtype
    vocab = model.vocab_size
    return Stage(
        module=module,
        param_index=[i for i, p in enumerate(model.parameters()) if id(p) in mine],
        units=[name for name, _ in units[first:last]],
        input_shape=lambda x, n: (n, x.shape[1], d_model),
        output_shape=lambda x, n: (n, x.shape[1], d_model),
        logits_shape=lambda x, n: (n, x.shape[1], vocab),
        first_input=lambda rows: Tensor(rows),  # token ids stay integers
        dtype=dtype,
    )


def unit_counts(
    model: Module, units: list[tuple[str, list[Module]]], stages: int, split: list[int] | None
) -> list[int]:
    """Units per stage: ``split`` checked, or balanced by parameter count."""
    if stages > len(units):
        raise ConfigError(
            f"{stages} pipeline stages need at least {stages} units (the embedding, "
            f"{len(units) - 2} blocks, the head), found {len(units)}; use fewer ranks or "
            f"more --layers"
        )
    if split is None:
        sizes = [sum(p.array.size for m in ms for p in m.parameters()) for _, ms in units]
        return balanced_split(sizes, stages)
    counts = [int(c) for c in split]
    if len(counts) != stages or min(counts) < 1 or sum(counts) != len(units):
        raise ConfigError(
            f"--split must list {stages} positive unit counts (one per stage) summing to "
            f"{len(units)} (the embedding, {len(units) - 2} blocks, the head); found "
            f"{list(split)}"
        )
    return counts
