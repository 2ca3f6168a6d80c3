"""Peak memory of training steps, each engine measured alone in a fresh process.

Why a fresh process per engine: resident memory is per process, and a process that has
imported PyTorch (hundreds of MiB of libraries) or already run the other engine cannot say
which engine a page belongs to. So :func:`measure` starts ``python -m
sparkgrad.benchmark.report.memory`` once per engine; the child builds the model, the
optimizer and one batch (the *setup*), then runs ``steps`` training steps and prints one
JSON line. (``psutil`` is not needed: Linux's ``/proc`` says it all.)

What the child reports, CPU (``device="cpu"``):

- ``setup_mib``: resident memory (RSS) after imports and setup, before the first step;
- ``peak_mib``: the highest RSS during the steps. On Linux the peak counter (``VmHWM``) is
  reset after setup (``echo 5 > /proc/self/clear_refs``), so it covers the steps only;
  where that is not possible it is ``ru_maxrss`` of the whole process (``peak_scope`` says
  which) — then an import peak can hide in it and ``step_mib`` is an upper bound;
- ``step_mib = peak_mib - setup_mib``: what training adds on top of the loaded process —
  activations, gradients, optimizer state, temporaries, and whatever a library allocates
  on its first step (PyTorch's autograd engine and allocator warm up there). This is the
  number to compare: ``setup_mib`` mostly measures the size of the libraries (PyTorch's is
  far larger, and its process also imports sparkgrad to build the same weights).

GPU (``device="cuda"``): device memory held by each library's caching allocator, the
memory the GPU cannot give to anyone else. PyTorch: ``torch.cuda.max_memory_reserved()``
after ``reset_peak_memory_stats()``; CuPy: the default memory pool's ``total_bytes()``
(a pool only grows, so its size after the steps is its peak). ``setup_mib`` is the same
reading before the first step. Both are synchronised before they are read.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from sparkgrad.errors import SparkgradError

MiB = 1 << 20


@dataclass
class MemoryResult:
    """One engine's memory for one model, batch and optimizer."""

    engine: str
    device: str
    hidden: tuple[int, ...]
    batch: int
    optimizer: str
    setup_mib: float
    peak_mib: float
    step_mib: float
    peak_scope: str  # "steps" (peak reset after setup) or "process" (whole-process peak)


def _status_kib(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _cpu_reading(reset: bool) -> tuple[float, str]:
    """(peak RSS in MiB, scope) after the steps."""
    hwm = _status_kib("VmHWM")
    if reset and hwm is not None:
        return hwm / 1024, "steps"
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return (maxrss / MiB if sys.platform == "darwin" else maxrss / 1024), "process"


def _build(engine: str, hidden: tuple[int, ...], batch: int, optimizer: str, device: str) -> tuple:
    """The step closure of ``engine`` on one random batch (same seed for both engines)."""
    rng = np.random.default_rng(0)
    x = rng.random((batch, 784), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    if engine == "sparkgrad":
        import sparkgrad as sg
        from sparkgrad.engine.model import build_mlp, build_optimizer

        model = build_mlp(hidden, seed=0).to(device)
        opt = build_optimizer(optimizer, model.parameters(), 1e-3, 0.9)
        loss_fn = sg.nn.CrossEntropyLoss()
        tx, ty = sg.tensor(x, device=device), sg.tensor(y, device=device)
    else:
        import torch

        from sparkgrad.benchmark.torch_ddp_job import torch_mlp, torch_optimizer
        from sparkgrad.benchmark.torch_device import torch_device

        device = torch_device(device)  # the CPU under the CuPy stand-in
        model = torch_mlp(hidden, seed=0).to(device)
        opt = torch_optimizer(optimizer, model.parameters(), 1e-3, 0.9)
        loss_fn = torch.nn.CrossEntropyLoss()
        tx, ty = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(tx), ty).backward()
        opt.step()

    return step


def _gpu_reader(engine: str) -> tuple:
    """(start(), read() -> MiB held by the engine's allocator) for ``device="cuda"``."""
    if engine == "sparkgrad":
        from sparkgrad.autodiff.backend import get_array_module

        cp = get_array_module("cuda")
        pool = cp.get_default_memory_pool()

        def read() -> float:
            cp.cuda.Device().synchronize()
            return pool.total_bytes() / MiB

        return (lambda: None), read
    import torch

    from sparkgrad.benchmark.torch_device import cupy_is_stand_in

    if cupy_is_stand_in():  # PyTorch runs on the CPU there: no GPU memory to read
        return (lambda: None), (lambda: 0.0)

    def start() -> None:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    def read_torch() -> float:
        torch.cuda.synchronize()
        return torch.cuda.max_memory_reserved() / MiB

    return start, read_torch


def child(
    engine: str, hidden: tuple[int, ...], batch: int, optimizer: str, steps: int, device: str
) -> dict:
    """Runs in the fresh process: setup, reading, steps, reading."""
    step = _build(engine, hidden, batch, optimizer, device)
    if device == "cuda":
        start, read = _gpu_reader(engine)
        start()
        setup = read()
        for _ in range(steps):
            step()
        peak, scope = read(), "steps"
    else:
        setup = (_status_kib("VmRSS") or 0.0) / 1024
        reset = _reset_peak()
        for _ in range(steps):
            step()
        peak, scope = _cpu_reading(reset)
    step_mib = max(0.0, peak - setup)
    return {"setup_mib": setup, "peak_mib": peak, "step_mib": step_mib, "peak_scope": scope}


def measure(
    engine: str,
    hidden: tuple[int, ...],
    batch: int,
    optimizer: str = "adam",
    steps: int = 5,
    device: str = "cpu",
    threads: int = 1,
    timeout: float = 300.0,
) -> MemoryResult:
    """Run :func:`child` for ``engine`` in a fresh Python process and read its JSON line."""
    threads_env = {v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    cmd = [sys.executable, "-m", "sparkgrad.benchmark.report.memory", "--engine", engine]
    cmd += ["--hidden", ",".join(map(str, hidden)), "--batch", str(batch)]
    cmd += ["--optimizer", optimizer, "--steps", str(steps), "--device", device]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **threads_env}
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SparkgradError(
            f"memory measurement of {engine} failed: expected one JSON line and exit 0, "
            f"found exit {proc.returncode}: {(proc.stderr or proc.stdout)[-400:].strip()}"
        )
    r = json.loads(lines[-1])
    return MemoryResult(
        engine,
        device,
        tuple(hidden),
        batch,
        optimizer,
        r["setup_mib"],
        r["peak_mib"],
        r["step_mib"],
        r["peak_scope"],
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="one engine's memory, in this fresh process")
    p.add_argument("--engine", choices=("sparkgrad", "pytorch"), required=True)
    p.add_argument("--hidden", default="256,256")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    a = p.parse_args(argv)
    hidden = tuple(int(h) for h in a.hidden.split(","))
    print(json.dumps(child(a.engine, hidden, a.batch, a.optimizer, a.steps, a.device)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
