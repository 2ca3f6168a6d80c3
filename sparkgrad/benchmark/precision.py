"""Mixed precision, measured honestly: step time and memory of fp32, bf16 and fp16, next to
PyTorch's autocast on the same device.

    python -m sparkgrad.benchmark.precision                # CPU, MLP 784-256-256-10, batch 128
    python -m sparkgrad.benchmark.precision --device cuda  # CuPy fp16 against torch CUDA

A step is ``zero_grad → forward (under autocast) → cross-entropy → backward → step``; fp16
adds a GradScaler (``scale``, ``step``, ``update``), bf16 none. Two memory numbers:

- **saved for backward**: the bytes of the arrays the step's graph keeps for backward
  (sparkgrad: every node's ``saved_tensors``; PyTorch: ``saved_tensors_hooks``), the
  activation memory mixed precision is meant to halve;
- **peak traced** (sparkgrad only): the peak of NumPy's allocations during one step
  (``tracemalloc``), everything included.

What to expect on a CPU: **no speed-up**. NumPy has no fast half-precision matmul, so
sparkgrad rounds the inputs and multiplies in float32 (see
:mod:`sparkgrad.autodiff.amp.autocast_mode`): the step costs fp32's plus the casts, and
float16 elementwise ops run NumPy's slow float16 loops. PyTorch's CPU autocast is also
slower than fp32 on CPUs without AMX/AVX512-BF16. On a GPU (CuPy float16, cuBLAS) the same
script shows the real speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import tracemalloc
from typing import Any

import numpy as np

PRECISIONS = ("fp32", "bf16", "fp16")


def _sg_saved_bytes(loss: Any) -> int:
    seen, owners, todo = set(), {}, [loss.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen or not hasattr(node, "ctx"):
            continue
        seen.add(id(node))
        for a in getattr(node.ctx, "saved_tensors", ()) or ():
            if hasattr(a, "nbytes"):
                owners[id(a)] = int(a.nbytes)
        todo.extend(n for n, _ in node.next_functions)
    return sum(owners.values())


def sparkgrad_case(precision: str, device: str, batch: int, steps: int) -> dict:
    import sparkgrad as sg
    import sparkgrad.nn.functional as F
    from sparkgrad.models.mlp import build_mlp

    model = build_mlp(seed=0).to(device)
    opt = sg.optim.Adam(model.parameters(), lr=1e-3)
    dtype = {"bf16": getattr(sg, "bfloat16", None), "fp16": sg.float16}.get(precision)
    scaler = sg.amp.GradScaler(device, enabled=precision == "fp16")
    rng = np.random.default_rng(0)
    x = sg.tensor(rng.standard_normal((batch, 784)).astype(np.float32), device=device)
    y = sg.tensor(rng.integers(0, 10, batch), device=device)

    def step() -> int:
        opt.zero_grad()
        with sg.autocast(device, dtype=dtype or sg.float16, enabled=dtype is not None):
            loss = F.cross_entropy(model(x), y)
        saved = _sg_saved_bytes(loss)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return saved

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        saved = step()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"ms": 1e3 * statistics.median(times), "saved_bytes": saved, "peak_bytes": peak}


def torch_case(precision: str, device: str, batch: int, steps: int) -> dict:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
        torch.nn.ReLU(), torch.nn.Linear(256, 10),
    ).to(device)  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device, enabled=precision == "fp16")
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((batch, 784)).astype(np.float32), device=device)
    y = torch.tensor(rng.integers(0, 10, batch), device=device)
    saved = {}

    def pack(t: Any) -> Any:
        saved[t.data_ptr()] = t.numel() * t.element_size()
        return t

    def step() -> int:
        saved.clear()
        opt.zero_grad()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with torch.autocast(device, dtype=dtype or torch.float16, enabled=dtype is not None):
                loss = torch.nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if device == "cuda":
            torch.cuda.synchronize()
        return sum(saved.values())

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        nbytes = step()
        times.append(time.perf_counter() - start)
    return {"ms": 1e3 * statistics.median(times), "saved_bytes": nbytes}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the rows to this file")
    args = p.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for precision in PRECISIONS:
        if args.device == "cuda" and precision == "bf16":
            ours = {"ms": float("nan"), "saved_bytes": 0, "peak_bytes": 0}  # CuPy: no bfloat16
        else:
            ours = sparkgrad_case(precision, args.device, args.batch, args.steps)
        theirs = torch_case(precision, args.device, args.batch, args.steps)
        rows.append({"precision": precision, "sparkgrad": ours, "torch": theirs})
    print(f"MLP 784-256-256-10, Adam, batch {args.batch}, {args.device}, {args.threads} thread(s)")
    print(
        f"{'precision':<10}{'sg ms/step':>11}{'torch ms':>10}{'sg saved KiB':>14}"
        f"{'torch saved KiB':>17}{'sg peak KiB':>13}"
    )
    for r in rows:
        s, t = r["sparkgrad"], r["torch"]
        print(
            f"{r['precision']:<10}{s['ms']:>11.2f}{t['ms']:>10.2f}{s['saved_bytes'] / 1024:>14.0f}"
            f"{t['saved_bytes'] / 1024:>17.0f}{s['peak_bytes'] / 1024:>13.0f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
