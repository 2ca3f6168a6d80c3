"""A ZeRO checkpoint written in 16 bits is the plain fp32 model and optimizer state.

ZeRO-2 under fp16 on 2 ranks trains 3 steps; its full state must be the single-process
layout in fp32 (the gathered master weights; every buffer shaped like its parameter). That
state loads, bit for bit, into one plain process and into ZeRO-3 under bf16 or fp16 on 4
ranks; and ZeRO-3/fp16 on 4 ranks continuing from it for 3 steps ends where ZeRO-2/fp16 on
2 ranks ends after 6 steps straight (16 bits' tolerance: the two average differently).
"""

from __future__ import annotations

import numpy as np
import pytest

from sparkgrad.autodiff import functional as F
from sparkgrad.parallel.single import SingleProcess
from tests.parallel.strategy_truth import make_model, optimizer_factory
from tests.parallel.test_zero_precision import ATOL, mlp_batches
from tests.parallel.zero_precision_truth import run_zero


def assert_equal_states(got: tuple[dict, dict], want: tuple[dict, dict]) -> None:
    (model, opt), (want_model, want_opt) = got, want
    assert sorted(model) == sorted(want_model)
    for k, v in want_model.items():
        assert model[k].dtype == v.dtype
        np.testing.assert_array_equal(model[k], v, err_msg=k)
    assert sorted(opt["state"]) == sorted(want_opt["state"])
    for i, buffers in want_opt["state"].items():
        assert sorted(opt["state"][i]) == sorted(buffers)
        for name, v in buffers.items():
            np.testing.assert_array_equal(opt["state"][i][name], v, err_msg=f"{i}.{name}")
    assert opt["param_groups"] == want_opt["param_groups"]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_sixteen_bit_checkpoint_is_fp32_and_loads_anywhere(optimizer: str) -> None:
    factory = optimizer_factory(optimizer)
    batches = mlp_batches(6)
    models = [make_model() for _ in range(2)]
    first = run_zero(models, factory, F.cross_entropy, batches[:3], 2, "fp16")[0]
    saved = (first["state"], first["opt"])
    shapes = [tuple(p.shape) for p in make_model().parameters()]
    names = [n for n, _ in make_model().named_parameters()]
    assert [saved[0][n].dtype for n in names] == [np.float32] * len(names)  # the masters
    assert sorted(saved[1]["state"]) == list(range(len(shapes)))  # one entry per parameter
    for i, buffers in saved[1]["state"].items():
        for name, v in buffers.items():
            assert v.dtype == np.float32 and v.shape in (shapes[i], ()), name

    single = SingleProcess(make_model(), factory, F.cross_entropy)
    single.load_full_state(*saved)
    assert_equal_states((single.full_state_dict(), single.full_optimizer_state_dict()), saved)
    for precision in ("bf16", "fp16"):
        models = [make_model(seed=7) for _ in range(4)]  # other weights: the load must win
        later = run_zero(models, factory, F.cross_entropy, batches[3:], 3, precision, load=saved)
        for r in later:
            assert_equal_states(r["start"], saved)
    if optimizer == "adam":
        return  # Adam's first steps are lr·sign(g): too touchy for 16-bit comparisons
    straight = run_zero(
        [make_model() for _ in range(2)], factory, F.cross_entropy, batches, 2, "fp16"
    )
    moved = max(np.abs(straight[0]["state"][k] - saved[0][k]).max() for k in names)
    assert moved > 10 * ATOL["fp16"]  # the last 3 steps matter
    for r in later:  # fp16, ZeRO-3, 4 ranks, from the checkpoint
        for k in names:
            np.testing.assert_allclose(
                r["state"][k], straight[0]["state"][k], rtol=0, atol=ATOL["fp16"], err_msg=k
            )
