"""``Widths``: the bytes of one saved element, by the dtype an op runs in (fp32 or autocast).

:mod:`~sparkgrad.parallel.activation_memory` lists what each op keeps for backward; which
dtype it keeps it in follows from the autocast op lists
(:mod:`sparkgrad.autodiff.amp.op_lists`) and the dtype of what it is fed, and four numbers
say it for a whole model (the table in activation_memory's docstring derives them)::

    width     what                                          fp32   autocast (CPU)   ZeRO 16-bit
    stream σ  the parameters' dtype: embeddings, residual   4      4                2
              stream, LayerNorm, the embedding's dropout
    low λ     a lowered op's output and what the unlisted   4      2                2
              ops it feeds save (ReLU, GELU, dropout)
    copy κ    what a lowered op saves of its inputs         4      4                4
    weights ω per element of a lowered op's weight: its     0      4                4
              cast copy (an activation, not a parameter)

``κ = ω = 4`` because NumPy has no fast 16-bit matmul: autocast rounds the inputs to 16
bits and keeps them in float32 arrays (:mod:`sparkgrad.autodiff.amp.autocast_mode`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sparkgrad.errors import ConfigError

F32 = 4


@dataclass(frozen=True)
class Widths:
    """Bytes per saved element, by the dtype an op runs in (the module docstring's table).

    ``stream``: the parameters' dtype, in which the embeddings, the residual stream, the
    LayerNorms and their dropout run (float32; 2 under ZeRO's 16-bit parameters);
    ``low``: a lowered op's output and what the unlisted ops it feeds save (ReLU, GELU,
    dropout masks, ring attention): 2 under autocast; ``copy``: what a lowered op saves of
    its inputs and computes in (NumPy: float32 arrays holding 16-bit values, so 4);
    ``weights``: per element of a lowered op's weight, its saved cast copy (4 under
    autocast on the CPU: an activation, not a parameter; 0 in fp32, where the op saves the
    parameter itself).
    """

    stream: int = F32
    low: int = F32
    copy: int = F32
    weights: int = 0

    @property
    def autocast(self) -> bool:
        return self.weights > 0


FP32 = Widths()


def widths_of(precision: str, device: str = "cpu", sixteen_bit_params: bool = False) -> Widths:
    """The :class:`Widths` of ``--precision`` on ``device``; ``sixteen_bit_params``: ZeRO
    holds 16-bit parameters (fp16/bf16), so its stream is 16-bit too."""
    if precision == "fp32":
        return FP32
    if precision not in ("fp16", "bf16"):
        raise ConfigError(f"memory plan: precision must be fp32, fp16 or bf16, found {precision!r}")
    if device != "cpu":
        raise ConfigError(
            f"memory plan: the activations under --precision {precision} are derived for the "
            f"CPU's autocast (NumPy: 16-bit values in float32 copies); on {device} CuPy lowers "
            "natively (2-byte copies, LayerNorm and softmax in float32): no prediction there"
        )
    return Widths(stream=2 if sixteen_bit_params else F32, low=2, copy=F32, weights=F32)
