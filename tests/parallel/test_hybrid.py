"""HybridParallel (data x tensor on a mesh) must train exactly what one process trains.

Each dp replica trains on its contiguous rows of the global batch, tensor parallel inside
its tp group; the truth is one process on the whole batch with the same seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sparkgrad.autodiff import functional as F
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.hybrid.strategy import HybridParallel
from tests.parallel.strategy_truth import (
    assert_same_state,
    make_batches,
    optimizer_factory,
    train_single,
)
from tests.parallel.test_tensor_parallel_strategy import (
    ODD_WIDTHS,
    TP_WIDTHS,
    assert_matches_truth,
    build,
    run_strategy,
    tp_maker,
)


def hybrid_maker(
    optimizer: str, mesh: str, seed: int = 0, widths: tuple = TP_WIDTHS
) -> Callable[[], Any]:
    """What each rank calls to build its HybridParallel strategy."""
    return lambda: HybridParallel(
        build(seed, widths), optimizer_factory(optimizer), F.cross_entropy, mesh=mesh
    )


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize(
    ("mesh", "world", "dp"), [("dp=2,tp=2", 4, 2), ("dp=2,tp=1", 2, 2), ("dp=1,tp=2", 2, 1)]
)
def test_hybrid_equals_single_process(mesh: str, world: int, dp: int, optimizer: str) -> None:
    batches = make_batches(steps=3, batch=8)
    truth = train_single(batches, optimizer, widths=TP_WIDTHS)
    results = run_strategy(world, hybrid_maker(optimizer, mesh), batches)
    assert_matches_truth(results, truth)
    tp = world // dp
    for rank, r in enumerate(results):
        assert r["dp"] == (dp, rank // tp)  # tp partners read the same rows
        assert r["report"]["strategy"] == "hybrid" and r["report"]["rank"] == rank
        if world > 1:
            assert r["report"]["bytes_sent"] > 0


def test_hybrid_with_a_replicated_head() -> None:
    batches = make_batches(steps=3, batch=8)
    truth = train_single(batches, "adam", widths=ODD_WIDTHS)
    make = hybrid_maker("adam", "dp=2,tp=2", widths=ODD_WIDTHS)
    assert_matches_truth(run_strategy(4, make, batches), truth)


def test_checkpoint_moves_from_hybrid_to_tensor_parallel() -> None:
    batches = make_batches(steps=4, batch=8)
    truth = train_single(batches, "sgd", widths=TP_WIDTHS)
    first, second = batches[:2], batches[2:]
    saved = run_strategy(4, hybrid_maker("sgd", "dp=2,tp=2"), first)[0]
    load = (saved["state"], saved["opt"])
    for r in run_strategy(2, tp_maker("sgd", seed=7), second, load=load):
        assert_same_state(r["state"], truth["state"])
    # and back: tensor parallel on 2 ranks -> hybrid dp=2,tp=2 on 4
    saved = run_strategy(2, tp_maker("sgd"), first)[0]
    load = (saved["state"], saved["opt"])
    for r in run_strategy(4, hybrid_maker("sgd", "dp=2,tp=2", seed=7), second, load=load):
        assert_same_state(r["state"], truth["state"])


@pytest.mark.parametrize(
    ("mesh", "world", "message"),
    [
        ("dp=2,tp=2", 2, "expected the world size 2"),
        ("dp=1,pp=2,tp=2", 4, "data x tensor meshes"),
        ("dp=2,zz=2", 4, "expected axes among"),
        ("dp:2", 2, "expected 'axis=size' items"),
        ("dp=1,tp=3", 3, "3 does not divide 16"),
    ],
)
def test_bad_meshes_are_clear_errors(mesh: str, world: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run_strategy(world, hybrid_maker("sgd", mesh, widths=(12, 16, 4, 4)), [])
