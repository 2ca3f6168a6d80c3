"""Plain-words verdicts: turn "sparkgrad / PyTorch" ratios into "faster by 12%" or "2.4× slower".

Every ratio in the report is **sparkgrad over PyTorch**, of a cost (seconds, bytes), so
below 1 is better for sparkgrad. The wording:

- ratio < 0.95: ``faster by X%`` where X = (1 - ratio) · 100, the share of PyTorch's time
  that sparkgrad saves;
- 0.95 ≤ ratio ≤ 1.05: ``on par`` (closer than run-to-run noise on a shared machine);
- 1.05 < ratio < 2: ``slower by X%`` where X = (ratio - 1) · 100;
- ratio ≥ 2: ``N.N× slower``, easier to read than "slower by 240%".

The same rule reads for memory with the words ``smaller``/``larger``.
"""

from __future__ import annotations

import math

ON_PAR = 0.05  # within ±5% counts as "on par"


def verdict(ratio: float, better: str = "faster", worse: str = "slower") -> str:
    """The verdict for ``ratio`` = sparkgrad cost / PyTorch cost (see the module docstring)."""
    if ratio is None or not math.isfinite(ratio) or ratio < 0:
        return "n/a"
    if ratio < 1 - ON_PAR:
        return f"{better} by {(1 - ratio) * 100:.0f}%"
    if ratio <= 1 + ON_PAR:
        return "on par"
    if ratio < 2:
        return f"{worse} by {(ratio - 1) * 100:.0f}%"
    return f"{ratio:.1f}× {worse}"


def geometric_mean(values: list[float]) -> float:
    """The mean of ratios that treats 2× and 0.5× symmetrically (nan for an empty list)."""
    good = [v for v in values if v and math.isfinite(v) and v > 0]
    if not good:
        return math.nan
    return math.exp(sum(math.log(v) for v in good) / len(good))
