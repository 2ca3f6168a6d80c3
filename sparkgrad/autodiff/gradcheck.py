"""Check analytic gradients against central finite differences, in float64.

For each input element x_i:  dL/dx_i ≈ (L(x + h·e_i) - L(x - h·e_i)) / 2h,  where
L = Σ fn(inputs) · v with a fixed random v, so one backward checks the whole Jacobian
against random directions. The error is O(h²), which float64 keeps far below the tolerance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import to_numpy
from sparkgrad.autodiff.grad_mode import no_grad
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import GradError


class GradcheckError(GradError, AssertionError):
    """Analytic and numerical gradients disagree (the message shows the worst element)."""


def _outputs(fn: Callable[..., Any], inputs: Sequence[Tensor]) -> list[Tensor]:
    out = fn(*inputs)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def gradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Tensor],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    seed: int = 0,
) -> bool:
    """True when ``fn``'s backward matches finite differences for every input that requires grad.

    Inputs should be float64 (a float32 check is refused: its rounding hides real errors).
    On failure raises :class:`GradcheckError` naming the input, the element, both values.
    """
    inputs = list(inputs)
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad and t.dtype != np.float64:
            raise GradError(f"gradcheck needs float64 inputs; input {i} is {t.dtype}")
    rng = np.random.default_rng(seed)
    with no_grad():
        probes = [rng.standard_normal(o.shape) for o in _outputs(fn, inputs)]

    def scalar() -> Tensor:
        total = None
        for out, v in zip(_outputs(fn, inputs), probes):
            term = (out * Tensor(v, dtype=out.dtype, device=out.device)).sum()
            total = term if total is None else total + term
        return total

    for t in inputs:
        if isinstance(t, Tensor):
            t.grad = None
    scalar().backward()

    for i, t in enumerate(inputs):
        if not (isinstance(t, Tensor) and t.requires_grad):
            continue
        analytic = (
            np.zeros(t.shape) if t.grad is None else to_numpy(t.grad.array).astype(np.float64)
        )
        numeric = np.zeros(t.shape)
        flat = t.array.reshape(-1)
        with no_grad():
            for k in range(flat.size):
                orig = float(flat[k])
                flat[k] = orig + eps
                up = float(scalar().item())
                flat[k] = orig - eps
                down = float(scalar().item())
                flat[k] = orig
                numeric.reshape(-1)[k] = (up - down) / (2 * eps)
        err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if err.size and err.max() > 0:
            k = int(err.argmax())
            idx = np.unravel_index(k, t.shape)
            msg = (
                f"gradcheck failed for input {i} (shape {t.shape}) "
                f"at element {tuple(map(int, idx))}: "
                f"analytic {analytic.reshape(-1)[k]:.8g} vs numeric {numeric.reshape(-1)[k]:.8g} "
                f"(atol={atol}, rtol={rtol}); worst |diff| overall "
                f"{np.abs(analytic - numeric).max():.3g}"
            )
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True
