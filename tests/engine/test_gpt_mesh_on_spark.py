"""The GPT mesh on Spark (``--strategy hybrid --mesh ... --model gpt``): the exported weights
equal ``--strategy single`` on the same seed (dropout 0, SGD with momentum; see
tests/engine/test_tensor_parallel_gpt_on_spark.py for why SGD).

- ``pp=2,tp=2`` on 4 barrier tasks of ``local[4]``: two stages, each split over two ranks;
- ``pp=2,cp=2`` on 4 executor processes would need 4 JVMs; ``local-cluster[2,1,1024]`` runs
  ``cp=2`` in 2 executor processes: ring attention between two JVMs' Python workers.
"""

from __future__ import annotations

import pytest

from sparkgrad.engine.cli import parse_config
from tests.engine.export_truth import assert_export_equals_single
from tests.engine.test_tensor_parallel_gpt_on_spark import _corpus


@pytest.fixture(scope="module")
def spark_four_slots():
    from tests.engine.conftest import _session

    yield from _session("local[4]")


def _compare(tmp_path, mesh: str, world: int) -> None:
    from sparkgrad.engine.run import run

    common = [
        *("--model", "gpt", "--data", _corpus(tmp_path), "--epochs", "1", "--no-progress"),
        *("--d-model", "16", "--heads", "4", "--layers", "2", "--context", "16"),
        *("--batch-size", "8", "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9"),
        *("--dropout", "0", "--seed", "3", "--micro-batches", "2"),
    ]
    single = run(parse_config([*common, "--strategy", "single", "--export", f"{tmp_path}/1.st"]))
    mesh_run = run(
        parse_config(
            [
                *common,
                *("--strategy", "hybrid", "--world-size", str(world), "--mesh", mesh),
                *("--export", f"{tmp_path}/mesh.st"),
            ]
        )
    )
    assert mesh_run.comms["calls"] > 0 and len(mesh_run.ranks) == world
    assert_export_equals_single(tmp_path, "mesh.st", "hybrid")
    assert mesh_run.history[-1]["test_loss"] == pytest.approx(
        single.history[-1]["test_loss"], rel=1e-5
    )


@pytest.mark.slow
def test_pipeline_by_tensor_mesh_on_spark(spark_four_slots, tmp_path):
    _compare(tmp_path, "pp=2,tp=2", 4)


@pytest.mark.slow
def test_context_mesh_on_a_local_cluster(spark_cluster, tmp_path):
    _compare(tmp_path, "cp=2", 2)
