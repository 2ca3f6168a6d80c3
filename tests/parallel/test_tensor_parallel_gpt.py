"""TensorParallel on the GPT (heads, MLP, vocabulary split; optionally the sequence too)
must train exactly what one process trains.

Truth: :func:`tests.parallel.tp_gpt_helpers.train_single` on the same global batches and
seed, dropout 0. The vocabulary (11) is split unevenly on every size; 8 heads split 2, 4, 8
ways. Weights, per-step losses and the optimizer state must agree (rtol 1e-5), and
``predict`` must return the single process's full logits on every rank.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import sparkgrad as sg
from sparkgrad.distributed import is_initialized
from sparkgrad.distributed.state import default_group
from sparkgrad.engine.config import RunConfig
from sparkgrad.errors import ConfigError
from sparkgrad.models.sequence_parts import TokenCrossEntropy
from sparkgrad.parallel.hybrid.strategy import HybridParallel
from sparkgrad.parallel.single import SingleProcess
from sparkgrad.parallel.tensor.strategy import TensorParallel
from sparkgrad.parallel.tensor.transformer import TensorParallelAttention
from sparkgrad.parallel.tensor.vocab import VocabParallelCrossEntropy, VocabParallelEmbedding
from tests.parallel.tp_gpt_helpers import (
    BUILD_LOCK,
    assert_matches,
    build,
    make_batches,
    on_ranks,
    optimizer_factory,
    run_ranks,
    single_logits,
    train_single,
)


def tp_maker(optimizer: str, sp: bool = False, seed: int = 0, **options: object):
    return lambda: TensorParallel(
        build(seed, **options), optimizer_factory(optimizer), TokenCrossEntropy(),
        sequence_parallel=sp,
    )  # fmt: skip


def check_equal(world: int, optimizer: str, sp: bool, **options: object) -> list[dict]:
    batches = make_batches(steps=3)
    truth = train_single(batches, optimizer, **options)
    results = run_ranks(world, tp_maker(optimizer, sp, **options), batches, predict_x=batches[0][0])
    assert_matches(results, truth)
    want = single_logits(truth["state"], batches[0][0], **options)
    for r in results:  # full logits on every rank, glued from the vocabulary slices
        np.testing.assert_allclose(r["logits"], want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    return results


@pytest.mark.parametrize("sp", [False, True], ids=["tp", "tp+sp"])
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("world", [2, 4])
def test_gpt_tensor_parallel_equals_single_process(world: int, optimizer: str, sp: bool) -> None:
    results = check_equal(world, optimizer, sp)
    assert all(r["report"]["bytes_sent"] > 0 for r in results)


@pytest.mark.slow
@pytest.mark.parametrize("sp", [False, True], ids=["tp", "tp+sp"])
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_gpt_tensor_parallel_on_eight_ranks(optimizer: str, sp: bool) -> None:
    check_equal(8, optimizer, sp)  # one head and one or two vocabulary rows per rank


@pytest.mark.parametrize("sp", [False, True], ids=["tp", "tp+sp"])
def test_tied_head_shares_the_embedding_slice(sp: bool) -> None:
    check_equal(2, "adamw", sp, tie_weights=True)

    def tied() -> bool:
        s = TensorParallel(build(tie_weights=True), optimizer_factory("sgd"), TokenCrossEntropy())
        return s.model.head.weight is s.model.token.weight  # one (V_r, d) parameter, two users

    assert on_ranks(2, tied) == [True, True]


@pytest.mark.parametrize("recompute", ["blocks", "selective"])
def test_recompute_under_tensor_and_sequence_parallelism(recompute: str) -> None:
    check_equal(2, "sgd", True, recompute=recompute)


def test_the_model_is_split_where_megatron_splits_it() -> None:
    def shapes() -> dict:
        s = TensorParallel(build(), optimizer_factory("sgd"), TokenCrossEntropy())
        assert isinstance(s.model.blocks.layers[0].self_attn, TensorParallelAttention)
        assert isinstance(s.model.token, VocabParallelEmbedding)
        assert isinstance(s.loss_fn, VocabParallelCrossEntropy)
        return {k: tuple(p.shape) for k, p in s.model.named_parameters()}

    got = on_ranks(2, shapes)
    attn = "blocks.layers.0.self_attn"
    for r, vocab_rows in zip(got, (6, 5)):  # 11 = 6 + 5
        assert r["token.weight"] == (vocab_rows, 16) and r["head.weight"] == (vocab_rows, 16)
        assert r[f"{attn}.in_proj_weight"] == (24, 16)  # 3 x (4 heads x 2) rows
        assert r[f"{attn}.out_proj.weight"] == (16, 8) and r[f"{attn}.out_proj.bias"] == (16,)
        assert r["blocks.layers.0.linear1.weight"] == (32, 16)
        assert r["blocks.layers.0.linear2.weight"] == (16, 32)
        assert r["position.weight"] == (8, 16) and r["norm.weight"] == (16,)


def test_checkpoint_from_two_ranks_loads_into_one_and_into_four() -> None:
    batches = make_batches(steps=4)
    first, second = batches[:2], batches[2:]
    truth = train_single(batches, "adamw")
    probe = batches[0][0]

    half = run_ranks(2, tp_maker("adamw", sp=True), first)[0]
    saved = (half["state"], half["opt"])

    # into a single process: the same logits, and training on gives the truth
    single = SingleProcess(build(7), optimizer_factory("adamw"), TokenCrossEntropy())
    single.load_full_state(*saved)
    np.testing.assert_allclose(
        single.predict(sg.tensor(probe)).numpy(), single_logits(half["state"], probe), rtol=1e-6
    )
    for x, y in second:
        single.train_step(sg.tensor(x), sg.tensor(y))
    for k, want in truth["state"].items():
        np.testing.assert_allclose(single.full_state_dict()[k], want, rtol=1e-5, atol=1e-6)

    # into four ranks (another seed: the load must overwrite it), without sequence parallelism
    results = run_ranks(4, tp_maker("adamw", seed=7), second, load=saved, predict_x=probe)
    final = single.full_state_dict()
    want = single_logits(final, probe)
    for r in results:
        for k in final:
            np.testing.assert_allclose(r["state"][k], final[k], rtol=1e-5, atol=1e-6, err_msg=k)
        np.testing.assert_allclose(r["logits"], want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("sp", [False, True], ids=["dp2xtp2", "dp2xtp2+sp"])
def test_hybrid_mesh_on_the_gpt(sp: bool) -> None:
    batches = make_batches(steps=3)
    for _, y in batches:  # every target counted: each replica's mean is over equal counts
        y[y < 0] = 0
    truth = train_single(batches, "adamw")

    def make() -> HybridParallel:
        return HybridParallel(
            build(), optimizer_factory("adamw"), TokenCrossEntropy(), mesh="dp=2,tp=2",
            sequence_parallel=sp,
        )  # fmt: skip

    results = run_ranks(4, make, batches, predict_x=batches[0][0])
    assert_matches(results, truth)
    want = single_logits(truth["state"], batches[0][0])
    for r in results:
        np.testing.assert_allclose(r["logits"], want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


# -- errors --------------------------------------------------------------------------------
def test_heads_that_do_not_divide_are_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="number of heads divisible by 3, found 8"):
        run_ranks(3, tp_maker("sgd"), [])


def _fp16_pieces(optimizer: str):
    """A fresh MixedPrecision("fp16")'s scaled loss, scaled optimizer factory and itself."""
    from sparkgrad.engine.precision import MixedPrecision

    group = default_group() if is_initialized() else None
    amp = MixedPrecision("fp16", "cpu", group, init_scale=2.0**12)
    return (
        amp.loss_fn(TokenCrossEntropy()),
        amp.optimizer_factory(optimizer_factory(optimizer)),
        amp,
    )


@pytest.mark.parametrize("sp", [False, True], ids=["tp", "tp+sp"])
def test_fp16_loss_scaling_wraps_the_vocab_parallel_loss(sp: bool) -> None:
    """``--precision fp16`` scales the loss; tensor parallelism swaps the loss for its
    vocab-parallel one and keeps the scaling around it. Truth: one process under the same
    autocast and scaler. Row-parallel sums of 16-bit partial products round differently
    from one 16-bit matmul, so the comparison is at 16-bit tolerance (the weights move by
    far more), and the loss scale must have been applied (it appears in no fp32 run)."""
    batches = make_batches(steps=3)

    def single() -> dict:
        loss, factory, amp = _fp16_pieces("adamw")
        s = amp.attach(SingleProcess(build(), factory, loss))
        losses = [s.train_step(sg.tensor(x), sg.tensor(y)) for x, y in batches]
        return {"state": s.full_state_dict(), "losses": losses, "scale": amp.report()}

    def make() -> TensorParallel:
        loss, factory, amp = _fp16_pieces("adamw")
        s = amp.attach(TensorParallel(build(), factory, loss, sequence_parallel=sp))
        assert isinstance(inspect.unwrap(s.loss_fn), VocabParallelCrossEntropy)
        s.amp_report = amp.report
        return s

    truth, start = single(), build().state_dict()
    moved = max(float(np.abs(truth["state"][k] - start[k].numpy()).max()) for k in start)
    worst = 0.0
    for r in run_ranks(2, make, batches):
        for k, want in truth["state"].items():
            worst = max(worst, float(np.abs(r["state"][k] - want).max()))
        np.testing.assert_allclose(r["losses"], truth["losses"], rtol=5e-3)
    assert worst < 1e-3 < moved / 20  # measured: worst 1e-4 (2.5e-4 with sp), moved 0.03
    assert truth["scale"]["loss_scale"] == 2.0**12 and truth["scale"]["skipped_steps"] == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"world_size": 3, "heads": 4}, "splits --heads evenly: expected a multiple of 3, found 4"),
        (
            {"world_size": 4, "context": 30, "sequence_parallel": True},
            "--context .*expected a multiple of 4, found 30",
        ),
        ({"strategy": "data", "sequence_parallel": True}, "expected --strategy tensor or hybrid"),
        ({"model": "mlp", "sequence_parallel": True}, "expected --model gpt, found --model mlp"),
        ({"world_size": 1, "sequence_parallel": True}, "more than one tensor-parallel rank"),
        (
            {"strategy": "hybrid", "world_size": 4, "mesh": "dp=4", "sequence_parallel": True},
            "found tp=1",
        ),
    ],
)
def test_config_errors_say_what_was_expected(options: dict, message: str) -> None:
    fields = {"strategy": "tensor", "model": "gpt", "world_size": 2, "heads": 4, "d_model": 16}
    with pytest.raises(ConfigError, match=message):
        RunConfig(**{**fields, **options}).validate()


def test_cli_flag_reaches_the_strategy() -> None:
    from sparkgrad.engine.cli import parse_config

    config = parse_config(
        "--model gpt --strategy tensor --world-size 2 --sequence-parallel".split()
    )
    assert config.sequence_parallel and config.strategy_options() == {"sequence_parallel": True}
    hybrid = parse_config(
        "--model gpt --strategy hybrid --world-size 4 --mesh dp=2,tp=2 --sequence-parallel".split()
    )
    assert hybrid.strategy_options() == {"sequence_parallel": True, "mesh": "dp=2,tp=2"}


@pytest.mark.parametrize("masks", ["causal", "padding", "per-head"])
def test_split_attention_equals_multihead_attention_under_every_mask(masks: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 16)).astype(np.float32)
    upstream = rng.standard_normal((2, 6, 16)).astype(np.float32)
    causal = sg.nn.Transformer.generate_square_subsequent_mask(6)
    padding = np.zeros((2, 6), dtype=bool)
    padding[1, 4:] = True  # the second sequence's last two keys are padding
    per_head = rng.random((2 * 8, 6, 6)) < 0.3
    per_head[..., 0] = False  # every query may attend somewhere
    kwargs = {
        "causal": {"attn_mask": causal, "is_causal": True},
        "padding": {
            "attn_mask": causal,  # float, so the padding mask is float too (-inf: padding)
            "key_padding_mask": sg.tensor(np.where(padding, -np.inf, 0.0).astype(np.float32)),
        },
        "per-head": {"attn_mask": sg.tensor(per_head)},
    }[masks]

    def run(split: bool) -> tuple:
        with BUILD_LOCK:
            sg.manual_seed(4)
            mha = sg.nn.MultiheadAttention(16, 8, batch_first=True)
        if split:
            mha = TensorParallelAttention.from_attention(mha, default_group())
        inp = sg.tensor(x, requires_grad=True)
        out = mha(inp, inp, inp, need_weights=False, **kwargs)[0]
        out.backward(sg.tensor(upstream))
        return out.detach().numpy(), inp.grad.numpy()

    want_out, want_grad = run(False)
    for out, grad in on_ranks(2, lambda: run(True)):
        np.testing.assert_allclose(out, want_out, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-6)
