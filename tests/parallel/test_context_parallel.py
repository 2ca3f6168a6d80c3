"""Context parallelism on the GPT: the sequence split over ranks, attention as ring attention,
equal to one process (weights, losses, optimizer state, logits; rtol 1e-5).

Truth: :func:`tests.parallel.tp_gpt_helpers.train_single` (same seed, same global batches,
dropout 0). The batches include ignored targets (-100), spread unevenly over the chunks,
so the token-count weighting of the loss is exercised.
"""

from __future__ import annotations

import numpy as np
import pytest

import sparkgrad as sg
from sparkgrad.autodiff import functional as F
from sparkgrad.engine.cli import parse_config
from sparkgrad.errors import ConfigError
from sparkgrad.models.sequence_parts import TokenCrossEntropy
from sparkgrad.parallel.context.gpt import RingKernel
from sparkgrad.parallel.context.strategy import ContextParallel
from tests.parallel.tp_gpt_helpers import (
    assert_matches,
    build,
    make_batches,
    optimizer_factory,
    run_ranks,
    single_logits,
    train_single,
)

LONG = {"context": 16}  # 16 tokens: 2·cp chunks for cp = 2, 4 and 8


def context_parallel(optimizer: str, **options):
    return lambda: ContextParallel(
        build(0, **{**LONG, **options}), optimizer_factory(optimizer), TokenCrossEntropy()
    )


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_context_parallel_equals_one_process(world: int, optimizer: str) -> None:
    data = make_batches(3, length=16)
    truth = train_single(data, optimizer, **LONG)
    x = data[0][0][:3]
    results = run_ranks(world, context_parallel(optimizer), data, predict_x=x)
    assert_matches(results, truth)
    want = single_logits(truth["state"], x, **LONG)
    for r in results:
        np.testing.assert_allclose(r["logits"], want, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_eight_ranks_two_tokens_each() -> None:
    data = make_batches(2, length=16)
    truth = train_single(data, "adamw", **LONG)
    assert_matches(run_ranks(8, context_parallel("adamw"), data), truth)


def test_a_rank_with_no_scored_token_still_trains_the_same() -> None:
    data = make_batches(2, length=16)
    for _, target in data:  # rank 0 of 2 holds positions 0-3 and 12-15: nothing to score
        target[:, :4] = target[:, 12:] = -100
    truth = train_single(data, "sgd", **LONG)
    assert_matches(run_ranks(2, context_parallel("sgd"), data), truth)


def test_tied_weights_train_the_same() -> None:
    data = make_batches(2, length=16)
    truth = train_single(data, "adamw", tie_weights=True, **LONG)
    assert_matches(run_ranks(2, context_parallel("adamw", tie_weights=True), data), truth)


def test_the_default_kernel_is_the_fused_attention() -> None:
    model = build(0, **LONG)
    kernels = {m.attention_kernel for m in model.modules() if hasattr(m, "attention_kernel")}
    assert kernels == {F.scaled_dot_product_attention}


def test_ring_kernel_refuses_dropout_and_explicit_masks() -> None:
    q = sg.randn(1, 2, 4, 3)
    with pytest.raises(ConfigError, match="no dropout"):
        RingKernel(None)(q, q, q, dropout_p=0.1)
    with pytest.raises(ConfigError, match="explicit attn_mask"):
        RingKernel(None)(q, q, q, attn_mask=sg.zeros(4, 4))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--world-size", "4", "--context", "12"], "divisible by 8, found 12"),
        (["--world-size", "2", "--dropout", "0.1"], "expected --dropout 0, found 0.1"),
        (["--world-size", "2", "--model", "lstm-lm"], "cannot split --model lstm-lm"),
    ],
)
def test_config_errors(args: list[str], needle: str) -> None:
    base = ["--model", "gpt", "--strategy", "context", "--dropout", "0"]
    with pytest.raises(ConfigError, match=needle):
        parse_config([*base, *args])
