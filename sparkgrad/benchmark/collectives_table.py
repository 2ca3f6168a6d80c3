"""The text of the collectives benchmark: nccl-tests-style tables and summary lines.

One table per world size; each row is one message size, with sparkgrad's columns (time,
algbw, busbw, #wrong, predicted time and its relative error), gloo's columns, and the
ratio of bus bandwidths. Below each table: the >= 1 MiB ratio target and how many sizes
the calibrated model predicted within 15%.
"""

from __future__ import annotations

from typing import Any

MiB = 1 << 20


def _cell(row: dict, backend: str, key: str, fmt: str, width: int) -> str:
    value = row.get(backend, {}).get(key)
    if value is None:
        return f"{'n/a':>{width}}"
    sign, fmt = ("+", fmt[1:]) if fmt.startswith("+") else ("", fmt)
    return f"{value:{sign}{width}{fmt}}"


def format_report(report: dict[str, Any]) -> str:
    """The nccl-tests-style tables, the calibration fit and the summary lines, as text."""
    lines: list[str] = []
    head = (
        f"#{'size':>10} {'count':>9} {'type':>6} {'redop':>5} | {'time(us)':>10} {'algbw':>7} "
        f"{'busbw':>7} {'#wrong':>6} {'pred(us)':>10} {'err':>6} | {'gloo(us)':>10} "
        f"{'busbw':>7} {'#wrong':>6} | {'ratio':>5}"
    )
    for table in report["tables"]:
        n = table["world_size"]
        lines += [
            "",
            f"# all_reduce, {n} ranks on 127.0.0.1: sparkgrad TCP (algorithm "
            f"{report['algo'] or 'auto'}) | PyTorch gloo | busbw ratio sparkgrad/gloo",
            "#" + " " * 34 + "| sparkgrad (GB/s)" + " " * 42 + "| gloo",
            head,
        ]
        for row in table["rows"]:
            lines.append(
                f" {row['nbytes']:>10} {row['count']:>9} {'float':>6} {'sum':>5} | "
                f"{_cell(row, 'sparkgrad', 'time_us', '.1f', 10)} "
                f"{_cell(row, 'sparkgrad', 'algbw', '.3f', 7)} "
                f"{_cell(row, 'sparkgrad', 'busbw', '.3f', 7)} "
                f"{_cell(row, 'sparkgrad', 'wrong', 'd', 6)} "
                f"{_cell(row, 'sparkgrad', 'pred_us', '.1f', 10)} "
                f"{_cell(row, 'sparkgrad', 'pred_err', '+.0%', 6)} | "
                f"{_cell(row, 'gloo', 'time_us', '.1f', 10)} "
                f"{_cell(row, 'gloo', 'busbw', '.3f', 7)} "
                f"{_cell(row, 'gloo', 'wrong', 'd', 6)} | "
                + (f"{row['ratio']:5.2f}" if "ratio" in row else "  n/a")
            )
        big = [r["ratio"] for r in table["rows"] if "ratio" in r and r["nbytes"] >= MiB]
        if big:
            lines.append(f"# >= 1 MiB: min busbw ratio {min(big):.2f} (target >= 1.0)")
        errs = [
            abs(r["sparkgrad"]["pred_err"])
            for r in table["rows"]
            if "pred_err" in r.get("sparkgrad", {})
        ]
        if errs:
            within = sum(e <= 0.15 for e in errs)
            lines.append(
                f"# predicted within 15% of measured: {within}/{len(errs)} sizes "
                f"(worst {max(errs):.0%})"
            )
    if "calibration" in report:
        lines += ["", report["calibration"]["text"]]
    lines += [
        "",
        f"# model: 1x8-h100 (NVLink4) ring all_reduce of 1 GiB -> busbw "
        f"{report['h100_ring_busbw_GBps']:.1f} GB/s (nccl-tests on 8 x H100: ~370)",
    ]
    lines += [f"# error: {e}" for e in report["errors"]]
    return "\n".join(lines)
