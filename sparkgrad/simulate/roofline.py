"""The roofline: an op takes as long as its FLOPs or its bytes need, whichever is slower.

Williams, Waterman & Patterson, "Roofline: an insightful visual performance model for
multicore architectures" (CACM 2009). For one op on one device::

    compute = FLOPs / (peak[dtype] * matmul_efficiency)        tensor-core work (matmuls)
    memory  = bytes / (memory_bandwidth * memory_efficiency)   every byte read or written once
    time    = max(compute, memory) + launch_overhead

An op whose *arithmetic intensity* ``FLOPs / bytes`` is above the device's ridge point
``peak / bandwidth`` is compute-bound, below it memory-bound. A (4096 x 4096) @ (4096 x 4096)
bf16 matmul does 2 * 4096^3 = 137 GFLOP on 3 * 32 MiB = 101 MB: intensity 1365 FLOP/B, far
above an H100's 989.5e12 / 3.35e12 = 295, so compute-bound; a LayerNorm does ~8 FLOPs per
4 bytes moved and is memory-bound on every device.

Only matmuls run on the tensor cores at ``peak[dtype]``; elementwise ops (``kind`` other than
``"matmul"``) run on the vector units at the fp32 peak, which hardly matters since they are
memory-bound anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparkgrad.errors import ConfigError
from sparkgrad.simulate.devices import Device


@dataclass(frozen=True)
class OpCost:
    """One op's predicted time and why: ``bound`` is ``"compute"`` or ``"memory"``."""

    seconds: float
    compute_seconds: float
    memory_seconds: float
    bound: str


def ridge_point(device: Device, dtype: str) -> float:
    """FLOPs per byte above which a matmul is compute-bound: peak / bandwidth (both derated)."""
    return (device.peak(dtype) * device.matmul_efficiency) / (
        device.memory_bandwidth * device.memory_efficiency
    )


def op_cost(
    flops: float, nbytes: float, device: Device, dtype: str, kind: str = "matmul"
) -> OpCost:
    """The roofline time of one op of ``flops`` FLOPs moving ``nbytes`` bytes on ``device``."""
    if flops < 0 or nbytes < 0:
        raise ConfigError(f"op_cost: expected flops, bytes >= 0, found {flops}, {nbytes}")
    if kind == "matmul":
        rate = device.peak(dtype) * device.matmul_efficiency
    else:
        rate = device.peak("fp32") * device.matmul_efficiency
    compute = flops / rate
    memory = nbytes / (device.memory_bandwidth * device.memory_efficiency)
    bound = "compute" if compute >= memory else "memory"
    return OpCost(max(compute, memory) + device.launch_overhead, compute, memory, bound)


def matmul_cost(m: int, k: int, n: int, device: Device, dtype: str) -> OpCost:
    """(m x k) @ (k x n): ``2 m k n`` FLOPs, and A, B, C each read or written once."""
    size = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2}[dtype]
    return op_cost(2.0 * m * k * n, size * (m * k + k * n + m * n), device, dtype)
