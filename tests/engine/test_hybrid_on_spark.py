"""A ``dp=2,tp=2`` mesh on 4 Spark tasks: data x tensor parallel, end to end.

Two data-parallel replicas, each a pair of ranks holding halves of every layer: the
weights after training equal single-process training on the same global batch.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparkgrad.engine.config import RunConfig
from sparkgrad.engine.run import run


@pytest.fixture(scope="module")
def spark_four_slots():
    from tests.engine.conftest import _session

    yield from _session("local[4]")


@pytest.mark.slow
def test_data_by_tensor_mesh_on_spark_equals_single_process(spark_four_slots):
    base = dict(epochs=1, batch_size=64, data="synthetic:640", hidden=(32, 16), progress=False)
    single = run(RunConfig(strategy="single", world_size=1, **base))
    hybrid = run(RunConfig(strategy="hybrid", world_size=4, mesh="dp=2,tp=2", **base))
    for key, w in single.state_dict.items():
        np.testing.assert_allclose(hybrid.state_dict[key], w, rtol=1e-5, atol=1e-6, err_msg=key)
    assert len(hybrid.ranks) == 4
