"""A picture of a (merged) trace with matplotlib: one row per thread track, as Perfetto shows.

``draw_trace(trace)`` draws every ``X`` slice as a bar on its track (nested slices thinner,
so a step, the ops in it and their backward are all visible), colours them by category
(op, backward, optimizer, collective, wait, label) and draws each flow (send → recv) as an
arrow. Measured tracks come first, the predicted ones below them, in the trace's own
sort order.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

COLOURS = {
    "cpu_op": "tab:blue",
    "backward": "tab:orange",
    "optimizer": "tab:green",
    "comm": "tab:red",
    "wait": "lightgrey",
    "user_annotation": "tab:purple",
    "step": "whitesmoke",
}


def _tracks(events: list[dict]) -> tuple[list[tuple[int, int]], dict[tuple[int, int], str]]:
    names: dict[int, str] = {}
    threads: dict[tuple[int, int], str] = {}
    order: dict[int, int] = {}
    for e in events:
        if e.get("ph") != "M":
            continue
        if e["name"] == "process_name":
            names[e["pid"]] = e["args"]["name"]
        elif e["name"] == "thread_name":
            threads[(e["pid"], e["tid"])] = e["args"]["name"]
        elif e["name"] == "process_sort_index":
            order[e["pid"]] = e["args"]["sort_index"]
    used = sorted({(e["pid"], e["tid"]) for e in events if e.get("ph") == "X"})
    used.sort(key=lambda k: (order.get(k[0], k[0]), k[1]))
    labels = {k: f"{names.get(k[0], k[0])}: {threads.get(k, k[1])}" for k in used}
    return used, labels


def _depths(slices: list[dict]) -> list[int]:
    """The nesting depth of each slice of one track (0 = outermost)."""
    out, stack = [], []
    for e in slices:
        while stack and e["ts"] >= stack[-1] - 1e-3:
            stack.pop()
        out.append(len(stack))
        stack.append(e["ts"] + e["dur"])
    return out


def draw_trace(trace: dict, ax: Any = None, t_range: tuple[float, float] | None = None) -> Any:
    """Draw ``trace`` (times in milliseconds); returns the matplotlib ``Axes``.

    ``t_range``: (start, end) in milliseconds to show, e.g. one step.
    """
    import matplotlib.pyplot as plt

    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    tracks, labels = _tracks(events)
    if ax is None:
        _, ax = plt.subplots(figsize=(12, 0.5 + 0.45 * len(tracks)))
    row = {k: i for i, k in enumerate(tracks)}
    by_track: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for e in events:
        if e.get("ph") == "X":
            by_track[(e["pid"], e["tid"])].append(e)
    for key, slices in by_track.items():
        slices.sort(key=lambda e: (e["ts"], -e["dur"]))
        for e, depth in zip(slices, _depths(slices)):
            height = 0.8 * 0.7**depth
            y = len(tracks) - 1 - row[key] - height / 2
            ax.broken_barh(
                [(e["ts"] / 1e3, max(e["dur"], 0.0) / 1e3)],
                (y, height),
                facecolors=COLOURS.get(e.get("cat"), "tab:gray"),
                edgecolor="black" if depth == 0 else "none",
                linewidth=0.3,
            )
    starts = {e["id"]: e for e in events if e.get("ph") == "s"}
    for f in (e for e in events if e.get("ph") == "f"):
        s = starts.get(f["id"])
        if s is None:
            continue
        y0 = len(tracks) - 1 - row[(s["pid"], s["tid"])]
        y1 = len(tracks) - 1 - row[(f["pid"], f["tid"])]
        ax.annotate(
            "",
            xy=(f["ts"] / 1e3, y1),
            xytext=(s["ts"] / 1e3, y0),
            arrowprops={"arrowstyle": "->", "color": "black", "lw": 0.6},
        )
    ax.set_yticks(range(len(tracks)))
    ax.set_yticklabels([labels[k] for k in reversed(tracks)], fontsize=8)
    ax.set_xlabel("time (ms)")
    if t_range is not None:
        ax.set_xlim(*t_range)
    handles = [
        plt.Rectangle((0, 0), 1, 1, facecolor=c, edgecolor="black", linewidth=0.3)
        for c in COLOURS.values()
    ]
    ax.legend(handles, list(COLOURS), loc="upper right", fontsize=7, ncol=len(COLOURS))
    return ax
