"""Mixed precision, shaped like ``torch.amp``: :class:`autocast` and :class:`GradScaler`.

Read :mod:`.op_lists` (which op runs in which precision, PyTorch's lists),
:mod:`.autocast_mode` (how the casting happens: differentiable casts at ``Function.apply``,
fp32 master weights, NumPy's emulated half precision) and :mod:`.grad_scaler` (loss scaling
for float16, agreed across ranks).
"""

from sparkgrad.autodiff.amp.autocast_mode import autocast, get_autocast_dtype, is_autocast_enabled
from sparkgrad.autodiff.amp.grad_scaler import GradScaler, OptState
from sparkgrad.autodiff.amp.op_lists import POLICIES, policy_of


def is_autocast_available(device_type: str) -> bool:
    """Whether autocast can run on ``device_type`` here (cpu always; cuda with CuPy + a GPU)."""
    from sparkgrad.autodiff.backend import cuda_is_available

    return device_type == "cpu" or (device_type == "cuda" and cuda_is_available())


__all__ = [
    "autocast",
    "GradScaler",
    "OptState",
    "POLICIES",
    "policy_of",
    "get_autocast_dtype",
    "is_autocast_enabled",
    "is_autocast_available",
]
