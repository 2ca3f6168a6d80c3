"""The summary table at the top of the report: each headline ratio with a plain verdict.

One row per comparison — step time per model and optimizer (geometric mean over the
batches, so no single batch size dominates), seconds per epoch per dataset, memory added by
the steps per model, all_reduce time at the largest message per world size, and seconds
per epoch on Spark per world size. Columns: sparkgrad, PyTorch, ratio (sparkgrad /
PyTorch of a cost), verdict (:func:`~sparkgrad.benchmark.report.verdict.verdict`).
"""

from __future__ import annotations

from typing import Any

from sparkgrad.benchmark.report.verdict import geometric_mean, verdict


def _arch(hidden: list[int]) -> str:
    return "784-" + "-".join(map(str, hidden)) + "-10"


def summary_rows(results: dict) -> list[list[Any]]:
    """``[comparison, sparkgrad, pytorch, ratio, verdict]`` for every headline ratio."""
    rows: list[list[Any]] = []
    steps = results.get("step_times") or []
    for hidden in dict.fromkeys(tuple(r["hidden"]) for r in steps):
        for opt in dict.fromkeys(r["optimizer"] for r in steps):
            mine = [r for r in steps if tuple(r["hidden"]) == hidden and r["optimizer"] == opt]
            ours = geometric_mean([r["sparkgrad_ms"] for r in mine])
            theirs = geometric_mean([r["torch_ms"] for r in mine])
            what = f"step time ms, MLP {_arch(list(hidden))} {opt} (geo-mean over batches)"
            rows.append([what, ours, theirs, ours / theirs, verdict(ours / theirs)])
    for t in results.get("training") or []:
        ours, theirs = t["epoch_s"]["sparkgrad"], t["epoch_s"]["pytorch"]
        rows.append(
            [f"seconds per epoch, {t['data']}", ours, theirs, t["ratio"], verdict(t["ratio"])]
        )
    for m in results.get("memory") or []:
        ours, theirs = m["sparkgrad"]["step_mib"], m["pytorch"]["step_mib"]
        rows.append(
            [
                f"MiB added by steps, {_arch(m['hidden'])}",
                ours,
                theirs,
                m["step_ratio"],
                verdict(m["step_ratio"], "smaller", "larger"),
            ]
        )
    for table in (results.get("collectives") or {}).get("tables", []):
        big = [r for r in table["rows"] if "sparkgrad" in r and "gloo" in r]
        if big:
            r = big[-1]
            ours, theirs = r["sparkgrad"]["time_us"], r["gloo"]["time_us"]
            rows.append(
                [
                    f"all_reduce us, {r['nbytes']} B, {table['world_size']} ranks (vs gloo)",
                    ours,
                    theirs,
                    ours / theirs,
                    verdict(ours / theirs),
                ]
            )
    spark = (results.get("distributed") or {}).get("spark") or {}
    by = {(r["engine"], r["world_size"]): r for r in spark.get("results", [])}
    for q in spark.get("ratios", []):
        w = q["world_size"]
        ours, theirs = by[("sparkgrad", w)]["epoch_s"], by[("pytorch-ddp", w)]["epoch_s"]
        rows.append(
            [
                f"seconds per epoch on Spark, {w} ranks (vs DDP)",
                ours,
                theirs,
                q["epoch"],
                verdict(q["epoch"]),
            ]
        )
    return rows
