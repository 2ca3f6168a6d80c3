"""The GPT on ``dp x pp x cp x tp`` meshes (``--strategy hybrid --mesh ...``): every mesh ends
K steps with a single process's weights, losses, optimizer state and logits (rtol 1e-5).

Truth: :func:`tests.parallel.tp_gpt_helpers.train_single` (same seed, same global batches,
dropout 0). No ignored targets: the mesh averages equal shares of tokens (gpt_mesh.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from sparkgrad.errors import ConfigError
from sparkgrad.models.sequence_parts import TokenCrossEntropy
from sparkgrad.parallel.hybrid.gpt_mesh import GPTMesh
from sparkgrad.parallel.registry import make_strategy
from tests.parallel.tp_gpt_helpers import (
    assert_matches,
    build,
    optimizer_factory,
    run_ranks,
    single_logits,
    train_single,
)

OPTIONS = {"context": 16, "num_layers": 3}


def batches(steps: int = 3, batch: int = 8, seed: int = 1) -> list:
    rng = np.random.default_rng(seed)
    return [
        (rng.integers(0, 11, (batch, 16)), rng.integers(0, 11, (batch, 16))) for _ in range(steps)
    ]


def on_mesh(mesh: str, optimizer: str, micro_batches: int = 2, schedule: str = "1f1b"):
    def make():
        return make_strategy(
            "hybrid", build(0, **OPTIONS), optimizer_factory(optimizer), TokenCrossEntropy(),
            mesh=mesh, micro_batches=micro_batches, schedule=schedule, split=None,
        )  # fmt: skip

    return make


def world_of(mesh: str) -> int:
    return int(np.prod([int(part.split("=")[1]) for part in mesh.split(",")]))


MESHES = ["pp=2", "cp=2", "dp=2,pp=2", "pp=2,tp=2", "cp=2,tp=2", "dp=2,cp=2", "pp=2,cp=2"]


@pytest.mark.parametrize("mesh", MESHES)
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_gpt_mesh_equals_one_process(mesh: str, optimizer: str) -> None:
    data = batches()
    truth = train_single(data, optimizer, **OPTIONS)
    x = data[0][0][:3]
    results = run_ranks(world_of(mesh), on_mesh(mesh, optimizer), data, predict_x=x)
    assert_matches(results, truth)
    want = single_logits(truth["state"], x, **OPTIONS)
    for r in results:
        np.testing.assert_allclose(r["logits"], want, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("mesh", ["dp=2,pp=2,tp=2", "pp=2,cp=2,tp=2", "dp=2,pp=2,cp=2"])
@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
def test_eight_rank_meshes(mesh: str, schedule: str) -> None:
    data = batches(2)
    truth = train_single(data, "adamw", **OPTIONS)
    assert_matches(run_ranks(8, on_mesh(mesh, "adamw", schedule=schedule), data), truth)


def test_the_mesh_picks_the_composition_and_reports_its_place() -> None:
    reports = run_ranks(4, on_mesh("pp=2,tp=2", "sgd"), batches(1))
    assert [r["report"]["coords"] for r in reports] == [
        {"dp": 0, "pp": p, "cp": 0, "tp": t} for p in (0, 1) for t in (0, 1)
    ]
    assert reports[0]["report"]["layers"][0] == "embedding"
    assert reports[-1]["report"]["layers"][-1] == "head"


def test_a_checkpoint_written_under_one_mesh_loads_under_another() -> None:
    data = batches(4)
    truth = train_single(data, "adamw", **OPTIONS)
    first = run_ranks(4, on_mesh("pp=2,tp=2", "adamw"), data[:2])[0]
    rest = run_ranks(
        4, on_mesh("dp=2,cp=2", "adamw"), data[2:], load=(first["state"], first["opt"])
    )
    for r in rest:
        for k, want in truth["state"].items():
            np.testing.assert_allclose(r["state"][k], want, rtol=1e-5, atol=1e-6, err_msg=k)


def test_ignored_targets_are_refused_not_averaged_wrong() -> None:
    data = batches(1)
    data[0][1][0, 0] = -100

    def make():
        return GPTMesh(
            build(0, **OPTIONS), optimizer_factory("sgd"), TokenCrossEntropy(), mesh="cp=2"
        )

    with pytest.raises(ConfigError, match="ignore_index -100"):
        run_ranks(2, make, data)
