"""``--precision`` names and the 16-bit dtype each stands for: one table for every reader.

``fp32`` computes in float32 throughout; ``fp16`` and ``bf16`` name the low precision that
autocast computes in (and that ZeRO stores its parameters and gradients in, beside fp32
master weights). bfloat16 comes from the ``ml_dtypes`` package on NumPy.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff import dtypes
from sparkgrad.errors import ConfigError

PRECISIONS = ("fp32", "fp16", "bf16")


def sixteen_bit_dtype(precision: str, who: str = "--precision") -> Any:
    """float16 for ``"fp16"``, bfloat16 for ``"bf16"``, None for ``"fp32"``; anything else,
    or bf16 without ml_dtypes, is a ConfigError that starts with ``who``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"{who} must be one of {', '.join(PRECISIONS)}, found {precision!r}")
    if precision == "fp32":
        return None
    if precision == "fp16":
        return dtypes.float16
    bfloat16 = getattr(dtypes, "bfloat16", None)
    if bfloat16 is None:
        raise ConfigError(f"{who} bf16 needs the ml_dtypes package: pip install ml_dtypes")
    return bfloat16
