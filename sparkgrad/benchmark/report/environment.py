"""Where the numbers were measured: machine, library versions and the code's commit.

A benchmark number without its machine is a rumour. :func:`collect_environment` gathers
what a reader needs to judge (and reproduce) the report: CPU model and cores, memory, GPU,
the versions of Python, NumPy, CuPy, PyTorch, PySpark and sparkgrad, and the git commit of
the checkout (read from ``.git`` directly, no ``git`` process). Anything missing is
reported as ``"not installed"`` or ``"unknown"`` rather than failing the report.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from sparkgrad.autodiff.threads import usable_cores  # noqa: F401  (the report's core count)

PACKAGES = {
    "numpy": ("numpy",),
    "cupy": ("cupy", "cupy-cuda12x", "cupy-cuda11x", "cupy-cuda13x"),
    "torch": ("torch",),
    "pyspark": ("pyspark",),
    "sparkgrad": ("sparkgrad",),
}


def package_version(names: tuple[str, ...]) -> str:
    """The installed version of the first distribution found among ``names``."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, ``platform`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def memory_gib() -> float:
    """Total physical memory in GiB (nan when the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return float("nan")


def gpu_name() -> str:
    """The first CUDA GPU's name as CuPy sees it, or ``"none"``."""
    from sparkgrad.autodiff.backend import cuda_is_available, get_array_module

    if not cuda_is_available():
        return "none"
    cp = get_array_module("cuda")
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props.get("name", b"unknown")
    return name.decode() if isinstance(name, bytes) else str(name)


def git_commit(start: Path | None = None) -> str:
    """The commit checked out around ``start`` (this package), read from ``.git`` files."""
    here = (start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        git = folder / ".git"
        if git.is_file():  # a worktree: "gitdir: <path>"
            text = git.read_text(encoding="utf-8").strip()
            git = (folder / text.removeprefix("gitdir:").strip()).resolve()
        if not git.is_dir():
            continue
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref:"):
            return head  # detached HEAD: the commit itself
        ref = head.split(":", 1)[1].strip()
        loose = git / ref
        if loose.is_file():
            return loose.read_text(encoding="utf-8").strip()
        packed = git / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8").splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0]
        return "unknown"
    return "unknown (not a git checkout)"


def collect_environment(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """Every field of section 1 of the report, as plain strings and numbers."""
    env: dict[str, Any] = {
        "device": device,
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "threads": threads or usable_cores(),
        "memory_gib": round(memory_gib(), 1),
        "gpu": gpu_name(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    env.update({name: package_version(dists) for name, dists in PACKAGES.items()})
    env["git_commit"] = git_commit()
    if device == "cuda":  # a rehearsal on the CPU stand-in of CuPy measures no GPU
        from sparkgrad.benchmark.torch_device import cupy_is_stand_in

        env["cupy_stand_in"] = cupy_is_stand_in()
    return env
