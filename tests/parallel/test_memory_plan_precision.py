"""Memory per rank under ``--precision fp16|bf16``: predicted from shapes, measured after one step.

The prediction (:mod:`sparkgrad.parallel.memory_plan`) reads the job's ``precision``: ZeRO
holds 2-byte parameters and gradients and an fp32 master shard beside Adam's moments, every
other strategy fp32 parameters, gradients and optimizer state, and the activations are what
autocast's ops save (the table in :mod:`sparkgrad.parallel.activation_memory`). The truth
is one real step on thread ranks built as the engine builds a run (``MixedPrecision``
around the strategy, ``tests/parallel/memory_helpers.py``): the arrays the rank holds and
the ActivationTracker's peak. Every strategy, mesh and recompute mode of the fp32 tests,
in both precisions, must agree to the byte (ratio 1.000), which is what is asserted.

Not covered, because the runs themselves refuse: a tensor-parallel GPT under fp16 (its
vocabulary-parallel loss does not take fp16's loss-scaling wrapper; bf16 has none and
runs), and cuda, where CuPy lowers natively and the table is not derived
(:func:`~sparkgrad.parallel.activation_memory.widths_of` says so).
"""

from __future__ import annotations

import pytest

from sparkgrad.errors import ConfigError
from sparkgrad.parallel.activation_memory import ActivationShare, activation_bytes, widths_of
from sparkgrad.parallel.memory_plan import MemoryJob, plan_memory
from sparkgrad.parallel.memory_shapes import ModelShape
from tests.parallel.memory_helpers import GPT, MLP, measure
from tests.parallel.test_memory_plan import (
    DROPOUT_CASES,
    GPT_CASES,
    MLP_CASES,
    RECOMPUTE_CASES,
    _ids,
    assert_exact,
)

PRECISIONS = ("fp16", "bf16")


def _cases(cases: list, gpt: bool, quick: tuple[int, ...] = (0,)) -> list:
    """``(precision, strategy, world, options)`` params; ``quick`` cases run in the quick
    suite, the rest are slow."""
    out = []
    for precision in PRECISIONS:
        for k, (case, name) in enumerate(zip(cases, _ids(cases))):
            marks = () if k in quick and precision == "fp16" else pytest.mark.slow
            out.append(pytest.param(precision, *case, id=f"{precision}-{name}", marks=marks))
    return out


@pytest.mark.parametrize(("precision", "strategy", "world", "options"), _cases(MLP_CASES, False))
def test_every_strategy_predicts_the_mlp_under_mixed_precision_exactly(
    precision, strategy, world, options
):
    assert_exact(measure(strategy, world, MLP, options, precision=precision))


GPT_QUICK = (3,)  # zero2 (the tensor-parallel GPT under fp16 has its own quick test below)


@pytest.mark.parametrize(
    ("precision", "strategy", "world", "options"), _cases(GPT_CASES, True, GPT_QUICK)
)
def test_every_strategy_predicts_the_gpt_under_mixed_precision_exactly(
    precision, strategy, world, options
):
    assert_exact(measure(strategy, world, GPT, options, precision=precision))


def test_the_quick_set_keeps_a_bf16_tensor_parallel_gpt():
    # bf16 has no loss scaler: the vocab-parallel loss runs bare (fp16's case is below)
    assert_exact(measure("tensor", 2, GPT, {"sequence_parallel": True}, precision="bf16"))


@pytest.mark.parametrize(("precision", "strategy", "world", "options"), _cases(DROPOUT_CASES, True))
def test_dropout_masks_under_mixed_precision(precision, strategy, world, options):
    shape = ModelShape.gpt(11, 16, 16, 4, 2, dropout=0.1)
    assert_exact(measure(strategy, world, shape, options, precision=precision))


@pytest.mark.parametrize("recompute", ["blocks", "selective"])
@pytest.mark.parametrize(
    ("precision", "strategy", "world", "options"), _cases(RECOMPUTE_CASES, True, (1,))
)
def test_recompute_under_mixed_precision(precision, strategy, world, options, recompute):
    shape = ModelShape.gpt(11, 16, 16, 4, 2, recompute=recompute)
    assert_exact(measure(strategy, world, shape, options, precision=precision))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_tied_head_under_zero3_in_sixteen_bits(precision):
    # at fp16's default scale of 2^16 this tiny model's first step overflows and is skipped,
    # so Adam has no moments yet (the engine measures the first step the scaler takes)
    shape = ModelShape.gpt(11, 16, 16, 4, 2, tie_weights=True)
    assert_exact(measure("zero3", 2, shape, precision=precision, init_scale=2.0**10))


# -- by hand ---------------------------------------------------------------------------------
def test_zero2_under_fp16_holds_the_papers_bytes_by_hand():
    # 784·16 + 16 + 16·10 + 10 = 12730 parameters, N = 2: a shard of 6365
    job = MemoryJob(ModelShape.mlp((16,)), 64, 2, "adam", precision="fp16")
    plan = plan_memory("zero2", job, 0)
    assert plan.predicted["parameters"] == 2 * 12730  # the 16-bit flat buffer, whole
    assert plan.predicted["gradients"] == 2 * 6365  # its 16-bit gradient shard
    assert plan.predicted["optimizer"] == (4 + 8) * 6365 + 4  # master + moments, one step
    # 32 rows: the batch's rounded copy, the ReLU's 16-bit output and the next Linear's
    # float32 copy of it, the logits' float32 copy + 13 B a row, the weights' cast copies
    acts = 4 * 32 * 784 + (2 + 4) * 32 * 16 + 4 * 32 * 10 + 13 * 32 + 4 * (784 * 16 + 16 * 10)
    assert plan.predicted["activations"] == acts
    fp32 = plan_memory("zero2", MemoryJob(ModelShape.mlp((16,)), 64, 2, "adam"), 0)
    assert fp32.predicted["parameters"] == 2 * plan.predicted["parameters"]


def _layer(shape_kw: dict, share: ActivationShare) -> int:
    two, three = (
        activation_bytes(ModelShape.gpt(11, layers=n, **shape_kw), share)["peak"] for n in (2, 3)
    )
    return three - two


def test_one_gpt_layer_under_autocast_costs_what_the_docstring_formula_says():
    s, b, h, a = 16, 3, 16, 4
    for precision in PRECISIONS:
        for dropout, p in ((0.0, 0), (0.1, 1)):
            kw = dict(context=s, d_model=h, heads=a, dropout=dropout)
            autocast = ActivationShare(b, widths=widths_of(precision))
            want = s * b * h * (64 + 12 * p) + 8 * s * b + (4 + p) * a * s * s * b + 48 * h * h
            assert _layer(kw, autocast) == want
            zero = ActivationShare(b, widths=widths_of(precision, sixteen_bit_params=True))
            want = s * b * h * (60 + 12 * p) + 4 * s * b + (4 + p) * a * s * s * b + 48 * h * h
            assert _layer(kw, zero) == want


def test_sequence_parallel_layers_are_float32_but_the_row_layers_weight_copies():
    s, b, h, a, t = 16, 2, 16, 4, 4
    kw = dict(context=s, d_model=h, heads=a)
    fp32, bf16 = (
        _layer(kw, ActivationShare(b, tp=t, sequence_parallel=True, widths=widths_of(pr)))
        for pr in ("fp32", "bf16")
    )
    assert bf16 - fp32 == 4 * 5 * h * h // t  # out_proj and linear2: (h² + 4h²)/t, 4 B each


def test_a_job_reads_the_precision_and_device_of_the_run_config():
    from sparkgrad.engine.config import RunConfig

    config = RunConfig(strategy="zero2", world_size=2, hidden=(16,), precision="bf16")
    job = MemoryJob.from_config(config.validate())
    assert (job.precision, job.device) == ("bf16", "cpu")
    assert plan_memory("zero2", job, 0).predicted["parameters"] == 2 * 12730


def test_cuda_under_autocast_is_refused_not_guessed():
    assert widths_of("fp32", "cuda") == widths_of("fp32")  # fp32 needs no autocast rule
    with pytest.raises(ConfigError, match="derived for the CPU"):
        widths_of("fp16", "cuda")
    with pytest.raises(ConfigError, match="derived for the CPU"):
        plan_memory("data", MemoryJob(MLP, 8, 2, precision="fp16", device="cuda"), 0)
    with pytest.raises(ConfigError, match="fp32, fp16 or bf16"):
        widths_of("fp8")


@pytest.mark.parametrize("options", [{}, {"sequence_parallel": True}], ids=["tp", "tp+sp"])
def test_the_tensor_parallel_gpt_under_fp16_keeps_the_loss_scaling(options):
    """fp16's loss scaling stays around the vocab-parallel loss (ScaleGrad keeps nothing)."""
    for plan in measure("tensor", 2, GPT, options, precision="fp16"):
        assert plan.predicted == plan.measured
