"""``plot_timelines``: one row per rank, a coloured bar per span -- the picture of a step.

Reading it: forward (blue) and backward (orange) are work; ``comm`` (green) is moving
bytes nobody could overlap; ``idle`` (grey) is a rank waiting for another -- under naive
model parallelism most of every row is grey, GPipe shrinks it to the ramp-up and
ramp-down triangles, 1F1B keeps the same bubble with far fewer live activations.
"""

from __future__ import annotations

from typing import Any

COLORS = {
    "forward": "#4c72b0",
    "backward": "#dd8452",
    "comm": "#55a868",
    "idle": "#b0b0b0",
    "optimizer": "#8172b3",
}


def plot_timelines(timelines: list[dict], title: str = "", ax: Any = None) -> Any:
    """Draw ``Timeline.as_dict()`` results (one per rank) on ``ax``; returns the figure.

    Times are in milliseconds from each timeline's origin; rank 0 is the top row.
    """
    if ax is None:  # a plain Figure: no backend needed, a notebook's inline plots untouched
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 0.6 * len(timelines) + 1.2))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    for row, tl in enumerate(sorted(timelines, key=lambda t: t["rank"])):
        for kind, start, duration, _label in tl["spans"]:
            ax.broken_barh(
                [(start * 1e3, duration * 1e3)], (row - 0.4, 0.8), color=COLORS.get(kind, "k")
            )
    ax.set_yticks(range(len(timelines)), [f"rank {t['rank']}" for t in timelines])
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds")
    ax.set_title(title)
    from matplotlib.patches import Patch

    ax.legend(
        handles=[Patch(color=c, label=k) for k, c in COLORS.items()],
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize="small",
        frameon=False,
    )
    fig.tight_layout()
    return fig
