"""``cupy.cuda.runtime`` of the stand-in: the queries the project makes, answered plainly."""

from __future__ import annotations

import os
from typing import Any

from .. import _ledger

_current = [0]
_FAKE_VERSION = 13000  # reported as CUDA 13.0


class CUDARuntimeError(RuntimeError):
    """CuPy's error type for a failed CUDA runtime call."""


def getDeviceCount() -> int:  # noqa: N802 - CuPy's name
    return int(os.environ.get("SPARKGRAD_FAKE_CUDA_DEVICES", "1"))


def _check(device: int) -> int:
    if not 0 <= int(device) < getDeviceCount():
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
    return int(device)


def getDevice() -> int:  # noqa: N802
    return _current[0]


def setDevice(device: int) -> None:  # noqa: N802
    _current[0] = _check(device)


def deviceSynchronize() -> None:  # noqa: N802
    _ledger.record("sync", "runtime.deviceSynchronize()")


def getDeviceProperties(device: int) -> dict[str, Any]:  # noqa: N802
    _check(device)
    return {
        "name": b"sparkgrad fake CUDA device (NumPy)",
        "totalGlobalMem": 16 * 2**30,
        "major": 9,
        "minor": 0,
        "multiProcessorCount": 1,
    }


def memGetInfo() -> tuple[int, int]:  # noqa: N802
    return 16 * 2**30, 16 * 2**30


def runtimeGetVersion() -> int:  # noqa: N802
    return _FAKE_VERSION


def driverGetVersion() -> int:  # noqa: N802
    return _FAKE_VERSION
