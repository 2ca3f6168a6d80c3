"""The report's parts, one test each: verdict wording, the scaling model, the environment,
the memory measurement and the parameter count behind the gradient bytes."""

from __future__ import annotations

import math
import platform

import numpy as np
import pytest

from sparkgrad.benchmark.report.scaling import measured_scaling, model_scaling
from sparkgrad.benchmark.report.verdict import geometric_mean, verdict


@pytest.mark.parametrize(
    ("ratio", "words"),
    [
        (0.5, "faster by 50%"),
        (0.8, "faster by 20%"),
        (0.949, "faster by 5%"),
        (0.95, "on par"),
        (1.0, "on par"),
        (1.05, "on par"),
        (1.3, "slower by 30%"),
        (1.99, "slower by 99%"),
        (2.4, "2.4× slower"),
        (10.0, "10.0× slower"),
        (math.nan, "n/a"),
        (0.0, "faster by 100%"),
        (-1.0, "n/a"),
    ],
)
def test_verdict_wording(ratio, words):
    assert verdict(ratio) == words


def test_verdict_for_memory_uses_its_own_words():
    assert verdict(0.5, "smaller", "larger") == "smaller by 50%"
    assert verdict(3.0, "smaller", "larger") == "3.0× larger"


def test_geometric_mean_treats_twice_and_half_alike():
    assert math.isclose(geometric_mean([2.0, 0.5]), 1.0)
    assert math.isclose(geometric_mean([1.0, 4.0]), 2.0)
    assert math.isnan(geometric_mean([]))


def test_modelled_scaling_is_monotonic_and_efficiency_at_most_one():
    points = model_scaling(compute_s=2e-3, grad_bytes=1 << 24, batch_per_rank=128)
    worlds = [p.world_size for p in points]
    assert worlds == [1, 2, 4, 8, 16, 32, 64]
    assert points[0].efficiency == 1.0 and points[0].comm_s == 0.0
    for a, b in zip(points, points[1:]):
        assert b.throughput > a.throughput  # more GPUs never lose throughput here ...
        assert b.efficiency <= a.efficiency + 1e-12  # ... but each adds less
    for p in points:
        assert 0 < p.efficiency <= 1
        # efficiency is the share of the step spent computing (no overlap in the model)
        assert math.isclose(p.efficiency, p.compute_s / p.step_s, rel_tol=1e-9)
        assert math.isclose(p.throughput, p.world_size * 128 / p.step_s, rel_tol=1e-9)


def test_crossing_nodes_costs_more_than_nvlink_alone():
    """8 -> 16 ranks leaves the NVLink node for InfiniBand: the all_reduce gets slower."""
    points = {p.world_size: p for p in model_scaling(1e-3, 1 << 26, 64, "8x8-h100")}
    assert points[16].comm_s > points[8].comm_s
    slow = {p.world_size: p for p in model_scaling(1e-3, 1 << 26, 64, "8x8-pcie")}
    assert slow[16].efficiency < points[16].efficiency  # 100GbE is slower than IB NDR400


def test_scaling_skips_world_sizes_that_do_not_fill_nodes():
    worlds = [p.world_size for p in model_scaling(1e-3, 1 << 20, 32, "2x8-h100", (4, 12, 16, 32))]
    assert worlds == [4, 16]


def test_scaling_rejects_nonsense():
    with pytest.raises(ValueError, match="compute_s"):
        model_scaling(0.0, 1 << 20, 32)


def test_measured_scaling_efficiency_is_relative_to_one_rank():
    runs = [
        {"engine": "sparkgrad", "world_size": 1, "throughput": 100.0},
        {"engine": "sparkgrad", "world_size": 2, "throughput": 150.0},
    ]
    eff = {p.world_size: p.efficiency for p in measured_scaling(runs)}
    assert eff == {1: 1.0, 2: 0.75}


def test_environment_fields():
    from sparkgrad.benchmark.report.environment import collect_environment

    env = collect_environment("cpu", threads=1)
    for key in (
        "cpu",
        "cores",
        "memory_gib",
        "gpu",
        "python",
        "numpy",
        "cupy",
        "torch",
        "pyspark",
        "sparkgrad",
        "git_commit",
    ):
        assert key in env, key
    assert env["python"] == platform.python_version()
    assert env["numpy"] == np.__version__
    assert env["cores"] >= 1 and env["memory_gib"] > 0


def test_git_commit_is_read_from_the_git_folder(tmp_path):
    from sparkgrad.benchmark.report.environment import git_commit

    sha = "0123456789abcdef0123456789abcdef01234567"
    git = tmp_path / "repo" / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "packed-refs").write_text(f"# pack-refs\n{sha} refs/heads/main\n")
    inner = tmp_path / "repo" / "pkg" / "mod.py"
    inner.parent.mkdir()
    inner.write_text("")
    assert git_commit(inner) == sha  # from packed-refs
    (git / "refs" / "heads" / "main").write_text(sha[::-1] + "\n")
    assert git_commit(inner) == sha[::-1]  # a loose ref wins
    (git / "HEAD").write_text(sha + "\n")
    assert git_commit(inner) == sha  # detached HEAD


def test_gradient_bytes_come_from_the_real_parameter_count():
    torch = pytest.importorskip("torch")
    from sparkgrad.benchmark.report.comparator import mlp_parameters
    from sparkgrad.benchmark.torch_ddp_job import torch_mlp

    for hidden in ((256, 256), (64, 32, 16)):
        model = torch_mlp(hidden, seed=0)
        assert mlp_parameters(hidden) == sum(p.numel() for p in model.parameters())
        assert isinstance(model, torch.nn.Module)


@pytest.mark.slow  # processes or a timeout: ~2-3 s, kept out of the quick loop
def test_memory_grows_with_the_batch():
    """A 4096 x 1024 float32 activation is 16 MiB: a big batch must add far more than a small."""
    from sparkgrad.benchmark.report.memory import measure

    small = measure("sparkgrad", (1024,), batch=8, optimizer="sgd", steps=2)
    big = measure("sparkgrad", (1024,), batch=4096, optimizer="sgd", steps=2)
    assert small.peak_mib >= small.setup_mib > 0
    assert big.step_mib > small.step_mib + 16
