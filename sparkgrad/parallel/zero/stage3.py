"""ZeRO-3 for any model: shard per module, gather a module's parameters while it runs.

Stage 3 keeps on each rank only ``1/N`` of every parameter. :func:`shard_model` cuts a
model into *units* and changes it in place (as PyTorch's FSDP2 ``fully_shard`` does), so
that afterwards the model holds no full parameter at all between steps:

- **which modules are units**: walking the tree from the top, the first module on each
  path that directly owns a parameter becomes a unit together with everything below it
  (an ``Embedding``, a ``LayerNorm``, an ``LSTM``, a ``MultiheadAttention`` with its
  ``out_proj``, whose weight the attention reads itself). Containers without parameters
  of their own (``Sequential``, ``TransformerEncoderLayer``...) are looked through. The
  model's own parameters, if any (a ViT's position table), are a unit of the model itself,
  gathered for its whole forward.
- **a plain Linear** becomes a :class:`~sparkgrad.parallel.zero.shard_unit.Zero3Linear`, the
  fast path: one op that gathers ``W`` in forward, gathers it *again* in backward and saves
  only ``x``, so the full weight of a Linear really lives only while the op runs.
- **any other unit** keeps its own ``forward``; a :class:`ShardedModule` hooks it:

      pre-forward hook:   all_gather its shard -> full W, b, ...  (:class:`GatherParams`)
                          -> put them in the module's parameter slots
      module.forward:     the module's own ops record the graph on those tensors
      forward hook:       put the emptied Parameters back in the slots
      backward:           GatherParams' backward reduce_scatters (AVG) the full gradient
                          -> this rank's gradient shard

  Honest memory note: the ops inside the module save what *they* need for backward, and
  for most ops that includes the gathered weights (``F.embedding`` keeps its table, a
  matmul its right operand). So a generic unit's full weights stay alive from its forward
  until its backward has run: no saving during the step there, only between steps (each
  rank stores 1/N) and on the Linear fast path. Gathering again in backward, as
  Zero3Linear does, would need every op of the module rewritten the same way.

**Tied weights** (GPT's ``--tie-weights``: ``head.weight is token.weight``) belong to the
first unit that holds them; a later module that uses them gathers that unit too. Each use
is one :class:`GatherParams` in the graph, so backward reduce_scatters once per use and the
shard's gradient adds up both, as autograd adds the two uses of a shared parameter.

Buffers (``positions.pe``) are not sharded: every rank keeps them whole in the module.
A parameter must be read inside the forward of its unit's module (or of an ancestor unit
that holds it); code that reads ``layer.weight`` from outside finds an empty Parameter.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.custom_function import Function
from sparkgrad.autodiff.nn.linear import DenseLayer
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.nn.parameter import Parameter
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.comms.process_group import ProcessGroup
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.zero.shard_unit import ShardUnit, Zero3Linear

Slot = tuple[Module, str, Parameter]  # (module, attribute name, the parameter it holds)


class GatherParams(Function):
    """(W, b, ...) = all_gather(shard) cut into the unit's parameters;
    d shard = reduce_scatter_AVG(flatten(dW, db, ...))"""

    @staticmethod
    def forward(ctx: Any, shard: Tensor, unit: ShardUnit) -> tuple[Tensor, ...]:
        # ``shard`` (= unit.shard) is the input: autograd hands its gradient to the optimizer
        ctx.unit = unit
        full = unit.gather()  # every rank's shard, end to end: the unit's flat buffer
        return tuple(Tensor._wrap(view) for view in unit.layout.views(full))

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor, None]:
        unit: ShardUnit = ctx.unit
        full_grad = unit.layout.flatten([g.array for g in grads])  # padding zeroed
        return Tensor._wrap(unit.reduce_scatter(full_grad)), None


class ShardedModule:
    """The hooks that give ``module`` its full parameters for the duration of its forward.

    Between forwards each slot holds its original Parameter with an empty (0-element)
    array, as FSDP frees a sharded parameter's storage: ``print(model)`` still shows the
    layer, ``model.parameters()`` shows that nothing full is left, and code that computes
    with a parameter outside its unit's forward fails on the shape instead of running on
    stale weights.

    Args:
        module: the unit's module (it keeps its class and its ``forward``).
        slots: ``(owner, name, unit, index)`` for every parameter slot the forward reads:
            ``owner._parameters[name]`` gets parameter ``index`` of ``unit``, gathered.
    """

    def __init__(self, module: Module, slots: list[tuple[Module, str, ShardUnit, int]]) -> None:
        self.module, self.slots = module, slots
        self.units = list({id(u): u for _, _, u, _ in slots}.values())  # each gathered once
        self.empty = [owner._parameters[name] for owner, name, _, _ in slots]
        for p in self.empty:  # the values live in the units' shards now
            p.array = array_module(p.array).empty(0, dtype=p.array.dtype)
        module.register_forward_pre_hook(self._gather)
        module.register_forward_hook(self._release)

    def _gather(self, module: Module, args: tuple) -> None:
        full = {id(u): GatherParams.apply(u.shard, u) for u in self.units}
        for owner, name, unit, index in self.slots:
            owner._parameters[name] = full[id(unit)][index]

    def _release(self, *_: Any) -> None:
        """Put the empty Parameters back; the graph keeps what backward needs."""
        for (owner, name, _, _), param in zip(self.slots, self.empty):
            owner._parameters[name] = param


def shard_model(model: Module, pg: ProcessGroup, dtype: Any = None) -> tuple[Module, list]:
    """Shard ``model`` in place for ZeRO-3 (see the module docstring); ``dtype``: the
    units' compute dtype (a 16-bit one keeps fp32 masters, see :class:`ShardUnit`).

    Returns the model (a new object only when the model itself is one Linear) and its
    :class:`ShardUnit` s, whose parameter names follow ``model.named_parameters()``.
    """
    names = {id(p): n for n, p in model.named_parameters()}
    if not names:
        raise ConfigError("ZeRO-3: expected a model with parameters to shard, found none")
    roots, reached = _unit_modules(model)
    slots = {id(m): _slots(m, own_only=parent is None) for parent, _, m in roots}
    uses = Counter()  # how many units read each parameter: more than one = tied
    for module_id, module_slots in slots.items():
        uses.update(id(p) for _ in range(reached[module_id]) for *_, p in module_slots)
    where: dict[int, tuple[ShardUnit, int]] = {}  # parameter -> (its unit, its index there)
    units: list[ShardUnit] = []
    for parent, attr, module in roots:
        params = [p for *_, p in slots[id(module)]]
        mine = list({id(p): p for p in params if id(p) not in where}.values())
        if mine:  # the parameters no earlier unit holds: this unit's own
            arrays = [p.array for p in mine]
            unit = ShardUnit([names[id(p)] for p in mine], arrays, pg, False, dtype)
            units.append(unit)
            where.update((id(p), (unit, i)) for i, p in enumerate(mine))
        if type(module) is DenseLayer and all(uses[id(p)] == 1 for p in params):
            fast = Zero3Linear(where[id(params[0])][0], module.in_features, module.out_features)
            if parent is None:
                return fast, units  # the model is one Linear layer
            parent._modules[attr] = fast
        else:
            ShardedModule(module, [(o, n, *where[id(p)]) for o, n, p in slots[id(module)]])
    return model, units


def _unit_modules(model: Module) -> tuple[list[tuple[Module | None, str, Module]], Counter]:
    """``(parent, name, module)`` of every unit's module, depth first, and how many times
    each is reached (a module shared by two parents is one unit, hooked once)."""
    roots: list[tuple[Module | None, str, Module]] = []
    reached: Counter = Counter()
    if _owns_parameters(model):
        roots.append((None, "", model))
        reached[id(model)] += 1

    def visit(parent: Module) -> None:
        for name, child in parent._modules.items():
            if child is None:
                continue
            reached[id(child)] += 1
            if reached[id(child)] > 1:
                continue
            if _owns_parameters(child):
                roots.append((parent, name, child))
            else:
                visit(child)

    visit(model)
    return roots, reached


def _owns_parameters(module: Module) -> bool:
    return any(p is not None for p in module._parameters.values())


def _slots(module: Module, own_only: bool) -> list[Slot]:
    """Every ``(owner, name, parameter)`` in ``module`` (and below it unless ``own_only``)."""
    owners = [module] if own_only else [m for _, m in module.named_modules()]
    return [(m, n, p) for m in owners for n, p in m._parameters.items() if p is not None]
