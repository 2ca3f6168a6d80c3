"""``MemoryPlan``: the bytes one rank will hold, predicted before it runs, then measured.

Every strategy answers, on the driver, from the model's *shapes* alone
(:class:`~sparkgrad.parallel.memory_shapes.ModelShape`) and its own share rule: how many
bytes of parameters, gradients, optimizer state and (peak) activations rank ``r`` will
hold (``Strategy.memory_plan(job, rank)``, a classmethod: one rule per strategy, in its
own class). After a step, the live arrays say what it really holds
(``strategy.memory_measured(activations)``: the parameters, gradients and optimizer
buffers it owns, each owning block of memory once, as
:class:`~sparkgrad.parallel.memory_ledger.MemoryLedger` counts them; the activations from
:class:`~sparkgrad.autodiff.saved_memory.ActivationTracker` around that step). The run
prints both, the strategies benchmark tabulates them (``plan.table()``, ZeRO-2 on the MLP
784-32-32-32-10 with Adam, 2 ranks of a batch of 8)::

    zero2, rank 0
    kind           predicted B    measured B  pred/meas
    parameters         110,248       110,248      1.000
    gradients           55,124        55,124      1.000
    optimizer          110,252       110,252      1.000
    activations         14,292        14,292      1.000
    total              289,916       289,916      1.000
      flat buffer padded by 0 elements to multiples of 2

The share rules, ``P`` parameters in float32 (4 bytes), ``K`` optimizer bytes per element
(Adam 8, SGD with momentum 4, plain SGD 0; plus a 4-byte ``step`` per optimized tensor for
Adam, RMSprop, Adagrad, Adadelta)::

    single, context     4P, 4P, K·P                 every rank the whole model
    data (DDP)          4P, 4P + 4P, K·P            + its buckets: a second copy of the grads
    zero1 / 2 / 3       the ZeRO table (memory_ledger.py), each flat buffer padded to a
                        multiple of N (stage 3: one buffer per module that owns parameters)
    model, pipeline     this stage's units (balanced by parameters, or --split)
    tensor              the column/row/vocabulary shards + the replicated LayerNorms, biases
    hybrid, mesh        composed: the tensor shards of this stage's units

and the activations are :mod:`~sparkgrad.parallel.activation_memory`'s formulas, with the
strategy's share of the batch (rows per rank and micro-batch), of the sequence (``/cp``;
``/t`` under sequence parallelism), of the layers and of the micro-batches in flight.

**Under** ``--precision fp16|bf16`` (the job's ``precision``, from the run config) ZeRO
holds what its mixed precision holds: 2-byte parameters and gradients by the same shard
rules, and the optimizer an fp32 master of its shard beside the moments, ``(4 + K)`` bytes
per shard element (Adam: 12) plus the steps -- the paper's 2Ψ + 2Ψ + 12Ψ/N family. Every
other strategy runs autocast around fp32 parameters, gradients and optimizer state (the
rows above, unchanged); only the activations change, to what autocast's ops save
(activation_memory's second table; ZeRO's 16-bit parameters make its residual stream
16-bit too). Those are derived for the CPU: on cuda under autocast there is no plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sparkgrad.errors import ConfigError
from sparkgrad.parallel.activation_memory import ActivationShare, activation_bytes, widths_of
from sparkgrad.parallel.memory_ledger import OPTIMIZER_BYTES_PER_ELEMENT
from sparkgrad.parallel.memory_shapes import ModelShape, ParamSpec

KINDS = ("parameters", "gradients", "optimizer", "activations")
F32 = 4
# optimizer -> (bytes per element, bytes per optimized tensor: its float32 ``step``)
STEP_COUNTED = {"adam": 4, "adamw": 4, "rmsprop": 4, "adagrad": 4, "adadelta": 4}
EXTRA_BYTES_PER_ELEMENT = {"rmsprop": 4, "adagrad": 4, "adadelta": 8}  # beside the ledger's


def optimizer_bytes(optimizer: str, momentum: float = 0.0) -> tuple[int, int]:
    """``(bytes per element, bytes per tensor)`` of ``optimizer``'s state (module doc)."""
    if optimizer == "sgd":
        return (OPTIMIZER_BYTES_PER_ELEMENT["sgd"] if momentum else 0), 0
    if optimizer == "rmsprop":  # square_avg, and a momentum buffer when momentum > 0
        return 4 + (4 if momentum else 0), STEP_COUNTED["rmsprop"]
    per = OPTIMIZER_BYTES_PER_ELEMENT.get(optimizer, EXTRA_BYTES_PER_ELEMENT.get(optimizer))
    if per is None:
        raise ConfigError(
            f"memory plan: expected an optimizer of {sorted(STEP_COUNTED) + ['sgd']}, "
            f"found {optimizer!r}"
        )
    return per, STEP_COUNTED.get(optimizer, 0)


@dataclass(frozen=True)
class MemoryJob:
    """What a plan needs: the model's shape, the global batch, the world, the optimizer,
    the strategy's constructor options (``micro_batches``, ``schedule``, ``split``, ``mesh``,
    ``sequence_parallel``, ZeRO's ``stage``) and ``--precision`` and ``--device``."""

    model: ModelShape
    batch_size: int
    world_size: int
    optimizer: str = "adam"
    momentum: float = 0.0
    options: dict = field(default_factory=dict)
    precision: str = "fp32"
    device: str = "cpu"

    @classmethod
    def from_config(cls, config: Any, vocab_size: int | None = None) -> MemoryJob:
        """The job of a run config (``--strategy`` and its options, as the engine builds it)."""
        from sparkgrad.parallel.registry import strategy_class

        fixed = strategy_class(config.strategy)[1] if config.world_size > 1 else {}
        options = {**config.strategy_options(), **fixed} if config.world_size > 1 else {}
        return cls(
            ModelShape.from_config(config, vocab_size), config.batch_size, config.world_size,
            config.optimizer, config.momentum, options, config.precision, config.device,
        )  # fmt: skip

    def with_options(self, **options: Any) -> MemoryJob:
        return replace(self, options={**self.options, **options})

    def states(self, numel: int, tensors: int) -> dict[str, int]:
        """Parameters, gradients and optimizer state of ``numel`` elements in ``tensors``
        optimized tensors, all on this rank (float32: autocast keeps them so)."""
        per, step = optimizer_bytes(self.optimizer, self.momentum)
        return {"parameters": F32 * numel, "gradients": F32 * numel,
                "optimizer": per * numel + step * tensors}  # fmt: skip


@dataclass
class MemoryPlan:
    """Bytes per kind (:data:`KINDS`) one rank holds: ``predicted``, and ``measured`` once
    known; ``notes`` say what the prediction assumed (padding, buckets, micro-batches)."""

    strategy: str
    rank: int
    predicted: dict[str, int]
    measured: dict[str, int] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def predicted_total(self) -> int:
        return sum(self.predicted[k] for k in KINDS)

    @property
    def measured_total(self) -> int | None:
        return None if self.measured is None else sum(self.measured[k] for k in KINDS)

    def with_measured(self, measured: dict[str, int]) -> MemoryPlan:
        return replace(self, measured={k: int(measured[k]) for k in KINDS})

    def ratios(self) -> dict[str, float]:
        """``predicted / measured`` per kind and for the total (1.0 when both are 0)."""
        if self.measured is None:
            raise ConfigError("MemoryPlan.ratios: nothing measured yet (with_measured first)")
        pairs = [(k, self.predicted[k], self.measured[k]) for k in KINDS]
        pairs.append(("total", self.predicted_total, self.measured_total))
        return {k: (p / m if m else (1.0 if p == 0 else float("inf"))) for k, p, m in pairs}

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "rank": self.rank,
            "predicted": {**self.predicted, "total": self.predicted_total},
            "notes": list(self.notes),
        }
        if self.measured is not None:
            out["measured"] = {**self.measured, "total": self.measured_total}
            out["ratio"] = self.ratios()
        return out

    def line(self) -> str:
        """``memory rank 0: predicted 1.23 MB, measured 1.22 MB (params 0.46/0.46, ...)``."""
        head = f"memory rank {self.rank}: predicted {_mb(self.predicted_total)} MB"
        shorts = ("params", "grads", "optimizer", "activations")
        if self.measured is None:
            parts = ", ".join(f"{s} {_mb(self.predicted[k])}" for k, s in zip(KINDS, shorts))
            return f"{head} ({parts} MB)"
        parts = ", ".join(
            f"{s} {_mb(self.predicted[k])}/{_mb(self.measured[k])}" for k, s in zip(KINDS, shorts)
        )
        return f"{head}, measured {_mb(self.measured_total)} MB ({parts} MB predicted/measured)"

    def table(self) -> str:
        """Predicted and measured bytes per kind, and their ratio."""
        lines = [f"{self.strategy}, rank {self.rank}",
                 f"{'kind':<12}{'predicted B':>14}{'measured B':>14}{'pred/meas':>11}"]  # fmt: skip
        ratios = self.ratios() if self.measured is not None else {}
        for kind in (*KINDS, "total"):
            pred = self.predicted_total if kind == "total" else self.predicted[kind]
            meas = (
                ""
                if self.measured is None
                else (f"{self.measured_total if kind == 'total' else self.measured[kind]:,}")
            )
            ratio = f"{ratios[kind]:.3f}" if ratios else ""
            lines.append(f"{kind:<12}{pred:>14,}{meas:>14}{ratio:>11}")
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)


def _mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.2f}"


def plan_memory(strategy: str, job: MemoryJob, rank: int = 0) -> MemoryPlan:
    """Strategy ``strategy``'s plan for ``rank`` (its class's rule, with the options its
    name fixes, e.g. ZeRO's stage)."""
    from sparkgrad.parallel.registry import strategy_class

    cls, fixed = strategy_class(strategy)
    plan = cls.memory_plan(job.with_options(**fixed), rank)
    plan.strategy = strategy
    return plan


# -- the share rules the strategies compose -------------------------------------------------
def rank_plan(
    name: str, job: MemoryJob, rank: int, rows: int, units: tuple[int, int] | None = None,
    tp: int = 1, tp_rank: int = 0, sequence_parallel: bool = False, cp: int = 1,
    in_flight: int = 1, notes: list[str] | None = None, scaled_loss: bool = False,
    micro_batches: int = 1,
) -> MemoryPlan:  # fmt: skip
    """The plan of a rank that holds pipeline units ``[first, last)`` (None: all of them),
    each parameter's tensor-parallel piece (``tp``, ``tp_rank``), ``rows`` sequences or
    samples of each micro-batch, the sequence's ``1/cp`` and ``in_flight`` micro-batches."""
    first, last = units if units is not None else (0, job.model.units)
    specs = [p for p in job.model.tensors() if first <= p.unit < last]
    states = job.states(sum(p.local_numel(tp, tp_rank) for p in specs), len(specs))
    share = ActivationShare(
        rows, micro_batches, tp, tp_rank, sequence_parallel, cp, first, last, in_flight,
        scaled_loss=scaled_loss, widths=widths_of(job.precision, job.device),
    )  # fmt: skip
    acts = activation_bytes(job.model, share)
    return MemoryPlan(name, rank, {**states, "activations": acts["peak"]}, notes=notes or [])


def whole_model_plan(
    name: str, job: MemoryJob, rank: int, rows: int, buckets: bool = False, cp: int = 1
) -> MemoryPlan:
    """Every rank the whole model, ``rows`` of each batch (``cp``: its sequence chunk, the
    loss weighted by its share of the tokens); ``buckets``: DDP's flat gradient buckets, a
    second copy of the gradients."""
    plan = rank_plan(name, job, rank, rows, cp=cp, scaled_loss=cp > 1)
    if buckets:
        plan.predicted["gradients"] *= 2
        plan.notes.append("DDP buckets: a second copy of the gradients (not views into them)")
    return plan


def stage_units(
    shape: ModelShape, stages: int, split: list[int] | None = None
) -> list[tuple[int, int]]:
    """``[first, last)`` units of every pipeline stage: ``split`` (units per stage) or
    balanced by parameter count, as the built model is cut
    (:func:`~sparkgrad.parallel.pipeline.partition.balanced_split`)."""
    from sparkgrad.parallel.pipeline.partition import balanced_split

    if split is None:
        sizes = [0] * shape.units
        for p in shape.tensors():
            sizes[p.unit] += p.numel
        counts = balanced_split(sizes, stages)
    else:
        counts = [int(c) for c in split]
    bounds = [sum(counts[:i]) for i in range(len(counts) + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def in_flight(schedule: str, stage: int, stages: int, micro_batches: int) -> int:
    """Micro-batches a stage holds at its peak: GPipe ``m``, 1F1B ``min(p - stage, m)``."""
    from sparkgrad.parallel.pipeline.schedules import SCHEDULES, peak_live

    return peak_live(SCHEDULES[schedule](stage, stages, micro_batches))


def zero_plan(name: str, job: MemoryJob, rank: int, stage: int) -> MemoryPlan:
    """ZeRO stage 1-3 over ``N = world_size`` (:mod:`sparkgrad.parallel.zero.strategy`):
    one flat buffer padded to ``N·ceil(P/N)`` (stages 1, 2), or one per owning module
    (stage 3), each rank holding ``ceil(numel/N)`` of it."""
    n, specs = job.world_size, job.model.tensors()
    groups = [specs] if stage < 3 else _by_module(specs)
    numels = [sum(p.numel for p in g) for g in groups]
    shard = sum(-(-k // n) for k in numels)
    per, step = optimizer_bytes(job.optimizer, job.momentum)
    sixteen = job.precision != "fp32"  # the paper's precision: 16-bit params and grads,
    w = 2 if sixteen else F32  # and an fp32 master of this rank's shard in the optimizer
    per += F32 if sixteen else 0
    full = w * shard * n  # stages 1, 2: the padded flat buffer, whole on every rank
    predicted = {
        "parameters": full if stage < 3 else w * shard,
        "gradients": full if stage == 1 else w * shard,
        "optimizer": per * shard + step * len(groups),
    }
    share = ActivationShare(
        job.batch_size // n, zero3_world=n if stage == 3 else 0,
        widths=widths_of(job.precision, job.device, sixteen_bit_params=True),
    )  # fmt: skip
    predicted["activations"] = activation_bytes(job.model, share)["peak"]
    pad = shard * n - sum(numels)
    notes = [f"flat buffer{'s' if stage == 3 else ''} padded by {pad} elements to multiples of {n}"]
    if sixteen:
        notes.append(f"{job.precision}: 2-byte parameters and gradients, fp32 master shard")
    return MemoryPlan(name, rank, predicted, notes=notes)


def _by_module(specs: list[ParamSpec]) -> list[list[ParamSpec]]:
    """The parameters grouped by owning module, in order (ZeRO-3's units)."""
    groups: dict[str, list[ParamSpec]] = {}
    for p in specs:
        groups.setdefault(p.module, []).append(p)
    return list(groups.values())


def measured_step(strategy: Any, x: Any, y: Any) -> tuple[float, dict[str, int]]:
    """One ``train_step`` under an :class:`ActivationTracker`: its loss, and the bytes of
    every kind the rank holds after it (the activations: the step's peak)."""
    from sparkgrad.autodiff.saved_memory import ActivationTracker

    with ActivationTracker() as tracker:
        loss = strategy.train_step(x, y)
    return loss, strategy.memory_measured(tracker.peak_bytes)
