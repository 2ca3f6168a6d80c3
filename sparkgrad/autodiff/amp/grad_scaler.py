"""``GradScaler``: loss scaling for float16 training, step for step as ``torch.amp.GradScaler``.

float16 has 5 exponent bits: gradients below ~6e-8 flush to zero. Multiplying the loss by
a large ``scale`` (2¹⁶ to start) shifts every gradient up into range; before the optimizer
runs, ``unscale_`` divides them back (in float32: the weights and their grads are fp32
master copies) and checks them. One inf or NaN anywhere means the scale was too large:
the step is **skipped** and the scale halves (``backoff_factor``). After
``growth_interval`` clean steps in a row the scale doubles (``growth_factor``). So the
scale hovers just under the largest value that does not overflow::

    scaler = sg.amp.GradScaler()
    for x, y in loader:
        opt.zero_grad()
        with sg.autocast("cpu", dtype=sg.float16):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)          # unscale_ + inf check + opt.step() unless a grad overflowed
        scaler.update()           # backoff or growth

bfloat16 has float32's exponent range and needs no scaler (PyTorch recommends none).

**Across ranks** (a sparkgrad addition, as FSDP's ``ShardedGradScaler``): pass
``process_group=`` (a ``sparkgrad.distributed`` group or a ``ProcessGroup``) and the
found-inf flag is summed over the group with one all_reduce before the step is decided,
so a rank whose gradient shard overflowed makes *every* rank skip — under ZeRO each rank
sees only its shard, and a rank stepping alone would split the replicas for good.

Differences from PyTorch: the scale is a NumPy float32 scalar (PyTorch's is a one-element
float32 tensor, so the arithmetic is the same), and there is no sparse-gradient path.
"""

from __future__ import annotations

import enum
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module, to_numpy
from sparkgrad.autodiff.grad_mode import no_grad
from sparkgrad.autodiff.tensor import Tensor

__all__ = ["GradScaler", "OptState"]


class OptState(enum.Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


def _fresh_state() -> dict[str, Any]:
    return {"stage": OptState.READY, "found_inf": None}


class GradScaler:
    """Dynamic loss scaling (see the module docstring); PyTorch's arguments and defaults,
    except ``device="cpu"`` and the extra ``process_group``."""

    def __init__(
        self,
        device: str = "cpu",
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        enabled: bool = True,
        process_group: Any = None,
    ) -> None:
        self._device, self._enabled = device, bool(enabled)
        self.process_group = process_group
        if device == "cuda" and self._enabled:
            from sparkgrad.autodiff.backend import cuda_is_available

            if not cuda_is_available():
                warnings.warn(
                    "sparkgrad.amp.GradScaler is enabled, but CUDA is not available.  Disabling.",
                    stacklevel=2,
                )
                self._enabled = False
        if self._enabled:
            if growth_factor <= 1.0:
                raise AssertionError("The growth factor must be > 1.0.")
            if backoff_factor >= 1.0:
                raise AssertionError("The backoff factor must be < 1.0.")
        self._init_scale = init_scale
        self._scale: np.float32 | None = None  # made on the first scale(), as PyTorch
        self._growth_factor, self._backoff_factor = growth_factor, backoff_factor
        self._growth_interval = growth_interval
        self._init_growth_tracker = 0
        self._growth_tracker: int | None = None
        self._per_optimizer_states: dict[int, dict[str, Any]] = {}
        self.skipped_steps = 0  # steps not taken because a gradient was inf/NaN (sparkgrad)

    # ---- the four calls of a step ---------------------------------------------------------
    def scale(self, outputs: Any) -> Any:
        """``outputs * scale`` (a tensor, or any nesting of lists/tuples of tensors)."""
        if not self._enabled:
            return outputs
        self._lazy_init_scale_growth_tracker()
        if isinstance(outputs, Tensor):
            return outputs * Tensor._wrap(array_module(outputs.array).asarray(self._scale))
        if isinstance(outputs, Iterable):
            scaled = [self.scale(o) for o in outputs]
            return type(outputs)(scaled) if isinstance(outputs, (list, tuple)) else iter(scaled)
        raise ValueError("outputs must be a Tensor or an iterable of Tensors")

    def unscale_(self, optimizer: Any) -> None:
        """Divide ``optimizer``'s gradients by the scale, in place, and note any inf/NaN."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("unscale_")
        state = self._state(optimizer)
        if state["stage"] is OptState.UNSCALED:
            raise RuntimeError(
                "unscale_() has already been called on this optimizer since the last update()."
            )
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        inv_scale = np.float32(np.float64(1.0) / np.float64(self._scale))  # as torch: via fp64
        state["found_inf"] = self._unscale_grads(optimizer, inv_scale)
        state["stage"] = OptState.UNSCALED

    def step(self, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        """``optimizer.step()`` unless a gradient is inf/NaN (on any rank of the group)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scale_growth_tracker("step")
        state = self._state(optimizer)
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] is OptState.READY:
            self.unscale_(optimizer)
        retval = None
        if not state["found_inf"]:
            retval = optimizer.step(*args, **kwargs)
        else:
            self.skipped_steps += 1
        state["stage"] = OptState.STEPPED
        return retval

    def update(self, new_scale: float | None = None) -> None:
        """Back off (an inf was found this step) or count towards growth; then reset."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("update")
        if new_scale is not None:
            if isinstance(new_scale, Tensor):
                if new_scale.numel() != 1 or new_scale.requires_grad:
                    raise AssertionError(
                        "new_scale should be a float or a 1-element tensor with "
                        "requires_grad=False."
                    )
                new_scale = float(new_scale.item())
            self._scale = np.float32(new_scale)
        else:
            found = [s["found_inf"] for s in self._per_optimizer_states.values()]
            found = [f for f in found if f is not None]
            if not found:
                raise AssertionError("No inf checks were recorded prior to update.")
            self._update_scale(sum(found) > 0)
        self._per_optimizer_states = {}

    # ---- reading and saving ------------------------------------------------------------------
    def get_scale(self) -> float:
        """The current scale as a Python float (1.0 when disabled)."""
        if not self._enabled:
            return 1.0
        return float(self._init_scale if self._scale is None else self._scale)

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = new_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = new_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = new_interval

    def is_enabled(self) -> bool:
        return self._enabled

    def _get_growth_tracker(self) -> int:
        if not self._enabled:
            return 0
        return self._init_growth_tracker if self._growth_tracker is None else self._growth_tracker

    def state_dict(self) -> dict[str, Any]:
        """``scale``, the factors, the interval and ``_growth_tracker`` ({} when disabled)."""
        if not self._enabled:
            return {}
        return {
            "scale": self.get_scale(),
            "growth_factor": self._growth_factor,
            "backoff_factor": self._backoff_factor,
            "growth_interval": self._growth_interval,
            "_growth_tracker": self._get_growth_tracker(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError(
                "The source state dict is empty, possibly because it was saved "
                "from a disabled instance of GradScaler."
            )
        self._init_scale = float(state_dict["scale"])
        if self._scale is not None:
            self._scale = np.float32(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._init_growth_tracker = int(state_dict["_growth_tracker"])
        if self._growth_tracker is not None:
            self._growth_tracker = int(state_dict["_growth_tracker"])

    # ---- internals ---------------------------------------------------------------------------
    def _lazy_init_scale_growth_tracker(self) -> None:
        """Start the scale at ``init_scale`` (PyTorch does this on the first ``scale()``)."""
        if self._scale is None:
            self._scale = np.float32(self._init_scale)
            self._growth_tracker = self._init_growth_tracker

    def _state(self, optimizer: Any) -> dict[str, Any]:
        return self._per_optimizer_states.setdefault(id(optimizer), _fresh_state())

    def _check_scale_growth_tracker(self, funcname: str) -> None:
        if self._scale is None:
            raise AssertionError(
                f"Attempted {funcname} but _scale is None.  This may indicate your script "
                "did not use scaler.scale(loss or outputs) earlier in the iteration."
            )

    def _unscale_grads(self, optimizer: Any, inv_scale: np.float32) -> bool:
        """Grads *= inv_scale in place; True if any was inf/NaN here or on another rank."""
        found = False
        with no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    if p.grad.dtype == np.float16:
                        raise ValueError("Attempting to unscale FP16 gradients.")
                    g = p.grad.array
                    xp = array_module(g)
                    if not found and not bool(xp.isfinite(g).all()):
                        found = True
                    g *= inv_scale.astype(g.dtype)
        return self._agreed(found)

    def _agreed(self, found: bool) -> bool:
        """The flag summed over the process group: one all_reduce of one float."""
        if self.process_group is None:
            return found
        pg = getattr(self.process_group, "pg", self.process_group)
        flag = np.array([1.0 if found else 0.0], dtype=np.float32)
        pg.all_reduce(flag)
        return bool(to_numpy(flag)[0] > 0)

    def _update_scale(self, found_inf: bool) -> None:
        """PyTorch's ``_amp_update_scale_``: the scale and growth tracker after one step."""
        if found_inf:
            self._scale = np.float32(self._scale * np.float32(self._backoff_factor))
            self._growth_tracker = 0
            return
        successful = self._growth_tracker + 1
        if successful == self._growth_interval:
            grown = np.float32(self._scale * np.float32(self._growth_factor))
            if np.isfinite(grown):
                self._scale = grown
            self._growth_tracker = 0
        else:
            self._growth_tracker = successful
