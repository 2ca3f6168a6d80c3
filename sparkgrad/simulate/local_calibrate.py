"""This machine's single-rank costs, measured for :mod:`.local` (a fraction of a second):

- :func:`measure_cpu`: the median of a timed 256 x 256 float32 matmul (the MLP's hidden
  width) and of a 1 MiB copy (its arrays stay in cache);
- :func:`engine_overheads`: sparkgrad's Python cost per op, the median time of each op's
  forward, and of its backward alone, on 32 x 32 arrays (``Linear(32, 32)``, ``ReLU``,
  the cross-entropy with its ``backward()``, an Adam ``step`` + ``zero_grad`` per
  parameter tensor) and, as ``step``, a whole ``single`` train step of a 1-2-2 MLP on one
  row less those ops: at those sizes the arithmetic costs next to nothing, so what is left
  is the engine's bookkeeping;
- :func:`engine_efficiency`: how close each op kind's array work comes to its roofline,
  measured at a reference shape;
- :func:`reference_step`: the engine step :mod:`.local_case` times every rank running at
  once, for ``sharing``.

:class:`LocalCosts` holds them with the links (:mod:`.local_links`) and prices an op list.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparkgrad.comms.model.calibrate import Measurement
from sparkgrad.simulate.devices import Device, cpu_device
from sparkgrad.simulate.mlp import Work

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "send")


@dataclass
class LocalCosts:
    """One calibration: device, per-op overheads (s) and efficiencies, comm fits, sharing.

    ``transport`` is the ranks' kind: ``threads`` (one process, one GIL) or ``tcp`` (a
    process each, :mod:`.local_worker`). ``sharing["step"]``: how much longer the slowest
    of ``world`` ranks took for :func:`reference_step` when they all ran it at once (cores,
    caches, memory and, for threads, the GIL shared; :mod:`.local_case` measures it).
    """

    device: Device
    overhead: dict[str, float]
    comm: dict[str, tuple[str, object]] = field(default_factory=dict)  # -> (algo, fit)
    cores: int = 2
    world: int = 4
    transport: str = "threads"
    sharing: dict[str, float] = field(default_factory=dict)
    efficiency: dict[str, float] = field(default_factory=dict)

    def array_seconds(self, op: Work) -> float:
        """The roofline of the op's arrays over its kind's measured ``efficiency`` (no
        launch overhead: ``overhead`` has it)."""
        roof = max(op.flops / self.device.peak("fp32"), op.nbytes / self.device.memory_bandwidth)
        return roof / self.efficiency.get(op.kind, 1.0)

    def compute(self, ops: list[Work], part: str = "all", shared: bool = False) -> float:
        """Seconds of ``ops`` on one rank; ``part`` ``python`` or ``arrays`` for one half.

        ``shared``: while the other ranks compute too, every op takes as much longer as
        the engine's reference step did with all ``world`` ranks running it at once
        (``sharing["step"]``)."""
        factor = self.sharing.get("step", 1.0) if shared else 1.0
        py = factor * sum(self.overhead[op.kind] * op.calls for op in ops)
        arr = factor * sum(self.array_seconds(op) for op in ops)
        return {"all": py + arr, "python": py, "arrays": arr}[part]

    def comm_seconds(self, collective: str, nbytes: float) -> float:
        """The calibrated link's seconds for one call (the loss broadcast is an all-reduce)."""
        algo, fit = self.comm[collective]
        n = 2 if collective == "send" else self.world
        m = (
            Measurement.send(int(nbytes), 1.0)
            if collective == "send"
            else Measurement.of(collective, algo, int(nbytes), n, 1.0)
        )
        return fit.predicted(m)


def median_time(
    fn: Callable[[], object], repeats: int, before: Callable[[], object] | None = None
) -> float:
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def backward_time(make: Callable[[], Any], repeats: int) -> float:
    """The median seconds of ``make().sum().backward()``'s backward alone: the graph is
    built, untimed, before each timed ``backward()``."""
    graph: dict[str, Any] = {}

    def build() -> None:
        graph["out"] = make().sum()

    return median_time(lambda: graph["out"].backward(), repeats, before=build)


SMALL = 32  # overheads are timed on 32 x 32 arrays, see engine_overheads


def engine_overheads(repeats: int = 200) -> dict[str, float]:
    """sparkgrad's per-op seconds on arrays too small for their arithmetic to count (see
    the module docstring): each op kind's forward, and its backward alone.

    The arrays have ``SMALL**2`` = 1024 elements, not 1: above 500 elements NumPy lets the
    GIL go during each call and takes it back after, as it does for every array of a real
    step; a 1-element op skips that."""
    import sparkgrad as sg

    n = SMALL
    x = sg.tensor(np.ones((n, n), np.float32))
    leaf = sg.tensor(np.ones((n, n), np.float32), requires_grad=True)
    lin, relu, ce = sg.nn.Linear(n, n), sg.nn.ReLU(), sg.nn.CrossEntropyLoss()
    logits = sg.tensor(np.ones((n * n // 8, 8), np.float32), requires_grad=True)
    target = sg.tensor(np.zeros(n * n // 8, np.int64))
    p = sg.nn.Parameter(sg.tensor(np.ones(n * n, np.float32)))
    opt = sg.optim.Adam([p], lr=1e-3)

    def adam() -> None:
        p.grad = sg.tensor(np.ones_like(np.asarray(p.array)))
        opt.step()
        opt.zero_grad()

    def grad(fn: Callable[[], Any]) -> float:  # its backward, less a bare sum's
        return max(0.0, backward_time(fn, repeats) - base)

    base = backward_time(lambda: leaf, repeats)
    out = {
        "linear": median_time(lambda: lin(x), repeats),
        "relu": median_time(lambda: relu(leaf), repeats),
        "loss": median_time(lambda: ce(logits, target).backward(), repeats),
        "adam": median_time(adam, repeats),
    }
    out["linear_grad"] = grad(lambda: lin(x))
    out["relu_grad"] = grad(lambda: relu(leaf))
    # the rest of a step: a whole `single` train_step of a 1-2-2 MLP on one row, less its
    # ops (2 Linear, 1 ReLU, the loss, Adam on 4 tensors) as just measured
    from sparkgrad.engine.model import build_optimizer
    from sparkgrad.models.mlp import build_mlp
    from sparkgrad.parallel.registry import make_strategy

    tiny = make_strategy(
        "single",
        build_mlp((2,), n_in=1, n_out=2),
        lambda ps: build_optimizer("adam", ps, 1e-3),
        sg.nn.CrossEntropyLoss(),
    )
    one, label = sg.tensor(np.ones((1, 1), np.float32)), sg.tensor(np.zeros(1, np.int64))
    step = median_time(lambda: tiny.train_step(one, label), repeats)
    linear, relu_ = out["linear"] + out["linear_grad"], out["relu"] + out["relu_grad"]
    out["step"] = max(0.0, step - (2 * linear + relu_ + out["loss"] + 4 * out["adam"]))
    return out


REFERENCE = (96, 512, 384)  # batch, inputs, outputs: a layer the validated MLPs do not have


def engine_efficiency(device: Device, overhead: dict[str, float], repeats: int = 31) -> dict:
    """How close each op kind's array work comes to its roofline on ``device``, measured at
    the ``REFERENCE`` shape: roofline seconds / (measured seconds - overhead), so that an
    op of that kind at any shape costs ``overhead + roofline / efficiency``. NumPy runs
    every operator as a pass of its own (the matmul, then the bias add, then ReLU's
    mask...) where a GPU fuses them; that, and fresh arrays' page faults, is what the
    efficiency prices."""
    import sparkgrad as sg
    from sparkgrad.simulate.mlp import ADAM_PASSES, linear_work

    b, i, o = REFERENCE
    rng = np.random.default_rng(2)
    x = sg.tensor(rng.random((b, i), dtype=np.float32), requires_grad=True)
    h = sg.tensor(rng.standard_normal((b, o), dtype=np.float32), requires_grad=True)
    lin, relu = sg.nn.Linear(i, o), sg.nn.ReLU()
    fwd, bwd = linear_work(i, o, b, first=False, last=False)  # dX and dW, as most layers
    opt = sg.optim.Adam(lin.parameters(), lr=1e-3)
    for q in lin.parameters():
        q.grad = sg.tensor(np.ones(q.shape, np.float32))

    def seconds_of(fn: Callable[[], Any]) -> float:
        return median_time(fn, repeats)

    lin_f = seconds_of(lambda: lin(x))
    relu_f = seconds_of(lambda: relu(h))
    sum_b = backward_time(lambda: h, repeats)  # the .sum()'s backward both include
    lin_b = backward_time(lambda: lin(x), repeats) - sum_b
    relu_b = backward_time(lambda: relu(h), repeats) - sum_b
    params = i * o + o
    measured = {
        "linear": (lin_f - overhead["linear"], fwd[0]),
        "linear_grad": (lin_b - overhead["linear_grad"], bwd[-1]),
        "relu": (relu_f - overhead["relu"], fwd[1]),
        "relu_grad": (relu_b - overhead["relu_grad"], bwd[0]),
        "adam": (
            seconds_of(opt.step) - 2 * overhead["adam"],
            Work("adam", "adam", 0.0, ADAM_PASSES * 12.0 * params),
        ),
    }
    out = {}
    for kind, (array_s, work) in measured.items():
        roof = max(work.flops / device.peak("fp32"), work.nbytes / device.memory_bandwidth)
        out[kind] = roof / array_s if array_s > 0 else 1.0
    return out


def _kernels(n: int = 256, copy_bytes: int = 1 << 20) -> dict[str, Callable[[], object]]:
    """The ``cpu`` device's two benchmark kernels: ``flops``, a float32 ``n x n`` matmul (the
    MLP's hidden width), and ``bytes``, a copy of ``copy_bytes`` (the MLP's arrays, about
    1 MiB, stay in cache; :func:`cpu_device` copies 32 MiB, DRAM)."""
    a = np.ones((n, n), np.float32)
    src = np.ones(copy_bytes // 4, np.float32)
    dst = np.empty_like(src)
    return {"flops": lambda: a @ a, "bytes": lambda: np.copyto(dst, src)}


def reference_step(hidden: tuple[int, ...] = (512,), batch: int = 128) -> Callable[[], object]:
    """One ``single`` train step of a *reference* model, 784-512-10 with Adam on 128 random
    rows: the engine's kind of work (matmuls, element-wise passes, fresh arrays, Python),
    but not any of the models the validation predicts."""
    import sparkgrad as sg
    from sparkgrad.engine.model import build_optimizer
    from sparkgrad.models.mlp import build_mlp
    from sparkgrad.parallel.registry import make_strategy

    s = make_strategy(
        "single",
        build_mlp(hidden, seed=1),
        lambda ps: build_optimizer("adam", ps, 1e-3),
        sg.nn.CrossEntropyLoss(),
    )
    rng = np.random.default_rng(1)
    x = sg.tensor(rng.random((batch, 784), dtype=np.float32))
    y = sg.tensor(rng.integers(0, 10, batch))
    return lambda: s.train_step(x, y)


def cpu_from(flops_per_s: float, bytes_per_s: float) -> Device:
    """The ``cpu`` device with this machine's measured matmul rate and copy bandwidth."""
    base = cpu_device()
    return Device(
        "cpu",
        dict.fromkeys(base.peaks, flops_per_s),
        memory_bandwidth=bytes_per_s,
        memory_bytes=base.memory_bytes,
        matmul_efficiency=1.0,
        memory_efficiency=1.0,
        launch_overhead=base.launch_overhead,
    )


def measure_cpu(n: int = 256, copy_bytes: int = 1 << 20, repeats: int = 21) -> Device:
    """The ``cpu`` device at the MLP's sizes, from the *medians* of :func:`_kernels` (a
    shared machine's best time is luck)."""
    kernels = _kernels(n, copy_bytes)
    flops = 2.0 * n**3 / median_time(kernels["flops"], repeats)
    return cpu_from(flops, 2.0 * copy_bytes / median_time(kernels["bytes"], repeats))


def measure_engine() -> dict[str, Any]:
    """The single-rank half of the costs, on one BLAS thread, as JSON-ready numbers:
    the device's ``flops_per_s`` and ``bytes_per_s``, the ``overhead`` and ``efficiency``
    of each op kind (:func:`engine_kwargs` turns them into :class:`LocalCosts` fields)."""
    from sparkgrad.benchmark.strategies import one_blas_thread

    with one_blas_thread():
        device = measure_cpu()
        overhead = engine_overheads()
        return {
            "flops_per_s": device.peak("fp32"),
            "bytes_per_s": device.memory_bandwidth,
            "overhead": overhead,
            "efficiency": engine_efficiency(device, overhead),
        }


def engine_kwargs(numbers: dict[str, Any]) -> dict[str, Any]:
    """``device``, ``overhead`` and ``efficiency`` for :class:`LocalCosts` from
    :func:`measure_engine`'s numbers."""
    return {
        "device": cpu_from(numbers["flops_per_s"], numbers["bytes_per_s"]),
        "overhead": numbers["overhead"],
        "efficiency": numbers["efficiency"],
    }
