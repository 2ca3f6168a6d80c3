"""What a profile holds and how it is summed up: PyTorch's ``FunctionEvent`` and the table.

``prof.events()`` is an :class:`EventList` of :class:`FunctionEvent` (one per recorded span),
``prof.key_averages()`` an :class:`EventList` of :class:`FunctionEventAvg` (one per name, or
per name and input shapes with ``group_by_input_shape=True``). Times are in microseconds, as
in PyTorch:

- ``cpu_time_total``: the wall time from the span's start to its end;
- ``self_cpu_time_total``: that, minus the spans that ran inside it (so the self times of
  all spans add up to the profiled time, and a table's "Self CPU %" column sums to 100 %);
- ``cpu_time``: the average of ``cpu_time_total`` over the calls.

:meth:`EventList.table` prints the same columns, widths and time units as
``torch.autograd.profiler_util._build_table``.
"""

from __future__ import annotations

from typing import Any

NAME_WIDTH, SHAPES_WIDTH, COLUMN_WIDTH, SPACING = 55, 80, 12, 2


class FunctionEvent:
    """One recorded span (times in microseconds)."""

    def __init__(self, span: Any, origin_ns: int) -> None:
        self.name = self.key = span.name
        self.cat, self.track = span.cat, span.track
        self.time_range_start = (span.start - origin_ns) / 1e3
        self.cpu_time_total = span.dur / 1e3
        self.self_cpu_time_total = (span.dur - span.child_ns) / 1e3
        self.input_shapes = span.shapes
        self.nbytes = span.nbytes
        self.args = dict(span.args or {})
        self.count = 1

    @property
    def time_range_end(self) -> float:
        return self.time_range_start + self.cpu_time_total

    def __repr__(self) -> str:
        return (
            f"<FunctionEvent name={self.name} cpu_time_total={self.cpu_time_total:.3f}us "
            f"self_cpu_time_total={self.self_cpu_time_total:.3f}us "
            f"input_shapes={self.input_shapes}>"
        )


class FunctionEventAvg:
    """The events of one key added up: counts and total/self times (microseconds)."""

    def __init__(self, key: str, input_shapes: Any = None) -> None:
        self.key, self.input_shapes = key, input_shapes
        self.count = 0
        self.cpu_time_total = self.self_cpu_time_total = 0.0
        self.nbytes = 0

    def add(self, event: FunctionEvent) -> FunctionEventAvg:
        self.count += 1
        self.cpu_time_total += event.cpu_time_total
        self.self_cpu_time_total += event.self_cpu_time_total
        self.nbytes += event.nbytes
        return self

    @property
    def cpu_time(self) -> float:
        """Average total time per call."""
        return self.cpu_time_total / max(self.count, 1)

    @property
    def self_cpu_time(self) -> float:
        return self.self_cpu_time_total / max(self.count, 1)

    def __repr__(self) -> str:
        return (
            f"<FunctionEventAvg key={self.key} self_cpu_time={self.self_cpu_time_total:.3f}us "
            f"cpu_time={self.cpu_time_total:.3f}us count={self.count} "
            f"input_shapes={self.input_shapes}>"
        )


class EventList(list):
    """A list of events with PyTorch's summaries."""

    def key_averages(self, group_by_input_shape: bool = False) -> EventList:
        """One :class:`FunctionEventAvg` per name (and input shapes), in first-seen order."""
        groups: dict[Any, FunctionEventAvg] = {}
        for event in self:
            shapes = str(event.input_shapes) if group_by_input_shape else None
            key = (event.key, shapes)
            if key not in groups:
                groups[key] = FunctionEventAvg(event.key, event.input_shapes if shapes else None)
            groups[key].add(event)
        return EventList(groups.values())

    @property
    def self_cpu_time_total(self) -> float:
        return sum(e.self_cpu_time_total for e in self)

    def table(
        self,
        sort_by: str | None = None,
        row_limit: int = 100,
        max_name_column_width: int = NAME_WIDTH,
        max_shapes_column_width: int = SHAPES_WIDTH,
        header: str | None = None,
        top_level_events_only: bool = False,
    ) -> str:
        """The summary table, shaped like PyTorch's (``sort_by`` an attribute, descending)."""
        return build_table(
            self, sort_by, row_limit, max_name_column_width, max_shapes_column_width, header
        )

    def __str__(self) -> str:
        return self.table()


def format_time(time_us: float) -> str:
    """``1.234s``, ``1.234ms`` or ``1.234us``, as PyTorch prints times."""
    if time_us >= 1e6:
        return f"{time_us / 1e6:.3f}s"
    if time_us >= 1e3:
        return f"{time_us / 1e3:.3f}ms"
    return f"{time_us:.3f}us"


def format_share(time_us: float, total_us: float) -> str:
    if total_us == 0:
        return "NaN" if time_us == 0 else "inf"  # what PyTorch's assert guards against
    return f"{time_us * 100.0 / total_us:.2f}%"


SORT_KEYS = ("self_cpu_time_total", "cpu_time_total", "cpu_time", "count", "self_cpu_time")


def build_table(
    events: list,
    sort_by: str | None,
    row_limit: int,
    name_width: int | None = NAME_WIDTH,
    shapes_width: int | None = SHAPES_WIDTH,
    header: str | None = None,
) -> str:
    """Rows of Name, Self CPU %, Self CPU, CPU total %, CPU total, CPU time avg, # of Calls
    (and Input Shapes when the events carry them), then ``Self CPU time total: ...``."""
    if not events:
        return ""
    if sort_by is not None:
        if sort_by not in SORT_KEYS:
            raise AttributeError(
                f"sort_by={sort_by!r}: expected one of {', '.join(SORT_KEYS)} (CPU only)"
            )
        events = sorted(events, key=lambda e: getattr(e, sort_by), reverse=True)
    has_shapes = any(e.input_shapes for e in events)
    name_col = max(len(e.key) for e in events) + 4
    name_col = min(name_col, name_width) if name_width is not None else name_col
    shapes_col = max(len(str(e.input_shapes)) for e in events) + 4
    shapes_col = min(shapes_col, shapes_width) if shapes_width is not None else shapes_col
    headers = ["Name", "Self CPU %", "Self CPU", "CPU total %", "CPU total", "CPU time avg"]
    headers.append("# of Calls")
    widths = [name_col] + [COLUMN_WIDTH] * (len(headers) - 1)
    if has_shapes:
        headers.append("Input Shapes")
        widths.append(shapes_col)
    row_format = "".join("{: >" + str(w) + "}" + " " * SPACING for w in widths)
    separator = "".join("-" * w + " " * SPACING for w in widths)
    line_length = sum(w + SPACING for w in widths) - SPACING
    total = sum(e.self_cpu_time_total for e in events)
    lines = []
    if header is not None:
        lines += ["=" * line_length, header]
    lines += [separator, row_format.format(*headers), separator]
    for e in events[:row_limit]:
        name = e.key
        if name_width is not None and len(name) >= name_width - 3:
            name = name[: name_width - 3] + "..."
        row = [
            name,
            format_share(e.self_cpu_time_total, total),
            format_time(e.self_cpu_time_total),
            format_share(e.cpu_time_total, total),
            format_time(e.cpu_time_total),
            format_time(e.cpu_time_total / max(e.count, 1)),
            e.count,
        ]
        if has_shapes:
            shapes = str(e.input_shapes)
            if shapes_width is not None and len(shapes) >= shapes_width - 3:
                shapes = shapes[: shapes_width - 3] + "..."
            row.append(shapes)
        lines.append(row_format.format(*row))
    lines += [separator, f"Self CPU time total: {format_time(total)}"]
    return "\n".join(lines) + "\n"
