"""Per-rank memory: the model states of the ZeRO paper, plus the activations in flight.

Model states (Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion
Parameter Models", SC'20, section 3.1 and Figure 1): with mixed-precision Adam, each of the
``P`` parameters costs 2 bytes of 16-bit weight, 2 of 16-bit gradient and ``K = 12`` of
optimizer state (fp32 master weight, momentum, variance): ``(2 + 2 + K) P = 16 P``. ZeRO
shards over the ``dp`` data-parallel ranks: stage 1 the optimizer state
(``2P + 2P + K P / dp``), stage 2 also the gradients (``2P + (2 + K) P / dp``), stage 3 also
the weights (``(2 + 2 + K) P / dp``). In fp32 (no mixed precision) weights and gradients
are 4 bytes each and ``K = 8`` (momentum, variance).

Activations (Korthikanti et al., "Reducing Activation Recomputation in Large Transformer
Models", arXiv:2205.05198, eq. 2): one layer keeps ``s b h (10 + 24/t + 5 a s / (h t))``
bytes for a micro-batch with 16-bit activations and tensor parallelism ``t`` (``s`` the
tokens on this rank); full recomputation keeps only each layer's ``2 s b h`` input. A
pipeline stage holds its layers' activations for every micro-batch in flight: ``m`` under
GPipe, ``min(p - stage, m)`` under 1F1B.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparkgrad.parallel.pipeline.schedules import SCHEDULES, peak_live


@dataclass(frozen=True)
class Memory:
    """Bytes on one rank, by what holds them."""

    weights: float
    gradients: float
    optimizer: float
    activations: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations


def model_states(params: float, dp: int, zero: int, mixed: bool) -> Memory:
    """Weights, gradients and optimizer state of ``params`` parameters on one rank."""
    w = g = 2.0 if mixed else 4.0
    k = 12.0 if mixed else 8.0
    return Memory(
        weights=w * params / (dp if zero >= 3 else 1),
        gradients=g * params / (dp if zero >= 2 else 1),
        optimizer=k * params / (dp if zero >= 1 else 1),
        activations=0.0,
    )


def layer_activation_bytes(
    tokens: float, h: int, heads: int, context: int, tp: int, recompute: bool, element_bytes: int
) -> float:
    """Activation bytes one layer keeps for one micro-batch (Korthikanti et al. eq. 2)."""
    if recompute:
        return tokens * h * element_bytes
    per_token = h * (10 + 24 / tp + 5 * heads * context / (h * tp))
    return tokens * per_token * element_bytes / 2  # the formula counts 16-bit activations


def in_flight(schedule: str, stage: int, stages: int, micro_batches: int) -> int:
    """Micro-batches whose activations a stage holds at its peak."""
    return peak_live(SCHEDULES[schedule](stage, stages, micro_batches))
