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


# -- --model gpt: every strategy and mesh on a small GPT, memory predicted vs measured --------
GPT_STRATEGIES = {n for n in STRATEGIES if (strategy_class(n)[0].models or ("gpt",)).count("gpt")}


def test_the_gpt_cases_cover_every_strategy_and_the_meshes():
    from sparkgrad.benchmark.strategies_gpt import gpt_cases, simulation_mesh

    cases = gpt_cases(4, 8)
    assert {name for _, name, _, _ in cases} == GPT_STRATEGIES
    assert len({label for label, *_ in cases}) == len(cases)
    for _, name, world, options in cases:  # every row's split, as the simulator's mesh
        split = simulation_mesh(name, world, options)
        assert split["dp"] * split["pp"] * split["tp"] * split["cp"] == world, (name, options)
    meshes = [o["mesh"] for _, n, _, o in cases if n == "hybrid"]
    assert {"pp=2,tp=2", "pp=2,cp=2", "dp=2,pp=2", "dp=2,cp=2", "cp=2,tp=2"} <= set(meshes)


@pytest.fixture(scope="module")
def gpt_rows_and_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("strategies_gpt")
    assert main(["--model", "gpt", "--quick", "--out", str(out)]) == 0
    return json.loads((out / "strategies.json").read_text()), out


@pytest.mark.slow  # 18 cases on 4 thread ranks: ~4 s
def test_gpt_table_has_every_strategy_and_memory_predicted_within_ten_percent(gpt_rows_and_files):
    rows, out = gpt_rows_and_files
    assert {r["strategy"] for r in rows} == GPT_STRATEGIES
    truth = next(r["loss"] for r in rows if r["strategy"] == "single")
    for r in rows:
        assert r["loss"] == pytest.approx(truth, rel=1e-4), r["label"]  # the same maths
        assert len(r["memory_plans"]) == r["world_size"]
        for plan in r["memory_plans"]:
            for kind, ratio in plan["ratio"].items():
                assert abs(ratio - 1) <= 0.10, (r["label"], plan["rank"], kind, ratio)
        assert [r["simulated_step_s"][n] > 0 for n in ("8", "16", "32", "64")] == [True] * 4
    table = (out / "strategies.txt").read_text()
    for word in ("mem MB pred/meas", "H100 ms 8/16/32/64", "mesh-pp2-cp2", "tensor-sp", "context"):
        assert word in table
