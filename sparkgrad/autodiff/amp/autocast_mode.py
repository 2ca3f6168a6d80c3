"""``sg.autocast``: run matmul-like ops in float16/bfloat16, keep the fragile ones in float32.

::

    with sg.autocast(device_type="cpu", dtype=sg.bfloat16):
        logits = model(x)                 # Linear/matmul/conv/attention: bfloat16
        loss = F.cross_entropy(logits, y)  # float32 (on the float32 list)
    loss.backward()                       # the weights' grads are float32, like the weights

How it works. ``Function.apply`` reads one flag (:mod:`sparkgrad.autodiff.autocast_state`);
while an autocast region is open it asks :func:`_dispatch`, which looks the op's class up
in :mod:`.op_lists` (PyTorch's lists, per device) and casts the op's eligible inputs with
*differentiable* casts before running it. Because the casts are ops in the graph, the
gradient of a float32 weight comes back float32 through the cast's backward, and the
weights themselves stay float32: they are the "master weights", and the low-precision
copy of each is made once per region (a cache, as PyTorch's ``cache_enabled``).

**Lowering on NumPy is emulated, honestly.** NumPy has no fast half-precision matmul
(float16 ``@`` runs a plain loop, ~150x slower than BLAS; ``ml_dtypes`` bfloat16 ``@``
answers float32). So on the CPU a lowered op gets its inputs *rounded* to the low dtype
(:class:`RoundTo`: float32 arrays holding exactly representable values), computes in
float32 (what a tensor core or PyTorch's CPU kernel does: low-precision inputs, float32
accumulation) and its output is cast to the low dtype. Values and dtypes match PyTorch's;
the speed is float32's plus the casts, and the inputs the op saves for backward are
float32. On CuPy, float16 runs natively (cuBLAS); CuPy has no bfloat16, which is a clear
error when the region opens.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from sparkgrad.autodiff import autocast_state
from sparkgrad.autodiff.amp.op_lists import BANNED, BANNED_MESSAGE, FP32, LOWER, POLICIES
from sparkgrad.autodiff.backend import device_of, is_floating, normalize_device
from sparkgrad.autodiff.function import Context, Function, Node
from sparkgrad.autodiff.ops.shape import Cast
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import DeviceError

__all__ = ["autocast", "is_autocast_enabled", "get_autocast_dtype", "RoundTo"]

_DEFAULT_DTYPE = {"cpu": "bfloat16", "cuda": "float16"}  # torch.get_autocast_dtype's defaults
_F32 = np.dtype(np.float32)


class RoundTo(Function):
    """z = a rounded to a lower precision, kept in a's dtype;  dL/da = g rounded the same way
    (the gradient of a low-precision copy is itself low precision)"""

    @staticmethod
    def forward(ctx: Context, a: Any, dtype: Any) -> Any:
        ctx.dtype = dtype
        return a.astype(dtype).astype(a.dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        return grad.astype(ctx.dtype).astype(grad.dtype)


class _Region:
    """One device's autocast state on one thread: the dtype, the cast cache, NumPy or not."""

    __slots__ = ("dtype", "cache", "emulate")

    def __init__(self, dtype: np.dtype, cache: dict | None, emulate: bool) -> None:
        self.dtype, self.cache, self.emulate = dtype, cache, emulate


def _low_dtype(dtype: Any, device_type: str) -> np.dtype | None:
    """The autocast dtype as a numpy dtype; None (with PyTorch's warning) if unsupported."""
    from sparkgrad.autodiff.dtypes import as_dtype

    d = as_dtype(dtype)
    if d.name not in ("float16", "bfloat16"):
        warnings.warn(
            f"In {device_type.upper()} autocast, but the target dtype {d.name} is not "
            "supported (expected sg.float16 or sg.bfloat16). Disabling autocast.",
            stacklevel=3,
        )
        return None
    if device_type == "cuda" and d.name == "bfloat16":
        raise DeviceError(
            "autocast(device_type='cuda', dtype=sg.bfloat16): CuPy has no bfloat16 arrays, "
            "so bfloat16 runs only on the CPU (through ml_dtypes); use dtype=sg.float16 on cuda"
        )
    return d


class autocast:  # noqa: N801 - PyTorch's name
    """``with sg.autocast(device_type, dtype=None, enabled=True, cache_enabled=True):``

    Also a decorator (``@sg.autocast("cpu")``). ``dtype`` defaults to bfloat16 on the CPU
    and float16 on CUDA, as PyTorch. Regions nest; ``enabled=False`` switches autocast off
    inside an enclosing region. The state is per thread and per device: a CPU region does
    nothing to CUDA tensors.
    """

    def __init__(
        self,
        device_type: str,
        dtype: Any = None,
        enabled: bool = True,
        cache_enabled: bool | None = None,
    ) -> None:
        if not isinstance(device_type, str):
            raise ValueError(
                f"Expected `device_type` of type `str`, got: `{type(device_type).__name__}`"
            )
        self.device = normalize_device(device_type)
        if dtype is None:
            from sparkgrad.autodiff import dtypes

            dtype = getattr(dtypes, _DEFAULT_DTYPE[self.device])
        self.fast_dtype = dtype
        self._enabled = bool(enabled)
        self._cache_enabled = True if cache_enabled is None else bool(cache_enabled)

    def __enter__(self) -> autocast:
        low = _low_dtype(self.fast_dtype, self.device) if self._enabled else None
        previous = getattr(autocast_state.local, self.device, None)
        self._previous = previous
        region = None
        if low is not None:
            cache = previous.cache if previous is not None else None
            if cache is None and self._cache_enabled:
                cache = {}
            region = _Region(low, cache if self._cache_enabled else None, self.device == "cpu")
        setattr(autocast_state.local, self.device, region)
        autocast_state.enter()
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(autocast_state.local, self.device, self._previous)
        autocast_state.leave()

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with autocast(self.device, self.fast_dtype, self._enabled, self._cache_enabled):
                return fn(*args, **kwargs)

        return wrapper


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    """Whether an enabled autocast region for ``device_type`` is open on this thread."""
    return getattr(autocast_state.local, normalize_device(device_type), None) is not None


def get_autocast_dtype(device_type: str) -> Any:
    """The dtype of the open region (or the device's default when none is open)."""
    region = getattr(autocast_state.local, normalize_device(device_type), None)
    if region is not None:
        return region.dtype.type
    from sparkgrad.autodiff import dtypes

    return getattr(dtypes, _DEFAULT_DTYPE[normalize_device(device_type)])


# ---- the dispatch Function.apply calls while a region is open ---------------------------------
def _eligible(a: Any) -> bool:
    return isinstance(a, Tensor) and is_floating(a.dtype) and a.dtype != np.float64


def _lowered(t: Tensor, region: _Region) -> Tensor:
    """``t`` as the lowered op consumes it: low dtype (CuPy) or fp32 rounded to it (NumPy)."""
    cache = region.cache
    cacheable = cache is not None and t.requires_grad and t._node is None  # a weight
    if cacheable:
        hit = cache.get(id(t))
        if hit is not None and hit[0] is t and hit[1] == region.dtype:
            return hit[2]
    if not region.emulate:
        out = Cast.apply(t, dtype=region.dtype)
    elif t.dtype == region.dtype:
        out = Cast.apply(t, dtype=_F32)  # exact: every low value is a float32 value
    else:
        src = t if t.dtype == _F32 else Cast.apply(t, dtype=_F32)
        out = RoundTo.apply(src, dtype=region.dtype)
    if cacheable:
        cache[id(t)] = (t, region.dtype, out)
        _keep(out, t)
    return out


class _KeptNode(Node):
    """A cached weight cast's node: it saved nothing (only a dtype), so a backward leaves it
    runnable -- PyTorch's ``ToCopyBackward`` likewise saves no tensors, and a second,
    separate backward through the same cached copy works (the micro-batches of a pipeline,
    each with its own ``backward()`` in one autocast region)."""

    __slots__ = ()

    def release(self) -> None:
        pass


def _keep(out: Tensor, weight: Tensor) -> None:
    """Make the cast nodes between ``weight`` (a leaf) and its cached copy ``out`` kept."""
    node = out._node
    while isinstance(node, Node) and node is not weight:
        node.__class__ = _KeptNode
        node = node.edges[0]


def _widest(args: tuple) -> Any:
    dtypes = {np.dtype(a.dtype) for a in args if _eligible(a)}
    if len(dtypes) <= 1:
        return None
    return _F32  # float16 + bfloat16, or a low dtype + float32: float32 holds both


def _dispatch(cls: type, args: tuple, kwargs: dict) -> Any:
    local = autocast_state.local
    if getattr(local, "busy", False):
        return None
    first = next((a for a in args if isinstance(a, Tensor)), None)
    if first is None:
        return None
    device = device_of(first.array)
    region = getattr(local, device, None)
    if region is None:
        return None
    policy = POLICIES[device].get(cls.__name__)
    if policy is None:
        return None
    if policy == BANNED:
        raise RuntimeError(BANNED_MESSAGE)
    if policy == LOWER:
        args = tuple(_lowered(a, region) if _eligible(a) else a for a in args)
    else:
        target = _F32 if policy == FP32 else _widest(args)
        if target is None:
            return None
        args = tuple(
            Cast.apply(a, dtype=target) if _eligible(a) and a.dtype != target else a for a in args
        )
    local.busy = True
    try:
        out = cls.apply(*args, **kwargs)
    finally:
        local.busy = False
    if policy == LOWER and out.dtype != region.dtype and _eligible(out):
        out = Cast.apply(out, dtype=region.dtype)  # NumPy computed in float32: round once
    return out


autocast_state.dispatch = _dispatch
