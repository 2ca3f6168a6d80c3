"""Time one training step of the 784-256-256-10 MLP in sparkgrad and in PyTorch, side by side.

    python -m sparkgrad.benchmark.step                 # CPU, SGD and Adam, batch 32/128/512
    python -m sparkgrad.benchmark.step --device cuda   # CuPy against PyTorch CUDA
    python -m sparkgrad.benchmark.step --model gpt     # a sequence model (also vit, lstm-lm,
                                                       # seq2seq): see .step_models

Both engines start from the same weights, see the same batch, use the same thread count,
and are timed in the same process, interleaved round by round so background noise hits
both alike. A step is ``zero_grad → forward → cross-entropy → backward → optimizer.step``.
The report also gives the *matmul floor*: the time NumPy/CuPy alone need for the step's
matrix products, so "engine overhead" = sparkgrad step - floor. A last line measures what
the profiler costs a step when it is off (one flag read per hooked op) and when it is on
(:mod:`.profiler_overhead`; ``--no-profiler-overhead`` skips it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

import sparkgrad as sg
from sparkgrad.autodiff.backend import get_array_module, to_device
from sparkgrad.benchmark import profiler_overhead
from sparkgrad.benchmark.step_models import MODEL_CHOICES
from sparkgrad.benchmark.torch_device import torch_device, torch_synchronize

PAUSE_S = 0.3


@dataclass
class StepResult:
    """Median milliseconds per step (and spread) for one case."""

    device: str
    optimizer: str
    batch: int
    sparkgrad_ms: float
    torch_ms: float
    floor_ms: float
    sparkgrad_iqr_ms: float
    torch_iqr_ms: float

    @property
    def ratio(self) -> float:
        return self.sparkgrad_ms / self.torch_ms


def build_models(hidden: tuple[int, ...], device: str, seed: int = 0) -> tuple[Any, Any]:
    """A torch MLP and a sparkgrad MLP holding the very same weights."""
    import torch

    torch.manual_seed(seed)
    sizes = (784, *hidden, 10)
    t_layers: list[Any] = []
    s_layers: list[Any] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        t_layers.append(torch.nn.Linear(n_in, n_out))
        s_layers.append(sg.nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            t_layers += [torch.nn.ReLU()]
            s_layers += [sg.nn.ReLU()]
    t_model = torch.nn.Sequential(*t_layers).to(torch_device(device))
    s_model = sg.nn.Sequential(*s_layers)
    s_model.load_state_dict({k: v.detach().cpu().numpy() for k, v in t_model.state_dict().items()})
    return t_model, s_model.to(device)


def _synchronize(device: str) -> Callable[[], None]:
    if device != "cuda":
        return lambda: None

    xp = get_array_module("cuda")

    def sync() -> None:
        torch_synchronize(device)
        xp.cuda.Device().synchronize()

    return sync


def _make_steps(device: str, optimizer: str, batch: int, hidden: tuple[int, ...]) -> tuple:
    import torch

    t_model, s_model = build_models(hidden, device)
    rng = np.random.default_rng(0)
    x = rng.random((batch, 784), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    t_dev = torch_device(device)
    tx, ty = torch.from_numpy(x).to(t_dev), torch.from_numpy(y).to(t_dev)
    sx, sy = sg.tensor(x, device=device), sg.tensor(y, device=device)
    if optimizer == "sgd":
        t_opt = torch.optim.SGD(t_model.parameters(), lr=0.01, momentum=0.9)
        s_opt = sg.optim.SGD(s_model.parameters(), lr=0.01, momentum=0.9)
    else:
        t_opt = torch.optim.Adam(t_model.parameters(), lr=1e-3)
        s_opt = sg.optim.Adam(s_model.parameters(), lr=1e-3)
    t_loss_fn, s_loss_fn = torch.nn.CrossEntropyLoss(), sg.nn.CrossEntropyLoss()

    def torch_step() -> None:
        t_opt.zero_grad()
        t_loss_fn(t_model(tx), ty).backward()
        t_opt.step()

    def sg_step() -> None:
        s_opt.zero_grad()
        s_loss_fn(s_model(sx), sy).backward()
        s_opt.step()

    weights = [to_device(p.array, device) for p in s_model.parameters()][0::2]
    floor = _matmul_floor(weights, to_device(x, device), batch)
    return sg_step, torch_step, floor


def _matmul_floor(weights: list[Any], x: Any, batch: int) -> Callable[[], None]:
    """The step's matrix products alone: forward x@Wᵀ per layer, backward gW and gx."""
    xp = get_array_module("cuda" if type(x).__module__.startswith("cupy") else "cpu")
    acts, grads = [x], []
    for w in weights:
        acts.append(xp.ones((batch, w.shape[0]), dtype=xp.float32))
        grads.append(xp.ones((batch, w.shape[0]), dtype=xp.float32))

    def floor() -> None:
        for a, w in zip(acts, weights):
            a @ w.T
        for i, (a, w, g) in enumerate(zip(acts, weights, grads)):
            g.T @ a
            if i > 0:
                g @ w

    return floor


def _time(fn: Callable[[], None], sync: Callable[[], None], steps: int) -> float:
    """Milliseconds per call of ``fn``, after a pause that lets the *other* engine's idle
    worker threads go to sleep (OpenBLAS and OpenMP pools spin for a while after their last
    task; on a 2-core machine a spinning pool would steal the cores of the engine we time).
    """
    time.sleep(PAUSE_S)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return (time.perf_counter() - start) / steps * 1e3


def run_case(
    device: str,
    optimizer: str,
    batch: int,
    hidden: tuple[int, ...] = (256, 256),
    repeats: int = 7,
    steps: int = 30,
) -> StepResult:
    """Measure one case: ``repeats`` interleaved rounds of ``steps`` steps per engine."""
    sg_step, torch_step, floor = _make_steps(device, optimizer, batch, hidden)
    sync = _synchronize(device)
    for fn in (sg_step, torch_step, floor):  # warm-up: allocations, caches, kernels
        _time(fn, sync, max(3, steps // 3))
    s_times, t_times, f_times = [], [], []
    for _ in range(repeats):
        s_times.append(_time(sg_step, sync, steps))
        t_times.append(_time(torch_step, sync, steps))
        f_times.append(_time(floor, sync, steps))

    def iqr(v: list[float]) -> float:
        q = statistics.quantiles(v, n=4)
        return q[2] - q[0]

    return StepResult(
        device,
        optimizer,
        batch,
        statistics.median(s_times),
        statistics.median(t_times),
        statistics.median(f_times),
        iqr(s_times),
        iqr(t_times),
    )


def set_threads(threads: int) -> None:
    """Give both engines the same number of threads (PyTorch's intra-op pool, NumPy's BLAS)."""
    import torch

    torch.set_num_threads(threads)
    sg.set_num_threads(threads)


def format_table(results: list[StepResult]) -> str:
    head = (
        f"{'device':>6} {'optim':>5} {'batch':>6} {'sparkgrad ms':>13} {'torch ms':>9} "
        f"{'ratio':>6} {'matmul floor':>13} {'overhead ms':>12}"
    )
    rows = [head, "-" * len(head)]
    for r in results:
        rows.append(
            f"{r.device:>6} {r.optimizer:>5} {r.batch:>6} {r.sparkgrad_ms:>13.3f} "
            f"{r.torch_ms:>9.3f} {r.ratio:>6.2f} {r.floor_ms:>13.3f} "
            f"{r.sparkgrad_ms - r.floor_ms:>12.3f}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch-sizes", default="32,128,512")
    parser.add_argument("--optimizers", default="sgd,adam")
    parser.add_argument("--hidden", default="256,256", help="hidden widths, e.g. 1024,1024,1024")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument(
        "--model",
        default="mlp",
        choices=("mlp", *MODEL_CHOICES),
        help="mlp (the table above), or a sequence model at main.py's default sizes",
    )
    parser.add_argument(
        "--no-profiler-overhead",
        dest="profiler_overhead",
        action="store_false",
        help="skip the line on what the profiler costs a step when off and when on",
    )
    args = parser.parse_args(argv)
    set_threads(args.threads)
    if args.model != "mlp":
        return _main_model(args)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    results = []
    for opt in args.optimizers.split(","):
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            results.append(run_case(args.device, opt, batch, hidden, args.repeats, args.steps))
            print(format_table(results[-1:]).splitlines()[-1], flush=True)
    print(
        f"\nMLP 784-{args.hidden.replace(',', '-')}-10, {args.threads} threads, median of "
        f"{args.repeats} rounds x {args.steps} steps "
        "(ratio = sparkgrad / PyTorch; <= 1.0 is the target)"
    )
    print(format_table(results))
    overhead = None
    if args.profiler_overhead:
        sg_step = _make_steps(args.device, "sgd", 32, hidden)[0]
        overhead = profiler_overhead.measure(sg_step)
        print("\nSGD, batch 32 (the shortest step, where a fixed cost per op weighs most):")
        print(profiler_overhead.format_line(overhead))
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            rows = [asdict(r) | {"ratio": r.ratio} for r in results]
            json.dump({"steps": rows, "profiler_overhead": overhead}, f, indent=2)
        os.replace(args.json + ".tmp", args.json)
    return 0


def _main_model(args: argparse.Namespace) -> int:
    from sparkgrad.benchmark.step_models import format_row, model_case, run_model

    row = run_model(args.model, args.repeats, min(args.steps, 5))
    print(f"{'model':>8} {'sparkgrad ms':>13} {'torch ms':>9} {'ratio':>6}   sizes")
    print(format_row(row))
    print(
        f"\none AdamW step, {args.threads} threads, median of {args.repeats} rounds "
        "(ratio = sparkgrad / PyTorch; <= 1.0 is the target)"
    )
    if args.profiler_overhead:
        row["profiler_overhead"] = profiler_overhead.measure(model_case(args.model)[0], 3, 3)
        print(profiler_overhead.format_line(row["profiler_overhead"]))
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(row, f, indent=2)
        os.replace(args.json + ".tmp", args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
