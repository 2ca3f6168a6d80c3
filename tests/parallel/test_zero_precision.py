"""ZeRO 1/2/3 in the paper's precision (16-bit params and grads, fp32 master shards) against
one process doing the same maths by hand (tests/parallel/zero_precision_truth.py).

Tolerances are 16 bits' (the ranks average their 16-bit gradients, the process computes
one: the roundings differ), but each test first checks that training moved the weights
by far more than the tolerance, so a skipped, doubled or unscaled step would fail it.
SGD with momentum on the MLP: Adam's first steps are ``lr · sign(g)``, and a gradient
that cancels to almost zero could take either sign under another rounding. The GPT runs
AdamW with eps 1e-3 (see tests/parallel/tp_gpt_helpers.py) as well as SGD.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparkgrad.autodiff import functional as F
from sparkgrad.errors import ConfigError
from sparkgrad.models.sequence_parts import TokenCrossEntropy
from sparkgrad.parallel.zero.strategy import ZeRO
from tests.parallel import tp_gpt_helpers as gpt
from tests.parallel.strategy_truth import make_batches, make_model, optimizer_factory
from tests.parallel.test_memory_ledger import layer_sizes, padded
from tests.parallel.zero_precision_truth import LOW, run_zero, train_reference

ATOL = {"fp16": 4e-4, "bf16": 4e-3}  # about 7x and 4x the largest difference seen


def mlp_batches(steps: int = 8) -> list:
    return make_batches(1, 24) * steps  # one batch again and again: the loss must fall


def gpt_batches(steps: int = 6) -> list:
    rng = np.random.default_rng(1)
    return [(rng.integers(0, 11, (8, 8)), rng.integers(0, 11, (8, 8)))] * steps


def check_against_reference(results: list, ref: dict, initial: dict, precision: str) -> None:
    atol = ATOL[precision]
    moved = max(np.abs(ref["state"][k] - initial[k]).max() for k in initial)
    assert moved > 10 * atol  # the comparison below can fail
    for r in results:
        assert r["amp"]["skipped_steps"] == ref["skipped"] == 0
        assert r["state"].keys() == initial.keys()
        for k, want in ref["state"].items():
            assert r["state"][k].dtype == np.float32  # the checkpoint is the fp32 master
            np.testing.assert_allclose(r["state"][k], want, rtol=0, atol=atol, err_msg=k)
            np.testing.assert_array_equal(r["state"][k], results[0]["state"][k])  # all ranks
        np.testing.assert_allclose(r["losses"], ref["losses"], rtol=0, atol=atol)
        for sixteen, master in zip(r["sixteen"], r["masters"]):
            assert sixteen.dtype == LOW[precision] and master.dtype == np.float32
            np.testing.assert_array_equal(sixteen, master.astype(sixteen.dtype))  # cast down
        # the master holds what 16 bits cannot: the small updates a 16-bit weight drops
        master = np.concatenate(r["masters"])
        assert np.any(master != master.astype(LOW[precision]).astype(np.float32))


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_mlp_equals_one_process_with_master_weights(stage: int, world: int, precision: str):
    batches, factory = mlp_batches(), optimizer_factory("sgd")
    ref = train_reference(make_model(), factory, F.cross_entropy, batches, precision)
    models = [make_model() for _ in range(world)]
    initial = {n: p.array.copy() for n, p in make_model().named_parameters()}
    results = run_zero(models, factory, F.cross_entropy, batches, stage, precision)
    check_against_reference(results, ref, initial, precision)
    assert results[0]["losses"][-1] < 0.97 * results[0]["losses"][0]


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_fp16_on_each_device_equals_one_process(stage: int, device: str):
    """The same on ``device="cuda"`` (CuPy: native float16 matmuls and collectives of
    CuPy arrays), against the CPU truth."""
    batches, factory = mlp_batches(), optimizer_factory("sgd")
    ref = train_reference(make_model(), factory, F.cross_entropy, batches, "fp16")
    models = [make_model() for _ in range(2)]
    initial = {n: p.array.copy() for n, p in make_model().named_parameters()}
    results = run_zero(models, factory, F.cross_entropy, batches, stage, "fp16", device=device)
    check_against_reference(results, ref, initial, "fp16")


def test_bad_precisions_are_config_errors(device: str):
    model = make_model().to(device)
    with pytest.raises(ConfigError, match="precision must be one of fp32, fp16, bf16, found 'fp8'"):
        ZeRO(model, optimizer_factory("sgd"), F.cross_entropy, stage=2, precision="fp8")
    if device == "cuda":  # checked before any rank communicates
        with pytest.raises(ConfigError, match="CuPy has no bfloat16 arrays; use fp16 on cuda"):
            ZeRO(model, optimizer_factory("sgd"), F.cross_entropy, stage=2, precision="bf16")


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("world", [2, pytest.param(4, marks=pytest.mark.slow)])
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_gpt_equals_one_process_with_master_weights(stage, world, precision, optimizer):
    batches, factory, loss = gpt_batches(), gpt.optimizer_factory(optimizer), TokenCrossEntropy()
    ref = train_reference(gpt.build(0), factory, loss, batches, precision)
    initial = {n: p.array.copy() for n, p in gpt.build(0).named_parameters()}
    results = run_zero(
        [gpt.build(0) for _ in range(world)], factory, loss, batches, stage, precision
    )
    check_against_reference(results, ref, initial, precision)
    assert results[0]["losses"][-1] < 0.9 * results[0]["losses"][0]


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("stage", [1, 2, 3])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_an_overflow_on_one_rank_makes_every_rank_skip(stage: int, world: int):
    """Rank 0's fp32 gradient shard gets an inf in step 1; no other rank sees one. Every rank
    must skip that step and halve the scale: the run then equals one process that starts
    at step 2 with half the scale."""

    def poison_rank_0(s) -> None:
        if s.rank != 0:
            return
        step, calls = s.optimizer.step, []

        def poisoned(*args, **kwargs):
            calls.append(1)
            if len(calls) == 1:
                s.optimizer.param_groups[0]["params"][0].grad.array[0] = np.inf
            return step(*args, **kwargs)

        s.optimizer.step = poisoned

    batches, factory = mlp_batches(5), optimizer_factory("sgd")
    ref = train_reference(make_model(), factory, F.cross_entropy, batches[1:], "fp16", 2.0**15)
    models = [make_model() for _ in range(world)]
    results = run_zero(
        models, factory, F.cross_entropy, batches, stage, "fp16", 2.0**16, poison_rank_0
    )
    for r in results:
        assert r["amp"] == {"precision": "fp16", "loss_scale": 2.0**15, "skipped_steps": 1}
        for k, want in ref["state"].items():
            np.testing.assert_allclose(r["state"][k], want, rtol=0, atol=ATOL["fp16"], err_msg=k)
        np.testing.assert_allclose(r["losses"][1:], ref["losses"], rtol=0, atol=ATOL["fp16"])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf and NaN are the point here
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_overflowing_scale_skips_every_step_and_backs_off(stage: int):
    """A loss scale of 2⁴⁰ turns every fp16 gradient into inf: three steps, three skips, the
    scale halves each time, and master and 16-bit weights stay the initial ones."""
    models = [make_model() for _ in range(2)]
    initial = {n: p.array.copy() for n, p in make_model().named_parameters()}
    factory = optimizer_factory("sgd")
    results = run_zero(models, factory, F.cross_entropy, mlp_batches(3), stage, "fp16", 2.0**40)
    for r in results:
        assert r["amp"] == {"precision": "fp16", "loss_scale": 2.0**37, "skipped_steps": 3}
        for k, want in initial.items():
            np.testing.assert_array_equal(r["state"][k], want)
        for sixteen, master in zip(r["sixteen"], r["masters"]):
            np.testing.assert_array_equal(sixteen, master.astype(np.float16))
        assert r["opt"]["state"] == {}  # the optimizer never stepped: no momentum yet


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_parameters_and_gradients_travel_as_two_byte_elements(stage: int, world: int):
    """Per step a rank sends, of its flat buffers (ring algorithms, L padded elements):
    stage 1 all_reduce 2(N-1)/N·L + all_gather (N-1)/N·L; stage 2 reduce_scatter + all_gather
    2(N-1)/N·L; stage 3, per layer, all_gather in forward and backward + reduce_scatter. In
    bytes: 4 per element in fp32, 2 in fp16 and bf16; what remains is the same small scalars
    (the loss's mean), plus fp16's 4-byte found-inf flag."""
    share = (world - 1) / world
    if stage < 3:
        elements = (3 if stage == 1 else 2) * share * padded(sum(layer_sizes()), world)
    else:
        elements = 3 * share * sum(padded(s, world) for s in layer_sizes())
    sent = {
        precision: run_zero(
            [make_model() for _ in range(world)], optimizer_factory("sgd"), F.cross_entropy,
            make_batches(2, 24), stage, precision,
        )[0]["step_bytes"]
        for precision in ("fp32", "fp16", "bf16")
    }  # fmt: skip
    rest = sent["fp32"] - 4 * elements
    assert 0 < rest < 64
    assert sent["bf16"] - 2 * elements == rest
    assert sent["fp16"] - 2 * elements == rest + 4
