"""``MemoryLedger``: how many bytes of parameters, gradients and optimizer state a rank holds.

The point of ZeRO is memory. With ``P`` parameters, ``N`` data-parallel ranks, fp32
everywhere and Adam, one rank holds (bytes; this is *our* accounting, with no mixed
precision -- the ZeRO paper's ``16P`` counts fp16 weights and gradients plus fp32 master
weights and moments, ours counts fp32 weights 4P + fp32 gradients 4P + Adam's ``exp_avg``
and ``exp_avg_sq`` 8P)::

    stage               parameters   gradients   optimizer (Adam)   total
    0 (DataParallel)    4P           4P          8P                 16P
    1 (optimizer)       4P           4P          8P/N               8P + 8P/N
    2 (+ gradients)     4P           4P/N        8P/N               4P + 12P/N
    3 (+ parameters)    4P/N         4P/N        8P/N               16P/N

**In the paper's own precision** (``precision="fp16"`` or ``"bf16"``: mixed precision as
in the ZeRO paper and DeepSpeed) a rank holds 2-byte parameters and gradients for compute
and, in the optimizer, a 4-byte fp32 master copy next to the moments: ``K = 12`` for Adam
(4 master + 8 moments), so (Ψ = P)::

    stage               parameters   gradients   optimizer (Adam)   total
    0 (DataParallel)    2Ψ           2Ψ          12Ψ                16Ψ
    1 (optimizer)       2Ψ           2Ψ          12Ψ/N              4Ψ + 12Ψ/N
    2 (+ gradients)     2Ψ           2Ψ/N        12Ψ/N              2Ψ + 14Ψ/N
    3 (+ parameters)    2Ψ/N         2Ψ/N        12Ψ/N              16Ψ/N

Both sides count bytes **by dtype**: the measured one (:func:`held_bytes_by_dtype`, the
``measured_by_dtype`` entry of :meth:`MemoryLedger.as_dict`) shows a float16 copy as float16
and the fp32 master weights as float32, and :meth:`MemoryLedger.expected_by_dtype` splits the
formula the same way. ZeRO built with ``precision="fp16"`` or ``"bf16"`` (what ``--precision``
gives ``--strategy zero1|zero2|zero3``) holds exactly this layout -- 16-bit flat parameters
and gradients, an fp32 master copy of its shard in the optimizer
(:mod:`sparkgrad.parallel.zero.master_weights`) -- so it measures the paper's table above.
The other strategies under ``--precision`` (autocast, like ``torch.amp``,
:mod:`sparkgrad.engine.precision`) keep fp32 parameters and gradients and measure the fp32
table; the weights' 16-bit copies autocast makes per step are activations (kept by the ops
that use them: :mod:`sparkgrad.parallel.activation_memory` counts them).

SGD with momentum keeps one buffer (4P instead of 8P); plain SGD none. :meth:`expected`
evaluates these formulas. The ledger itself does *not*: it measures the arrays a strategy
really holds (``.nbytes``), so a strategy that forgot to free its full gradient shows it.
Views count their owner once (a parameter that is a view into a flat buffer costs nothing
extra; the flat buffer is counted whole, padding included). The measured optimizer state
also holds each optimized tensor's ``step`` counter (a 4-byte scalar).

What is measured is what stays between steps: temporaries inside one step (the per-layer
gathered weights of stage 3, autograd's per-parameter gradients before they are reduced)
come and go and are not in the ledger.

Activations are the other half of a step's memory, and they depend on ``--recompute``
(activation checkpointing, :mod:`sparkgrad.models.recompute`). ZeRO does not shard them:
every data-parallel rank holds its micro-batch's. :meth:`MemoryLedger.expected_activations`
is the formula for ``L`` identical blocks (measured by
:class:`sparkgrad.autodiff.saved_memory.ActivationTracker`); a ledger built with
``activations=`` (measured bytes) and ``recompute=`` reports them beside the three kinds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError

OPTIMIZER_BYTES_PER_ELEMENT = {"adam": 8, "adamw": 8, "sgd": 4, "none": 0}
KINDS = ("parameters", "gradients", "optimizer")
RECOMPUTE = ("none", "blocks", "selective", "sequential")  # sequential: checkpoint_sequential


def held_bytes(arrays: Iterable[Any]) -> int:
    """Bytes of the memory behind ``arrays``, each owning block counted once and whole.

    ``None`` entries (a gradient not yet computed) cost nothing. A view is charged its
    owner's full size once, however many views of it are passed.
    """
    owners: dict[int, int] = {}
    for a in arrays:
        if a is None:
            continue
        owner = a.array if isinstance(a, Tensor) else a
        while getattr(owner, "base", None) is not None:
            owner = owner.base
        owners[id(owner)] = int(owner.nbytes)
    return sum(owners.values())


def held_bytes_by_dtype(arrays: Iterable[Any]) -> dict[str, int]:
    """:func:`held_bytes` split by the owners' dtype names (``{"float16": ..., ...}``)."""
    owners: dict[int, Any] = {}
    for a in arrays:
        if a is None:
            continue
        owner = a.array if isinstance(a, Tensor) else a
        while getattr(owner, "base", None) is not None:
            owner = owner.base
        owners[id(owner)] = owner
    out: dict[str, int] = {}
    for owner in owners.values():
        name = str(owner.dtype)
        out[name] = out.get(name, 0) + int(owner.nbytes)
    return out


def optimizer_arrays(optimizer: Any) -> list[Any]:
    """Every buffer in ``optimizer.state`` (moments, momentum, step counters)."""
    values = [v for s in optimizer.state.values() for v in s.values()]
    arrays = [v.array if isinstance(v, Tensor) else v for v in values]
    return [a for a in arrays if hasattr(a, "nbytes")]


class MemoryLedger:
    """Measured bytes per rank of parameters, gradients and optimizer state.

    Args:
        parameters, gradients, optimizer_state: the arrays (or Tensors) the rank holds.
        stage: the ZeRO stage the numbers belong to (0 for plain data parallel).
        world_size: ``N``, the number of data-parallel ranks.
        numel: ``P``, the model's real parameter count (for :meth:`as_dict`'s formula).
        optimizer: ``"adam"``, ``"sgd"`` (momentum) or ``"none"``, for the formula.
    """

    def __init__(
        self,
        parameters: Iterable[Any],
        gradients: Iterable[Any],
        optimizer_state: Iterable[Any],
        stage: int = 0,
        world_size: int = 1,
        numel: int = 0,
        optimizer: str = "adam",
        precision: str = "fp32",
        activations: int | None = None,
        recompute: str = "none",
    ) -> None:
        parameters, gradients = list(parameters), list(gradients)
        optimizer_state = list(optimizer_state)
        self.activation_bytes, self.recompute = activations, recompute  # peak saved for backward
        self.parameter_bytes = held_bytes(parameters)
        self.gradient_bytes = held_bytes(gradients)
        self.optimizer_bytes = held_bytes(optimizer_state)
        self.by_dtype = {
            kind: held_bytes_by_dtype(arrays)
            for kind, arrays in zip(KINDS, (parameters, gradients, optimizer_state))
        }
        self.stage, self.world_size, self.numel = stage, world_size, numel
        self.optimizer, self.precision = optimizer, precision

    @classmethod
    def from_module(
        cls, module: Any, optimizer: Any, world_size: int = 1, optimizer_name: str = "adam"
    ) -> MemoryLedger:
        """The ledger of plain data parallel (stage 0): every rank holds everything."""
        params = list(module.parameters())
        return cls(
            [p.array for p in params],
            [p.grad.array for p in params if p.grad is not None],
            optimizer_arrays(optimizer),
            stage=0,
            world_size=world_size,
            numel=sum(int(p.array.size) for p in params),
            optimizer=optimizer_name,
        )

    @property
    def total_bytes(self) -> int:
        return self.parameter_bytes + self.gradient_bytes + self.optimizer_bytes

    @staticmethod
    def expected(  # noqa: N803
        stage: int, P: int, N: int, optimizer: str = "adam", precision: str = "fp32"
    ) -> dict[str, float]:
        """The formula's bytes per rank (see the module docstring) for ``P`` parameters:
        fp32 everywhere, or mixed precision (``"fp16"``/``"bf16"``: the paper's 2+2+K)."""
        if stage not in (0, 1, 2, 3):
            raise ConfigError(f"MemoryLedger.expected: stage must be 0..3, found {stage!r}")
        if optimizer not in OPTIMIZER_BYTES_PER_ELEMENT:
            raise ConfigError(
                f"MemoryLedger.expected: optimizer must be one of "
                f"{sorted(OPTIMIZER_BYTES_PER_ELEMENT)}, found {optimizer!r}"
            )
        if N < 1:
            raise ConfigError(f"MemoryLedger.expected: expected N >= 1, found {N}")
        if precision not in ("fp32", "fp16", "bf16"):
            raise ConfigError(
                f"MemoryLedger.expected: precision must be fp32, fp16 or bf16, found {precision!r}"
            )
        k = OPTIMIZER_BYTES_PER_ELEMENT[optimizer]
        w = 4  # bytes per parameter and per gradient element
        if precision != "fp32":  # 2-byte compute copies; the fp32 master joins the optimizer
            w, k = 2, k + 4
        out = {
            "parameters": w * P / N if stage >= 3 else w * P,
            "gradients": w * P / N if stage >= 2 else w * P,
            "optimizer": k * P / N if stage >= 1 else k * P,
        }
        out["total"] = sum(out.values())
        return out

    @staticmethod
    def expected_by_dtype(  # noqa: N803
        stage: int, P: int, N: int, optimizer: str = "adam", precision: str = "fp32"
    ) -> dict[str, dict[str, float]]:
        """:meth:`expected` per kind and dtype: ``{"parameters": {"float16": 2P}, ...}``."""
        out = MemoryLedger.expected(stage, P, N, optimizer, precision)
        low = {"fp16": "float16", "bf16": "bfloat16"}.get(precision, "float32")
        return {
            "parameters": {low: out["parameters"]},
            "gradients": {low: out["gradients"]},
            "optimizer": {"float32": out["optimizer"]} if out["optimizer"] else {},
        }

    @staticmethod
    def expected_activations(
        recompute: str,
        layers: int,
        layer_bytes: int,
        input_bytes: int,
        score_bytes: int = 0,
        segments: int | None = None,
    ) -> dict[str, int]:
        """Bytes saved for backward by ``layers`` identical blocks: at the end of forward, and at
        the step's peak (backward recomputes one segment while the rest is still held).

        ``layer_bytes`` (A): what one block saves, its input not included (a pre-norm
        Transformer layer's LayerNorm saves its normalised values, not ``x``);
        ``input_bytes`` (c): one block's input, what a checkpoint keeps; ``score_bytes`` (S):
        the s²-sized part of A (attention probabilities and dropout mask)::

            none        forward = peak = L·A                         O(L)
            selective   forward = peak = L·(A − S)                   the s² terms gone
            blocks      forward = L·c,  peak = L·c + A               one block at a time
            sequential  k = L // segments (the last segment is not checkpointed):
                        forward = peak = (segments − 1)·c + (L − (segments − 1)·k)·A
                        with segments = sqrt(L): about 2·sqrt(L) blocks, O(sqrt(L))
        """
        if recompute not in RECOMPUTE:
            raise ConfigError(
                f"recompute must be one of {', '.join(RECOMPUTE)}, found {recompute!r}"
            )
        L, A, c = layers, layer_bytes, input_bytes  # noqa: N806 - the formula's letters
        if recompute == "none":
            return {"forward": L * A, "peak": L * A}
        if recompute == "selective":
            return {"forward": L * (A - score_bytes), "peak": L * (A - score_bytes)}
        if recompute == "blocks":
            return {"forward": L * c, "peak": L * c + A}
        s = int(segments or 0)
        if not 1 <= s <= L:
            raise ConfigError(f"segments must be in [1, {L}] for {L} layers, found {segments!r}")
        k = L // s
        held = (s - 1) * c + (L - (s - 1) * k) * A
        return {"forward": held, "peak": held}

    def as_dict(self) -> dict[str, Any]:
        """Measured bytes, and the formula's for comparison (JSON-friendly)."""
        measured = {
            "parameters": self.parameter_bytes,
            "gradients": self.gradient_bytes,
            "optimizer": self.optimizer_bytes,
            "total": self.total_bytes,
        }
        formula = self.expected(
            self.stage, self.numel, self.world_size, self.optimizer, self.precision
        )
        by_dtype = self.expected_by_dtype(
            self.stage, self.numel, self.world_size, self.optimizer, self.precision
        )
        return {
            "precision": self.precision,
            "measured_by_dtype": self.by_dtype,
            "expected_by_dtype": by_dtype,
            "stage": self.stage,
            "world_size": self.world_size,
            "numel": self.numel,
            "optimizer": self.optimizer,
            "measured_bytes": measured,
            "expected_bytes": formula,
            **({} if self.activation_bytes is None else {
                "recompute": self.recompute, "activation_bytes": self.activation_bytes,
            }),
        }  # fmt: skip

    def table(self) -> str:
        """A small text table: measured bytes next to the formula's, per kind."""
        d = self.as_dict()
        lines = [
            f"ZeRO stage {self.stage}, N={self.world_size}, P={self.numel}, {self.optimizer}, "
            f"{self.precision}",
            f"{'kind':<12}{'measured B':>14}{'formula B':>14}",
        ]
        for kind in (*KINDS, "total"):
            lines.append(
                f"{kind:<12}{d['measured_bytes'][kind]:>14,}{d['expected_bytes'][kind]:>14,.0f}"
            )
        if self.activation_bytes is not None:  # not sharded by ZeRO, not in the total
            lines.append(
                f"activations {self.activation_bytes:>14,}  (--recompute {self.recompute})"
            )
        return "\n".join(lines)
