"""``python -m sparkgrad.benchmark.strategies --quick``: every strategy, a table, a picture each.

No timing is asserted. What is checked: every strategy of the registry ran, the same
model and batches gave every strategy the single-process loss (an independent truth: the
strategies cut the work differently, the maths is the same), the time split and bytes
parse, the pipeline rows carry the theoretical bubble (p-1)/(m+p-1), and every PNG is a
real image.
"""

from __future__ import annotations

import json

import pytest
from matplotlib.image import imread

from sparkgrad.benchmark.strategies import main
from sparkgrad.parallel.registry import STRATEGIES, strategy_class

# the MLP benchmark runs every strategy that can cut an MLP (context splits a GPT's sequence)
MLP_STRATEGIES = {n for n in STRATEGIES if (strategy_class(n)[0].models or ("mlp",)).count("mlp")}


@pytest.fixture(scope="module")
def rows_and_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("strategies")
    assert main(["--quick", "--out", str(out)]) == 0
    return json.loads((out / "strategies.json").read_text()), out


def test_every_strategy_ran_and_reached_the_single_process_loss(rows_and_files):
    rows, _ = rows_and_files
    assert {r["strategy"] for r in rows} == MLP_STRATEGIES
    truth = next(r["loss"] for r in rows if r["strategy"] == "single")
    for r in rows:
        assert r["loss"] == pytest.approx(truth, rel=1e-4), r["label"]
        assert r["step_s"] > 0 and r["compute_s"] > 0
        if r["strategy"] != "single":
            assert r["bytes_sent"] > 0 and r["predicted_s"] > 0, r["label"]


def test_pipeline_rows_report_the_bubble_formula(rows_and_files):
    rows, _ = rows_and_files
    pipes = [r for r in rows if r["strategy"] == "pipeline"]
    assert {r["options"]["schedule"] for r in pipes} == {"gpipe", "1f1b"}
    for r in pipes:
        p, m = r["world_size"], r["options"]["micro_batches"]
        assert r["bubble_theoretical"] == pytest.approx((p - 1) / (m + p - 1))
        assert 0.0 <= r["bubble_simulated"] < 1.0 and 0.0 <= r["bubble_measured"] < 1.0


def test_each_strategy_has_a_real_timeline_picture(rows_and_files):
    rows, out = rows_and_files
    for r in rows:
        image = imread(out / f"timeline_{r['label']}.png")
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 300
        assert image.std() > 0.01  # not a blank canvas
    assert "bubble m/s/t" in (out / "strategies.txt").read_text()


def test_time_split_adds_up_to_the_wall_step(rows_and_files):
    # issue 21: compute + comm + idle is the whole step on every rank, waiting included
    rows, _ = rows_and_files
    for r in rows:
        total = r["compute_s"] + r["comm_s"] + r["idle_s"]
        assert total == pytest.approx(r["step_s"], rel=1e-6), r["label"]
        assert r["idle_s"] >= r["idle_spans_s"] - 1e-9, r["label"]
