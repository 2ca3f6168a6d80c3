"""The Spark data-parallel benchmark: both engines run the same job, and the table reads.

``python -m sparkgrad.benchmark.spark_dp`` trains the same MLP with sparkgrad DataParallel
and with PyTorch DDP (TorchDistributor) on one local Spark session. These tests check that
the comparison is a fair one — same starting weights, same number of samples per epoch,
both models actually learn — and that the report is complete. They never assert on time:
the machine is shared, and the numbers are for a human to read (see the module docstring).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sparkgrad.benchmark.spark_dp import epoch_time


def test_torch_model_starts_from_sparkgrad_weights():
    """The PyTorch MLP computes what the sparkgrad MLP built from the same seed computes."""
    torch = pytest.importorskip("torch")
    import sparkgrad as sg
    from sparkgrad.benchmark.torch_ddp_job import torch_mlp
    from sparkgrad.engine.model import build_mlp

    x = np.random.default_rng(1).standard_normal((5, 784)).astype(np.float32)
    ours = build_mlp((32, 16), seed=3)(sg.tensor(x)).array
    theirs = torch_mlp((32, 16), seed=3)(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-6)
    other = torch_mlp((32, 16), seed=4)(torch.from_numpy(x)).detach().numpy()
    assert not np.allclose(other, ours)  # the seed matters: the check above can fail


def test_epoch_time_skips_the_warm_up_epoch():
    history = [{"seconds": 9.0}, {"seconds": 1.0}, {"seconds": 3.0}, {"seconds": 2.0}]
    assert epoch_time(history) == 2.0  # median of 1, 3, 2; the 9 s warm-up is left out
    assert epoch_time(history[:1]) == 9.0  # one epoch: nothing else to take


def _rows(stdout: str) -> dict[str, list[str]]:
    """The table's data rows by engine name (the logs around it are skipped)."""
    rows = {}
    for line in stdout.splitlines():
        fields = line.split()
        if fields and fields[0] in ("sparkgrad", "pytorch-ddp") and len(fields) == 6:
            rows[fields[0]] = fields
    return rows


@pytest.mark.slow
def test_benchmark_runs_both_engines_on_spark(tmp_path, capsys):
    from sparkgrad.benchmark.spark_dp import main
    from sparkgrad.dataset import load_mnist

    out = tmp_path / "out.json"
    data, batch, world = "synthetic:512", 64, 2
    main(["--data", data, "--epochs", "1", "--world-sizes", str(world), "--json", str(out)])
    stdout = capsys.readouterr().out

    rows = _rows(stdout)
    assert set(rows) == {"sparkgrad", "pytorch-ddp"}, stdout
    for name, (_, world_col, epoch_s, train_s, wall_s, acc) in rows.items():
        assert int(world_col) == world
        numbers = [float(epoch_s), float(train_s), float(wall_s), float(acc)]
        assert all(math.isfinite(v) and v > 0 for v in numbers), (name, numbers)
        assert float(acc) > 0.2, f"{name} did not learn: accuracy {acc} (chance is 0.1)"
    ratio_lines = [ln for ln in stdout.splitlines() if ln.startswith("ratio sparkgrad/pytorch")]
    assert len(ratio_lines) == 1 and f"world={world}" in ratio_lines[0]

    # Same work on both sides: rank 0 saw the same number of samples in the epoch, the number
    # DistributedSampler(drop_last=True) and the per-rank batch give for this data set.
    n_train = len(load_mnist(data, "train")[1])
    per_rank = batch // world
    expected = (n_train // world) // per_rank * per_rank
    report = json.loads(out.read_text())
    for r in report["results"]:
        (epoch,) = r["history"]
        seen = epoch["samples_per_second"] * epoch["seconds"]
        assert seen == pytest.approx(expected, rel=1e-6), r["engine"]
    (ratio,) = report["ratios"]
    by_engine = {r["engine"]: r for r in report["results"]}
    assert ratio["epoch"] == pytest.approx(
        by_engine["sparkgrad"]["epoch_s"] / by_engine["pytorch-ddp"]["epoch_s"]
    )
