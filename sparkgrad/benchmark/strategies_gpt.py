"""``python -m sparkgrad.benchmark.strategies --model gpt``: every strategy and mesh on one GPT.

    python -m sparkgrad.benchmark.strategies --model gpt            # 4 ranks, 4 layers
    python -m sparkgrad.benchmark.strategies --model gpt --quick    # a tiny GPT (tests)

Every strategy and mesh that can split the GPT over 4 ranks (data, ZeRO 1-3, model,
pipeline GPipe and 1F1B, tensor with and without sequence parallelism, context, the
``dp x tp`` hybrid and the GPT meshes with pipeline and context axes) trains the same
character-level GPT (4 pre-norm blocks, d_model 64, 4 heads, context 32, the characters of
Python's pydoc topics as vocabulary) from the same seed on the same windows, on thread
ranks, as the MLP table does (:mod:`sparkgrad.benchmark.strategies`). Per row:

- the **time split** of a step (compute, unoverlapped communication, idle: the bubble and
  waits), the pipeline bubble (measured / simulated / theoretical) and the **bytes** sent;
- **memory per rank**, predicted from shapes before the run
  (:mod:`sparkgrad.parallel.memory_plan`) and measured on the warm-up step (the ledger and
  an ActivationTracker): the largest rank's total, predicted / measured, and the largest
  deviation of any kind on any rank (the goal: under 10%);
- the **predicted step time on modelled clusters** of 8, 16, 32 and 64 H100s
  (:func:`sparkgrad.simulate.simulate_step`, fp32 as trained here): the same GPT shape and
  the row's own split of the model (its tp, pp, cp axes and micro-batches, its ZeRO
  stage), weak-scaled as the simulator's data-parallel scaling is -- the data-parallel
  axis grows to fill the cluster, each replica keeps its rows per step. A GPT this small is
  launch-bound on an H100: the column shows what each split *costs* in collectives and
  pipeline bubbles, not a speed-up.
"""

from __future__ import annotations

import threading
from typing import Any

from sparkgrad.dataset.text import CharVocab, pydoc_topics
from sparkgrad.parallel.memory_plan import KINDS, MemoryJob
from sparkgrad.parallel.memory_shapes import ModelShape

GPT = {"layers": 4, "d_model": 64, "heads": 4, "context": 32}
QUICK_GPT = {"layers": 4, "d_model": 16, "heads": 4, "context": 16}
CLUSTERS = (8, 16, 32, 64)  # H100s: 1x8, 2x8, 4x8, 8x8
_BUILD_LOCK = threading.Lock()  # thread ranks draw the same weights from one generator


def gpt_cases(world: int, micro_batches: int) -> list[tuple[str, str, int, dict]]:
    """``(label, strategy, world_size, options)``: every strategy and mesh of ``world`` ranks
    (even ``world``: the two-axis meshes too) that can split the GPT."""
    w, m = world, micro_batches
    out = [("single", "single", 1, {}), ("data", "data", w, {})]
    out += [(f"zero{k}", f"zero{k}", w, {}) for k in (1, 2, 3)]
    out.append(("model", "model", w, {}))
    out += [(f"pipeline-{s}", "pipeline", w, {"micro_batches": m, "schedule": s})
            for s in ("gpipe", "1f1b")]  # fmt: skip
    out += [("tensor", "tensor", w, {}),
            ("tensor-sp", "tensor", w, {"sequence_parallel": True}),
            ("context", "context", w, {})]  # fmt: skip
    if w % 2 == 0 and w > 2:
        half = w // 2
        out += [(f"hybrid-dp{half}-tp2", "hybrid", w, {"mesh": f"dp={half},tp=2"}),
                (f"hybrid-dp{half}-tp2-sp", "hybrid", w,
                 {"mesh": f"dp={half},tp=2", "sequence_parallel": True})]  # fmt: skip
        for mesh in (f"pp=2,tp={half}", f"pp=2,cp={half}", f"dp={half},pp=2",
                     f"dp={half},cp=2", f"cp=2,tp={half}"):  # fmt: skip
            label = "mesh-" + mesh.replace("=", "").replace(",", "-")
            pipe = "pp" in mesh
            opts = {"mesh": mesh, "micro_batches": 2 if pipe else 1, "schedule": "1f1b"}
            out.append((label, "hybrid", w, opts))
    return out


def corpus_batches(context: int, batch: int, count: int) -> tuple[int, list]:
    """The vocabulary size and ``count`` batches of ``batch`` windows of pydoc's text."""
    text = pydoc_topics()[: (count * batch + 1) * context * 2]
    vocab = CharVocab.of(text)
    ids = vocab.encode(text)
    windows = (len(ids) - 1) // context
    x = ids[: windows * context].reshape(windows, context)
    y = ids[1 : windows * context + 1].reshape(windows, context)
    return len(vocab), [(x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch])
                        for i in range(count)]  # fmt: skip


def run_gpt(
    quick: bool = False, world_size: int = 4, steps: int | None = None, micro_batches: int = 8
) -> list[dict]:
    """One row per case of :func:`gpt_cases` (``quick``: a tiny GPT, 1 timed step)."""
    from sparkgrad.benchmark.strategies import run_on_ranks
    from sparkgrad.models.gpt import build_gpt
    from sparkgrad.models.sequence_parts import TokenCrossEntropy

    sizes = QUICK_GPT if quick else GPT
    steps = steps or (1 if quick else 3)
    batch = 8 if quick else 16
    micro_batches = 4 if quick else micro_batches
    vocab, batches = corpus_batches(sizes["context"], batch, steps + 1)
    shape = ModelShape.gpt(vocab, sizes["context"], sizes["d_model"], sizes["heads"],
                           sizes["layers"])  # fmt: skip

    def build() -> Any:
        with _BUILD_LOCK:
            return build_gpt(vocab, 0, context=shape.context, d_model=shape.d_model,
                             nhead=shape.heads, num_layers=shape.layers)  # fmt: skip

    rows = []
    for label, name, world, options in gpt_cases(world_size, micro_batches):
        job = MemoryJob(shape, batch, world, "adam", 0.0, options)
        row = run_on_ranks(name, world, options, build, TokenCrossEntropy(), batches, steps,
                           memory_job=job)  # fmt: skip
        row["label"], row["model"] = label, "gpt"
        row["simulated_step_s"] = simulated_steps(name, world, options, shape, batch)
        rows.append(row)
    return rows


def simulation_mesh(strategy: str, world: int, options: dict) -> dict[str, int]:
    """The row's split of the model as the simulator's ``dp, pp, tp, cp`` (and ``zero``,
    ``micro_batches``, ``schedule``)."""
    from sparkgrad.parallel.hybrid.mesh import parse_mesh

    out = {"dp": 1, "pp": 1, "tp": 1, "cp": 1, "zero": 0, "micro_batches": 1}
    out["schedule"] = options.get("schedule", "1f1b")
    if strategy in ("data", "zero1", "zero2", "zero3"):
        out["dp"], out["zero"] = world, int(strategy[-1]) if strategy != "data" else 0
    elif strategy in ("model", "pipeline"):
        out["pp"], out["micro_batches"] = world, options.get("micro_batches", 1)
    elif strategy == "tensor":
        out["tp"] = world
    elif strategy == "context":
        out["cp"] = world
    elif strategy == "hybrid":
        out.update({k: v for k, v in parse_mesh(options["mesh"], world).items()})
        out["micro_batches"] = options.get("micro_batches", 1) if out["pp"] > 1 else 1
    return out


def simulated_steps(
    strategy: str, world: int, options: dict, shape: ModelShape, batch: int
) -> dict[str, float]:
    """Predicted seconds per step on ``N`` H100s for each ``N`` of :data:`CLUSTERS`: the
    row's tp, pp, cp and micro-batches kept, its dp grown to ``N / (tp·pp·cp)`` replicas of
    ``batch / dp`` sequences each (weak scaling)."""
    from sparkgrad.simulate import Cluster, GPTShape, Mesh, StepConfig, simulate_step

    split = simulation_mesh(strategy, world, options)
    per_replica = batch // split["dp"]
    model = split["pp"] * split["tp"] * split["cp"]
    gpt = GPTShape(shape.d_model, shape.layers, shape.heads, shape.context, shape.vocab)
    out = {}
    for n in CLUSTERS:
        dp = n // model
        mesh = Mesh(dp=dp, pp=split["pp"], tp=split["tp"], cp=split["cp"])
        cluster = Cluster.parse(f"{max(1, n // 8)}x{min(n, 8)}-h100")
        config = StepConfig(gpt, mesh, cluster, per_replica * dp, split["micro_batches"],
                            "fp32", split["zero"] if dp > 1 else 0, split["schedule"])  # fmt: skip
        out[str(n)] = simulate_step(config).step_seconds
    return out


def memory_summary(row: dict) -> dict[str, float]:
    """The largest rank's predicted and measured totals, and the largest relative deviation
    of any kind on any rank (``|predicted / measured - 1|``)."""
    plans = row["memory_plans"]
    big = max(plans, key=lambda p: p["measured"]["total"])
    deviation = max(abs(p["ratio"][k] - 1) for p in plans for k in (*KINDS, "total"))
    return {"predicted": big["predicted"]["total"], "measured": big["measured"]["total"],
            "deviation": deviation}  # fmt: skip


def format_gpt_table(rows: list[dict]) -> str:
    """The GPT table: milliseconds per step, KiB sent, MB per rank, modelled H100 steps."""
    from sparkgrad.benchmark.strategies import bubble_cell

    clusters = "/".join(map(str, CLUSTERS))
    head = (
        f"{'strategy':<22} {'ranks':>5} {'step ms':>8} {'compute':>8} {'comm':>8} {'idle':>8} "
        f"{'bubble m/s/t':>15} {'sent KiB':>9} {'mem MB pred/meas':>17} {'dev %':>6} "
        f"{'H100 ms ' + clusters:>27}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        bubble = bubble_cell(r)
        mem = memory_summary(r)
        sim = "/".join(f"{r['simulated_step_s'][str(n)] * 1e3:.2f}" for n in CLUSTERS)
        lines.append(
            f"{r['label']:<22} {r['world_size']:>5} {r['step_s'] * 1e3:>8.2f} "
            f"{r['compute_s'] * 1e3:>8.2f} {r['comm_s'] * 1e3:>8.2f} {r['idle_s'] * 1e3:>8.2f} "
            f"{bubble:>15} {r['bytes_sent'] / 1024:>9.1f} "
            f"{mem['predicted'] / 1e6:>8.3f}/{mem['measured'] / 1e6:<8.3f} "
            f"{mem['deviation'] * 100:>6.2f} {sim:>27}"
        )
    lines += [
        "mem MB pred/meas = the largest rank's parameters + gradients + optimizer state + peak "
        "activations, predicted from shapes / measured on the warm-up step; dev % = the largest "
        "|predicted/measured - 1| of any kind on any rank",
        f"H100 ms = sparkgrad.simulate's step on {clusters} H100s (fp32), the row's split kept "
        "and its data-parallel axis grown to fill the cluster (weak scaling)",
    ]
    return "\n".join(lines)
