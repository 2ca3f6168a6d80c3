"""Device specs: what one accelerator (or this machine's CPU) can compute and move per second.

A :class:`Device` holds the numbers a roofline needs (:mod:`sparkgrad.simulate.roofline`):

- ``peaks``       dense peak FLOP/s per dtype: ``fp32`` (the vector units), ``tf32``, ``bf16``,
                  ``fp16`` (the tensor cores; dense, i.e. *without* the 2:4 sparsity that the
                  spec sheets' headline numbers double);
- ``memory_bandwidth``  bytes/s of device memory (HBM), ``memory_bytes`` its capacity;
- ``matmul_efficiency``  the share of the dtype's peak a large, well-shaped GEMM reaches
                  (cuBLAS on a GPU; NumPy's BLAS here) -- an *assumption* of the model, one
                  number per device, never fitted to a published result;
- ``memory_efficiency``  the share of the memory bandwidth a streaming kernel reaches;
- ``launch_overhead``  seconds every kernel (GPU) or array call (CPU) costs on top.

Published numbers (decimal units: 1 TFLOP/s = 1e12, 1 TB/s = 1e12 B/s):

- H100 SXM5 80 GB -- NVIDIA H100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h100):
  FP32 67 TFLOP/s, TF32 989 / BF16 1979 / FP16 1979 "with sparsity" -> dense 494.5 / 989.5 /
  989.5; HBM3 3.35 TB/s; 80 GB.
- H200 SXM 141 GB -- NVIDIA H200 datasheet (nvidia.com/en-us/data-center/h200): the same
  compute as H100 SXM (FP32 67, dense TF32 494.5, BF16/FP16 989.5); HBM3e 4.8 TB/s; 141 GB.
- A100 SXM4 80 GB -- NVIDIA A100 datasheet (nvidia.com/en-us/data-center/a100): FP32 19.5,
  TF32 156, BF16 312, FP16 312 TFLOP/s (dense); HBM2e 2,039 GB/s; 80 GB. (The Megatron-LM
  paper, arXiv:2104.04473, uses the same 312 TFLOP/s as the A100's 16-bit peak.)
- ``cpu`` -- *measured on this machine* by :func:`cpu_device`: a timed float32 matmul gives
  the fp32 peak (the CPU has no tensor cores: tf32/bf16/fp16 get the fp32 number, since
  NumPy computes them no faster), a timed large copy the memory bandwidth, a timed tiny
  NumPy call the per-call overhead.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sparkgrad.errors import ConfigError

DTYPES = ("fp32", "tf32", "bf16", "fp16")
BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2}
T = 1e12


@dataclass(frozen=True)
class Device:
    """One accelerator: dense peaks per dtype, memory bandwidth and size, and overheads."""

    name: str
    peaks: dict[str, float] = field(hash=False)
    memory_bandwidth: float
    memory_bytes: float
    matmul_efficiency: float = 0.8
    memory_efficiency: float = 0.85
    launch_overhead: float = 4e-6

    def __post_init__(self) -> None:
        missing = [d for d in DTYPES if d not in self.peaks]
        if missing:
            raise ConfigError(
                f"Device {self.name!r}: expected peaks for {DTYPES}, missing {missing}"
            )
        for key in ("matmul_efficiency", "memory_efficiency"):
            if not 0.0 < getattr(self, key) <= 1.0:
                raise ConfigError(f"Device {self.name!r}: expected 0 < {key} <= 1")
        if not (self.memory_bandwidth > 0 and self.memory_bytes > 0 and self.launch_overhead >= 0):
            raise ConfigError(f"Device {self.name!r}: expected positive bandwidth and memory")

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s for ``dtype`` (``fp32``, ``tf32``, ``bf16``, ``fp16``)."""
        if dtype not in self.peaks:
            raise ConfigError(f"unknown dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
        return self.peaks[dtype]


DEVICES: dict[str, Device] = {
    "h100": Device(
        "h100",
        {"fp32": 67 * T, "tf32": 494.5 * T, "bf16": 989.5 * T, "fp16": 989.5 * T},
        memory_bandwidth=3.35e12,
        memory_bytes=80e9,
    ),
    "h200": Device(
        "h200",
        {"fp32": 67 * T, "tf32": 494.5 * T, "bf16": 989.5 * T, "fp16": 989.5 * T},
        memory_bandwidth=4.8e12,
        memory_bytes=141e9,
    ),
    "a100": Device(
        "a100",
        {"fp32": 19.5 * T, "tf32": 156 * T, "bf16": 312 * T, "fp16": 312 * T},
        memory_bandwidth=2.039e12,
        memory_bytes=80e9,
    ),
}


def _best(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@functools.lru_cache(maxsize=1)
def cpu_device(n: int = 384, copy_bytes: int = 32 << 20, repeats: int = 5) -> Device:
    """This machine's CPU, measured once per process (about 0.1 s).

    fp32 peak = ``2 n^3`` FLOPs of a float32 ``n x n`` matmul over its best time (so the
    matmul efficiency is 1 by construction: the measurement *is* what a GEMM gets);
    bandwidth = 2 x ``copy_bytes`` (read + write) over the best time of ``np.copyto``;
    launch overhead = the best time of a one-element ``np.add``.
    """
    import numpy as np

    a = np.ones((n, n), dtype=np.float32)
    b = np.ones((n, n), dtype=np.float32)
    flops = 2.0 * n**3 / _best(lambda: a @ b, repeats)
    src = np.ones(copy_bytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    bandwidth = 2.0 * copy_bytes / _best(lambda: np.copyto(dst, src), repeats)
    one = np.ones(1, dtype=np.float32)
    overhead = _best(lambda: np.add(one, one), 50)
    return Device(
        "cpu",
        dict.fromkeys(DTYPES, flops),
        memory_bandwidth=bandwidth,
        memory_bytes=8e9,
        matmul_efficiency=1.0,
        memory_efficiency=1.0,
        launch_overhead=overhead,
    )


def get_device(name: str) -> Device:
    """The device called ``name`` (``h100``, ``h200``, ``a100``, or ``cpu``, measured here)."""
    key = name.strip().lower()
    if key == "cpu":
        return cpu_device()
    if key not in DEVICES:
        raise ConfigError(
            f"unknown device {name!r}: expected one of {', '.join([*DEVICES, 'cpu'])}"
        )
    return DEVICES[key]
