"""``report.md``: the summary with verdicts at the top, then sections 1–6.

:func:`render` turns the results dictionary (the same one written to ``results.json``)
into Markdown. Every number in a table is a plain decimal, so a script can parse the
tables back; every ratio is sparkgrad / PyTorch of a cost and carries its verdict
(:mod:`~sparkgrad.benchmark.report.verdict`).
"""

from __future__ import annotations

import math
from typing import Any

from sparkgrad.benchmark.report.summary import summary_rows
from sparkgrad.benchmark.report.verdict import verdict

SECTIONS = (
    "## 1. Environment",
    "## 2. Training step time",
    "## 3. Training to accuracy",
    "## 4. Memory",
    "## 5. Collectives",
    "## 6. Distributed",
    "## 7. Asynchronous training",
)


def _arch(hidden: list[int]) -> str:
    return "784-" + "-".join(map(str, hidden)) + "-10"


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "nan" if math.isnan(v) else f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
        return str(v)

    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return out + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def _environment(env: dict) -> list[str]:
    return _table(["field", "value"], [[k, v] for k, v in env.items()])


def _steps(rows: list[dict], figure: str) -> list[str]:
    out = [
        "Median of repeated interleaved rounds (IQR = spread); ratio = sparkgrad / PyTorch; "
        "matmul floor = the step's matrix products alone in NumPy/CuPy; overhead = "
        "sparkgrad - floor, the engine's own cost.",
        "",
    ]
    body = [
        [
            _arch(r["hidden"]),
            r["optimizer"],
            r["batch"],
            r["sparkgrad_ms"],
            r["sparkgrad_iqr_ms"],
            r["torch_ms"],
            r["torch_iqr_ms"],
            r["ratio"],
            r["floor_ms"],
            r["overhead_ms"],
            r["overhead_share"],
            verdict(r["ratio"]),
        ]
        for r in rows
    ]
    head = [
        "model",
        "optim",
        "batch",
        "sparkgrad ms",
        "IQR",
        "PyTorch ms",
        "IQR",
        "ratio",
        "floor ms",
        "overhead ms",
        "overhead share",
        "verdict",
    ]
    return out + _table(head, body) + ["", f"![step times]({figure})"]


def _training(items: list[dict], figures: dict) -> list[str]:
    out = [
        "Same initial weights and the same batch order in both engines; time per epoch = "
        "median of epochs 2.. (epoch 1 is warm-up) of the training loop only.",
        "",
    ]
    for t in items:
        c = t["curves"]
        out += [
            f"### {t['data']} ({t['train_samples']} train / {t['test_samples']} test, "
            f"MLP {_arch(t['hidden'])}, {t['optimizer']}, batch {t['batch']})",
            "",
        ]
        head = ["engine", "first-step loss", "final loss", "final accuracy", "s per epoch"]
        body = [
            [
                e,
                t["first_loss"][e],
                c[e][-1]["train_loss"],
                c[e][-1]["test_accuracy"],
                t["epoch_s"][e],
            ]
            for e in ("sparkgrad", "pytorch")
        ]
        out += _table(head, body)
        out += ["", f"ratio {t['ratio']:.3f}: {verdict(t['ratio'])}", ""]
        out += [f"![training curves]({figures[t['data']]})", ""]
    return out


def _memory(rows: list[dict], figure: str) -> list[str]:
    out = [
        "Each engine alone in a fresh process (Adam, a few steps). *setup* = resident memory "
        "after imports, model and batch; *peak* = highest during the steps; *added* = peak - "
        "setup, the number to compare (setup mostly measures library size; added includes "
        "first-step allocations such as optimizer state). On a GPU: bytes "
        "held by each library's caching allocator.",
        "",
    ]
    body = []
    for m in rows:
        for e in ("sparkgrad", "pytorch"):
            r = m[e]
            body.append(
                [
                    _arch(m["hidden"]),
                    m["batch"],
                    e,
                    r["setup_mib"],
                    r["peak_mib"],
                    r["step_mib"],
                    r["peak_scope"],
                ]
            )
    head = ["model", "batch", "engine", "setup MiB", "peak MiB", "added MiB", "peak over"]
    out += _table(head, body) + [""]
    out += [
        f"{_arch(m['hidden'])}: added-memory ratio {m['step_ratio']:.3f}, "
        f"{verdict(m['step_ratio'], 'smaller', 'larger')}"
        for m in rows
    ]
    return out + ["", f"![memory]({figure})"]


def _distributed(d: dict, scaling: dict, figures: dict) -> list[str]:
    out = ["### 6.1 DataParallel on Spark vs PyTorch DDP (TorchDistributor)", ""]
    spark = d.get("spark")
    if spark:
        head = ["engine", "world", "s per epoch", "train s", "wall s", "test acc", "samples/s"]
        body = [
            [
                r["engine"],
                r["world_size"],
                r["epoch_s"],
                r["train_s"],
                r["wall_s"],
                r["test_accuracy"],
                r["throughput"],
            ]
            for r in spark["results"]
        ]
        out += _table(head, body) + [""]
        out += [
            f"{q['world_size']} ranks: epoch ratio {q['epoch']:.3f} ({verdict(q['epoch'])}), "
            f"wall ratio {q['wall']:.3f}"
            for q in spark["ratios"]
        ]
    else:
        out.append(f"Spark vs DDP: {d.get('spark_note', 'not run')}")
    out += ["", "### 6.2 Time split per strategy (compute / communication / bubble)", ""]
    strat = d.get("strategies") or {}
    if strat.get("available"):
        head = [
            "strategy",
            "ranks",
            "step ms",
            "compute ms",
            "comm ms",
            "idle ms",
            "sent KiB",
            "predicted comm ms",
        ]
        body = [
            [
                r.get("label", r["strategy"]),
                r["world_size"],
                r.get("step_s", 0) * 1e3,
                r["compute_s"] * 1e3,
                r["comm_s"] * 1e3,
                r["idle_s"] * 1e3,
                r["bytes_sent"] / 1024,
                r["predicted_s"] * 1e3,
            ]
            for r in strat["rows"]
        ]
        out += _table(head, body) + ["", f"![strategies]({figures.get('strategies', '')})"]
    else:
        out.append(strat.get("note") or "strategy split: not available")
    out += [
        "",
        "### 6.3 Scaling",
        "",
        f"Modelled data parallelism, {scaling['batch_per_rank']} samples per rank, compute "
        f"= {scaling['compute_s'] * 1e3:.3f} ms, the MLP's step on one H100 as "
        "sparkgrad.simulate predicts it (roofline + kernel launches; not this machine's "
        "CPU step), "
        f"all_reduce of {scaling['grad_bytes']} gradient bytes predicted by the cost model "
        "(no overlap; NVLink inside a node, InfiniBand or 100GbE across). Measured rows: "
        "the Spark runs of 6.1, whose global batch is fixed and split across the ranks "
        "(strong scaling), on this machine's loopback and cores.",
        "",
    ]
    head = ["source", "topology", "world", "algorithm", "comm ms", "samples/s", "efficiency"]
    body = [
        [
            p["source"],
            p["topology"],
            p["world_size"],
            p["algorithm"],
            p["comm_s"] * 1e3,
            p["throughput"],
            p["efficiency"],
        ]
        for p in scaling["model"] + scaling["measured"]
    ]
    return out + _table(head, body) + ["", f"![scaling]({figures['scaling']})"]


def render(results: dict, figures: dict) -> str:
    """The whole ``report.md``; ``figures`` maps a figure's role to its file name."""
    env = results["environment"]
    lines = [f"# sparkgrad vs PyTorch: benchmark report ({env['device']})", ""]
    if results.get("quick"):
        lines += [
            "> Quick configuration (tiny sizes, for tests/CI): the numbers below check "
            "that the report works; they do not compare the engines.",
            "",
        ]
    lines += [
        "## Summary",
        "",
        "Ratio = sparkgrad / PyTorch (time or memory): below 1 favours "
        "sparkgrad; within ±5% is on par.",
        "",
    ]
    lines += _table(
        ["comparison", "sparkgrad", "PyTorch", "ratio", "verdict"], summary_rows(results)
    )
    lines += ["", SECTIONS[0], ""] + _environment(env)
    lines += ["", SECTIONS[1], ""] + _steps(results["step_times"], figures["step_times"])
    lines += ["", SECTIONS[2], ""] + _training(results["training"], figures["training"])
    lines += ["", SECTIONS[3], ""] + _memory(results["memory"], figures["memory"])
    coll = results["collectives"]
    lines += [
        "",
        SECTIONS[4],
        "",
        "sparkgrad TCP against PyTorch gloo, processes on "
        "127.0.0.1 (CPU in both reports); pred = the calibrated cost model.",
        "",
        "```",
        coll.get("text", "").strip(),
        "```",
        "",
        f"![busbw]({figures['busbw']})",
    ]
    lines += ["", SECTIONS[5], ""]
    lines += _distributed(results["distributed"], results["scaling"], figures)
    lines += ["", SECTIONS[6], ""] + _async_modes(results.get("async_modes", []))
    return "\n".join(lines) + "\n"


def _async_modes(rows: list[dict]) -> list[str]:
    """Section 7: the four modes through one parameter server, same samples, same seed."""
    from sparkgrad.benchmark.async_modes import histogram_text

    if not rows:
        return ["not measured"]
    lines = [
        "`python -m sparkgrad.benchmark.async_modes`: the same MLP and samples through the "
        "parameter server on this machine (threads, loopback sockets). `sync` is the "
        "server's bulk-synchronous mode; async is not bit-equal to anything, so accuracy is "
        "the check; version lag = updates applied between a worker's pull and its push.",
        "",
    ]
    head = ["mode", "workers", "samples", "accuracy", "wall s", "pushes/s", "max gap", "lag"]
    body = [
        [
            r["mode"],
            r["workers"],
            r["samples"],
            r["accuracy"],
            r["wall_s"],
            r["pushes_per_s"],
            r["max_clock_gap"],
            histogram_text(r["version_lag"]),
        ]
        for r in rows
    ]
    return lines + _table(head, body)
