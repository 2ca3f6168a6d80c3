"""The report's figures: one function per PNG, matplotlib's Agg backend (no display needed).

Each function takes the plain results of :class:`PerformanceComparator` and a path, draws
one figure and saves it atomically (a temporary name, then a rename), so a reader never
sees half a PNG. Colours are fixed per engine: sparkgrad orange, PyTorch blue.
"""

from __future__ import annotations

import os
from typing import Any

from matplotlib.artist import setp
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from sparkgrad.comms.model.costs import bus_bandwidth_factor

MODEL_COLORS = ("tab:green", "tab:purple", "tab:brown", "tab:olive")
PLAIN = FuncFormatter(lambda value, _: f"{value:g}")  # 0.5 and 128, not 5x10^-1

COLORS = {
    "sparkgrad": "tab:orange",
    "pytorch": "tab:blue",
    "pytorch-ddp": "tab:blue",
    "gloo": "tab:blue",
    "floor": "tab:gray",
}


def save(fig: Any, path: str) -> str:
    """Write ``fig`` to ``path`` as PNG through a temporary file.

    Figures are plain ``matplotlib.figure.Figure`` objects, not pyplot's: drawing them needs
    no backend, so importing this module leaves a notebook's inline plots alone.
    """
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _arch(hidden: list[int]) -> str:
    return "784-" + "-".join(map(str, hidden)) + "-10"


def plot_step_times(rows: list[dict], path: str) -> str:
    """Median step time against batch, one panel per model: both engines and the matmul floor."""
    models = list(dict.fromkeys(tuple(r["hidden"]) for r in rows))
    fig = Figure(figsize=(5.5 * len(models), 4))
    axes = fig.subplots(1, len(models), squeeze=False)
    for ax, hidden in zip(axes[0], models):
        for opt, style in (("sgd", "-"), ("adam", "--")):
            mine = sorted(
                (r for r in rows if tuple(r["hidden"]) == hidden and r["optimizer"] == opt),
                key=lambda r: r["batch"],
            )
            if not mine:
                continue
            b = [r["batch"] for r in mine]
            ax.plot(
                b,
                [r["sparkgrad_ms"] for r in mine],
                style,
                marker="o",
                color=COLORS["sparkgrad"],
                label=f"sparkgrad {opt}",
            )
            ax.plot(
                b,
                [r["torch_ms"] for r in mine],
                style,
                marker="s",
                color=COLORS["pytorch"],
                label=f"PyTorch {opt}",
            )
            if opt == "sgd":
                ax.plot(
                    b,
                    [r["floor_ms"] for r in mine],
                    ":",
                    marker=".",
                    color=COLORS["floor"],
                    label="matmul floor",
                )
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="batch",
            ylabel="ms per step",
            title=f"MLP {_arch(list(hidden))}",
        )
        batches = sorted({r["batch"] for r in rows})
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(PLAIN)
        ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))  # 2, 5, 20, 50: no crowding
        ax.yaxis.set_minor_formatter(PLAIN)
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    return save(fig, path)


def plot_training(result: dict, path: str) -> str:
    """Training loss per step and test accuracy per epoch, both engines overlaid.

    sparkgrad is drawn wide and solid, PyTorch thin and dashed on top of it: where the two
    engines agree (same weights, same batches) the dashed line runs inside the solid one.
    """
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    steps_per_epoch = max(
        1, len(result["step_losses"]["sparkgrad"]) // len(result["curves"]["sparkgrad"])
    )
    for engine, curve in result["curves"].items():
        wide = engine == "sparkgrad"
        style = {
            "color": COLORS[engine],
            "label": engine,
            "linestyle": "-" if wide else "--",
            "linewidth": 3.5 if wide else 1.2,
            "alpha": 0.6 if wide else 1.0,
        }
        losses = result["step_losses"][engine]
        left.plot([(i + 1) / steps_per_epoch for i in range(len(losses))], losses, **style)
        epochs = [m["epoch"] for m in curve]
        right.plot(
            epochs, [m["test_accuracy"] for m in curve], marker="o" if wide else "x", **style
        )
    left.set(xlabel="epoch", ylabel="training loss per step", title=f"loss on {result['data']}")
    right.set(xlabel="epoch", ylabel="test accuracy", title=f"accuracy on {result['data']}")
    right.set_xticks(epochs)
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.legend()
    return save(fig, path)


def plot_memory(rows: list[dict], path: str) -> str:
    """Memory added by the training steps, both engines, one pair of bars per model."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    names = [_arch(r["hidden"]) for r in rows]
    xs = range(len(rows))
    for offset, engine in ((-0.2, "sparkgrad"), (0.2, "pytorch")):
        ax.bar(
            [x + offset for x in xs],
            [r[engine]["step_mib"] for r in rows],
            width=0.4,
            color=COLORS[engine],
            label=engine,
        )
    ax.set_xticks(list(xs), names)
    ax.set(ylabel="MiB added by training steps", title=f"peak memory, batch {rows[0]['batch']}")
    ax.legend()
    return save(fig, path)


def plot_busbw(report: dict, path: str) -> str:
    """Bus bandwidth against message size: sparkgrad, gloo and the model's prediction."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for table in report["tables"]:
        n, rows = table["world_size"], table["rows"]
        sizes = [r["nbytes"] for r in rows]
        for backend, marker in (("sparkgrad", "o"), ("gloo", "s")):
            if all(backend in r for r in rows):
                ax.plot(
                    sizes,
                    [r[backend]["busbw"] for r in rows],
                    marker=marker,
                    color=COLORS[backend],
                    alpha=0.5 + 0.5 / n,
                    label=f"{backend}, {n} ranks",
                )
        if all("pred_us" in r.get("sparkgrad", {}) for r in rows):
            factor = bus_bandwidth_factor("all_reduce", n)  # nccl-tests' busbw definition
            pred = [r["nbytes"] / (r["sparkgrad"]["pred_us"] * 1e-6) / 1e9 * factor for r in rows]
            ax.plot(sizes, pred, "--", color="tab:green", label=f"predicted, {n} ranks")
    ax.set(
        xscale="log",
        xlabel="message size (bytes)",
        ylabel="busbw (GB/s)",
        title="all_reduce float32 sum on 127.0.0.1",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_scaling(scaling: dict, path: str) -> str:
    """Throughput and efficiency against world size: modelled clusters and measured runs."""
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    groups: dict[tuple[str, str], list[dict]] = {}
    models_seen: list[str] = []
    for p in scaling["model"] + scaling["measured"]:
        groups.setdefault((p["source"], p["topology"]), []).append(p)
    for (source, topo), points in groups.items():
        points.sort(key=lambda p: p["world_size"])
        ws = [p["world_size"] for p in points]
        label = f"model {topo}" if source == "model" else f"measured {source}"
        style = "--" if source == "model" else "-"
        color = COLORS.get(source) or MODEL_COLORS[len(models_seen) % len(MODEL_COLORS)]
        if source == "model":
            models_seen.append(topo)
        left.plot(
            ws, [p["throughput"] for p in points], style, marker="o", color=color, label=label
        )
        right.plot(
            ws, [p["efficiency"] for p in points], style, marker="o", color=color, label=label
        )
    left.set(
        xscale="log",
        yscale="log",
        xlabel="world size",
        ylabel="samples / s",
        title="data-parallel throughput",
    )
    right.set(
        xscale="log",
        xlabel="world size",
        ylabel="efficiency",
        ylim=(0, 1.05),
        title="throughput(n) / (n · throughput(1))",
    )
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    return save(fig, path)


def plot_strategies(rows: list[dict], path: str) -> str:
    """Each strategy's step split into compute, communication and idle (bubble), stacked."""
    fig = Figure(figsize=(max(6, 0.8 * len(rows)), 4))
    ax = fig.subplots()
    labels = [r.get("label", r["strategy"]) for r in rows]
    bottom = [0.0] * len(rows)
    for key, color in (("compute_s", "tab:green"), ("comm_s", "tab:red"), ("idle_s", "tab:gray")):
        values = [r.get(key, 0.0) * 1e3 for r in rows]
        ax.bar(labels, values, bottom=bottom, color=color, label=key.removesuffix("_s"))
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set(ylabel="ms per step (mean over ranks)", title="time split per strategy")
    ax.set_ylim(0, 1.25 * max(bottom, default=1.0))  # headroom: the legend never hides a bar
    ax.tick_params(axis="x", rotation=45)
    setp(ax.get_xticklabels(), ha="right")
    ax.legend(loc="upper left", ncols=3)
    return save(fig, path)
