"""``main.py`` prints every rank's memory, predicted before the run and measured on its first step.

The prediction comes from the run config and the model's shapes
(:mod:`sparkgrad.parallel.memory_plan`); the measurement from the live arrays (the ledger
after the first step, the ActivationTracker's peak during it). They must agree, and the
numbers must be the ones a direct measurement of the same step gives.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sparkgrad.engine.cli import main
from sparkgrad.engine.config import RunConfig
from sparkgrad.engine.memory import FIELDS, memory_lines, plan_of
from sparkgrad.engine.run import run
from sparkgrad.parallel.memory_plan import KINDS


def test_a_single_run_prints_its_memory_predicted_and_measured(tmp_path, capsys):
    metrics = tmp_path / "m.json"
    args = ["--strategy", "single", "--data", "synthetic:256", "--epochs", "1", "--hidden", "16",
            "--optimizer", "adam", "--no-progress", "--metrics-out", str(metrics)]  # fmt: skip
    assert main(args) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("memory")]
    assert len(lines) == 1 and "predicted" in lines[0] and "measured" in lines[0]
    (rank,) = json.loads(metrics.read_text())["ranks"]
    plan = plan_of(rank)
    assert plan.predicted == plan.measured  # every kind to the byte
    # by hand: 784·16 + 16 + 16·10 + 10 = 12730 fp32 parameters; Adam 8 B each + 4 steps of 4 B;
    # batch 64: the input 64·784·4 B, the hidden 64·16·4 B, the logits 64·10·4 + 13·64 B
    assert plan.predicted["parameters"] == plan.predicted["gradients"] == 4 * 12730
    assert plan.predicted["optimizer"] == 8 * 12730 + 4 * 4
    assert plan.predicted["activations"] == 4 * 64 * (784 + 16 + 10) + 13 * 64


HAND_ACTS = 4 * 784 + (2 + 4) * 16 + 4 * 10 + 13  # per row under autocast, + weight copies
WEIGHT_COPIES = 4 * (784 * 16 + 16 * 10)  # each Linear keeps its weight's cast copy


def _printed(out: str) -> list[tuple[float, float, list[tuple[float, float]]]]:
    """``(predicted MB, measured MB, [(predicted, measured) per kind])`` of each memory line."""
    import re

    found = []
    for line in out.splitlines():
        m = re.match(r"memory rank \d+: predicted ([\d.]+) MB, measured ([\d.]+) MB \((.*)\)", line)
        if m:
            pairs = re.findall(r"([\d.]+)/([\d.]+)", m.group(3))
            found.append((float(m[1]), float(m[2]), [(float(a), float(b)) for a, b in pairs]))
    return found


def test_a_single_fp16_run_prints_its_autocast_memory(tmp_path, capsys):
    metrics = tmp_path / "m.json"
    args = ["--strategy", "single", "--precision", "fp16", "--data", "synthetic:256",
            "--epochs", "1", "--hidden", "16", "--optimizer", "adam", "--no-progress",
            "--metrics-out", str(metrics)]  # fmt: skip
    assert main(args) == 0
    (printed,) = _printed(capsys.readouterr().out)
    assert printed[0] == printed[1] and all(p == m for p, m in printed[2])
    (rank,) = json.loads(metrics.read_text())["ranks"]
    plan = plan_of(rank)
    assert plan.predicted == plan.measured
    # autocast keeps fp32 parameters, gradients and Adam state; batch 64 (module: by hand)
    assert plan.predicted["parameters"] == plan.predicted["gradients"] == 4 * 12730
    assert plan.predicted["activations"] == 64 * HAND_ACTS + WEIGHT_COPIES


@pytest.mark.slow  # two Spark jobs of 2 barrier tasks
@pytest.mark.parametrize("strategy", ["zero2", "data"])
def test_main_prints_the_fp16_memory_of_zero2_and_data_as_measured(spark_local, strategy, capsys):
    args = ["--strategy", strategy, "--world-size", "2", "--precision", "fp16",
            "--data", "synthetic:256", "--epochs", "1", "--hidden", "16", "--optimizer", "adam",
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    lines = _printed(capsys.readouterr().out)
    assert len(lines) == 2
    shard = 12730 // 2
    # by hand, MB as printed: ZeRO-2's 16-bit buffer, grad shard, master + moments; DDP's
    # fp32 parameters, gradients twice (buckets), Adam; both ranks 32 rows of activations
    want = {
        "zero2": (2 * 12730, 2 * shard, 12 * shard + 4),
        "data": (4 * 12730, 2 * 4 * 12730, 8 * 12730 + 16),
    }[strategy] + (32 * HAND_ACTS + WEIGHT_COPIES,)
    for total_pred, total_meas, pairs in lines:
        assert total_pred == total_meas == round(sum(want) / 1e6, 2)
        assert pairs == [(round(b / 1e6, 2),) * 2 for b in want]


def test_the_first_step_the_loss_scaler_skips_is_not_the_one_measured():
    from types import SimpleNamespace

    from sparkgrad.engine.memory import FirstStepMemory

    scaler = SimpleNamespace(skipped_steps=0)
    calls = []

    def train_step(x):  # the first step overflows, as fp16's first steps at 2^16 often do
        calls.append(x)
        scaler.skipped_steps += x == 1
        return float(x)

    strategy = SimpleNamespace(rank=0, train_step=train_step,
                               memory_measured=lambda acts: {"step": len(calls)})  # fmt: skip
    config = RunConfig(strategy="single", hidden=(16,), precision="fp16").validate()
    memory = FirstStepMemory(config, "", strategy, scaler)
    assert strategy.train_step(1) == 1.0 and memory.measured is None  # skipped: measure again
    assert strategy.train_step(2) == 2.0 and memory.measured == {"step": 2}
    assert strategy.train_step is train_step  # unwrapped after the measured step


def test_lines_for_ranks_without_a_plan_or_a_measurement():
    row = {"rank": 1, **dict.fromkeys(FIELDS, math.nan)}
    assert memory_lines([row]) == []
    row.update({f"memory_measured_{k}": 1e6 for k in KINDS})
    (line,) = memory_lines([row])
    assert "measured 4.00 MB" in line and "no prediction" in line


@pytest.mark.slow  # a Spark job: 2 barrier tasks
def test_every_rank_of_a_spark_run_reports_its_memory(spark_local):
    config = RunConfig(
        strategy="zero2", world_size=2, epochs=1, batch_size=32, data="synthetic:128",
        hidden=(16,), optimizer="adam", progress=False,
    )  # fmt: skip
    result = run(config)
    plans = [plan_of(r, "zero2") for r in result.ranks]
    assert [p.rank for p in plans] == [0, 1]
    for plan in plans:
        assert plan.predicted == plan.measured
    shard = -(-12730 // 2)  # ZeRO-2: the gradients' shard of the padded flat buffer
    assert plans[0].measured["gradients"] == 4 * shard
    assert len(result.memory_lines()) == 2
    assert np.isfinite([r["memory_measured_activations"] for r in result.ranks]).all()
