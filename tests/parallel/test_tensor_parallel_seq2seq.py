"""TensorParallel on the encoder-decoder (``--model seq2seq``) must train exactly what one
process trains, and decode the same answers.

Truth: :class:`~sparkgrad.parallel.single.SingleProcess` on the same global batches and
seed, dropout 0, ``TokenCrossEntropy(ignore_index=PAD)`` as the engine trains it. The
batches are real ``reverse:N`` examples (:mod:`sparkgrad.dataset.reversal`): sources of 1
to 10 digits, so the encoder's and the cross-attention's padding masks and the decoder's
causal mask are all in use, and PAD targets are not scored. 4 heads of width 4 split 2 and
4 ways. Weights, per-step losses and optimizer state agree (rtol 1e-5), and greedy
decoding through ``predict`` writes the single process's answers on every rank.

AdamW runs with ``eps=1e-3`` for the reason given in :mod:`tests.parallel.tp_gpt_helpers`:
the key projection's bias (in all three attentions here) has an exactly-zero gradient, so
what reaches it is reduction-order noise that eps 1e-8 would blow up to ±lr steps.
"""

from __future__ import annotations

import numpy as np
import pytest

import sparkgrad as sg
from sparkgrad.autodiff.nn.attention import MultiheadAttention
from sparkgrad.dataset.reversal import PAD, SOURCE_LEN, make_reversal
from sparkgrad.distributed.state import resolve
from sparkgrad.engine.config import RunConfig
from sparkgrad.engine.tasks import greedy_decode
from sparkgrad.errors import ConfigError
from sparkgrad.models.seq2seq import build_seq2seq
from sparkgrad.models.sequence_parts import TokenCrossEntropy
from sparkgrad.parallel.hybrid.strategy import HybridParallel
from sparkgrad.parallel.single import SingleProcess
from sparkgrad.parallel.tensor.seq2seq import shard_seq2seq
from sparkgrad.parallel.tensor.splits import Split, gather_full
from sparkgrad.parallel.tensor.strategy import TensorParallel
from sparkgrad.parallel.tensor.transformer import TensorParallelAttention
from tests.parallel.tp_gpt_helpers import BUILD_LOCK, assert_matches, on_ranks, optimizer_factory

OPTIONS = {"d_model": 16, "nhead": 4, "num_layers": 2, "dropout": 0.0}
PROBE = 6  # rows greedily decoded at the end


def build(seed: int = 0, recompute: str = "none") -> sg.nn.Module:
    with BUILD_LOCK:  # the thread ranks share the seeded generator
        model = build_seq2seq(seed, recompute, **OPTIONS)
    return model if recompute == "none" else model.double()  # see the recompute test


def loss() -> TokenCrossEntropy:
    return TokenCrossEntropy(ignore_index=PAD)


def make_batches(steps: int, batch: int = 4, seed: int = 3) -> list:
    """``steps`` global batches of real reversal examples (padded, see the module doc)."""
    x, y = make_reversal(steps * batch, seed=seed)
    out = [(x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch]) for i in range(steps)]
    src = np.concatenate([b[0][:, :SOURCE_LEN] for b in out])
    assert (src == PAD).any() and (src != PAD).all(axis=0).any()  # padded, not all padding
    return out


def balanced_batches(steps: int, batch: int = 8, seed: int = 3) -> list:
    """Batches whose two halves score the same number of target tokens (lengths paired).

    Data-parallel replicas average their *mean* losses; that equals the whole batch's mean
    only when every replica scores as many tokens, so each row of the first half gets a
    partner of the same length in the second half (the rows still differ, and pad).
    """
    x, y = make_reversal(400, seed=seed)
    lengths = (y != PAD).sum(axis=1)
    free = list(range(len(x)))
    out = []
    for _ in range(steps):
        first = [free.pop(0) for _ in range(batch // 2)]
        second = [free.pop(next(j for j, i in enumerate(free) if lengths[i] == lengths[f]))
                  for f in first]  # fmt: skip
        rows = first + second
        out.append((x[rows], y[rows]))
    scored = [(b[1] != PAD).sum(axis=1) for b in out]
    assert all(len(set(n.tolist())) > 1 for n in scored)  # rows of many lengths: padding
    return out


def train_single(batches: list, optimizer: str, recompute: str = "none") -> dict:
    s = SingleProcess(build(recompute=recompute), optimizer_factory(optimizer), loss())
    losses = [s.train_step(sg.tensor(x), sg.tensor(y)) for x, y in batches]
    probe = sg.tensor(batches[0][0][:PROBE])
    return {
        "state": s.full_state_dict(),
        "optimizer_state": s.full_optimizer_state_dict(),
        "losses": losses,
        "logits": s.predict(probe).numpy(),
        "answers": greedy_decode(s, probe),
    }


def run_ranks(
    world: int, make, batches: list, load: tuple | None = None, decode: bool = True
) -> list[dict]:
    """Build, optionally load a full state, train on this rank's rows; the state, the
    logits of the probe rows and (``decode``: 11 more forwards) their greedy answers."""

    def rank_fn() -> dict:
        s = make()
        if load is not None:
            s.load_full_state(*load)
        n, r = s.data_parallel_size, s.data_parallel_rank
        losses = []
        for x, y in batches:
            rows = len(x) // n
            part = slice(r * rows, (r + 1) * rows)
            losses.append(s.train_step(sg.tensor(x[part]), sg.tensor(y[part])))
        probe = sg.tensor(batches[0][0][:PROBE])
        return {
            "state": s.full_state_dict(),
            "opt": s.full_optimizer_state_dict(),
            "losses": losses,
            "logits": s.predict(probe).numpy(),
            "answers": greedy_decode(s, probe) if decode else None,
            "bytes": s.report()["bytes_sent"],
        }

    return on_ranks(world, rank_fn)


def tp_maker(optimizer: str, seed: int = 0, recompute: str = "none"):
    return lambda: TensorParallel(build(seed, recompute), optimizer_factory(optimizer), loss())


def assert_same_run(results: list[dict], truth: dict) -> None:
    assert_matches(results, truth)  # weights (the plain keys), losses, optimizer state
    for r in results:
        np.testing.assert_allclose(r["logits"], truth["logits"], rtol=1e-5, atol=1e-5)
        if r["answers"] is not None:
            np.testing.assert_array_equal(r["answers"], truth["answers"])  # greedy decode
        assert r["bytes"] > 0


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("world", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_seq2seq_tensor_parallel_equals_single_process(world: int, optimizer: str) -> None:
    batches = make_batches(steps=3)
    truth = train_single(batches, optimizer)
    assert_same_run(run_ranks(world, tp_maker(optimizer), batches), truth)


@pytest.mark.parametrize("recompute", ["blocks", "selective"])
def test_recompute_under_tensor_parallelism(recompute: str) -> None:
    """In float64: on these batches a float32 momentum entry near cancellation differs by
    2.5e-7 (rel 8e-5) with or without recompute (the reduction order); float64 is exact."""
    batches = make_batches(steps=2)
    truth = train_single(batches, "sgd", recompute)
    results = run_ranks(2, tp_maker("sgd", recompute=recompute), batches, decode=False)
    assert_matches(results, truth, rtol=1e-10)


def test_hybrid_dp2_tp2_on_the_seq2seq() -> None:
    batches = balanced_batches(steps=3)
    truth = train_single(batches, "adamw")

    def make() -> HybridParallel:
        return HybridParallel(build(), optimizer_factory("adamw"), loss(), mesh="dp=2,tp=2")

    assert_same_run(run_ranks(4, make, batches, decode=False), truth)  # decoded: tp tests


def test_full_state_dict_is_the_plain_models() -> None:
    plain = {k: v.numpy() for k, v in build().state_dict().items()}  # buffers too

    def full() -> dict:
        return TensorParallel(build(), optimizer_factory("sgd"), loss()).full_state_dict()

    for got in on_ranks(2, full):
        assert sorted(got) == sorted(plain)
        for k, want in plain.items():
            np.testing.assert_array_equal(got[k], want, err_msg=k)


def test_checkpoint_from_two_ranks_continues_on_four() -> None:
    batches = make_batches(steps=3)
    truth = train_single(batches, "adamw")
    half = run_ranks(2, tp_maker("adamw"), batches[:2], decode=False)[0]
    saved = (half["state"], half["opt"])
    results = run_ranks(4, tp_maker("adamw", seed=7), batches[2:], load=saved, decode=False)
    for r in results:  # another seed: the load overwrote it
        for k, want in truth["state"].items():
            np.testing.assert_allclose(r["state"][k], want, rtol=1e-5, atol=1e-6, err_msg=k)


def test_every_attention_and_feed_forward_is_split_by_heads() -> None:
    def shapes() -> dict:
        s = TensorParallel(build(), optimizer_factory("sgd"), loss())
        dec = s.model.transformer.decoder.layers[0]
        assert isinstance(dec.multihead_attn, TensorParallelAttention)
        assert s.loss_fn.ignore_index == PAD  # the plain loss: the vocabulary is replicated
        return {k: tuple(p.shape) for k, p in s.model.named_parameters()}

    for r in on_ranks(2, shapes):
        for attn in ("encoder.layers.1.self_attn", "decoder.layers.0.self_attn",
                     "decoder.layers.1.multihead_attn"):  # fmt: skip
            assert r[f"transformer.{attn}.in_proj_weight"] == (24, 16)  # 3 x (2 heads x 4)
            assert r[f"transformer.{attn}.out_proj.weight"] == (16, 8)
        for part in ("encoder", "decoder"):
            assert r[f"transformer.{part}.layers.0.linear1.weight"] == (32, 16)
            assert r[f"transformer.{part}.layers.0.linear2.weight"] == (16, 32)
        assert r["embed.weight"] == (13, 16) and r["head.weight"] == (13, 16)
        assert r["transformer.decoder.norm.weight"] == (16,)


def test_cross_attention_with_masks_equals_the_full_module() -> None:
    """Query (N, L, E) from one tensor, key is value (N, S, E) from another, S != L, with a
    key padding mask and a per-head (N·H, L, S) float mask: output and every gradient."""
    rng = np.random.default_rng(0)
    N, L, S, E, H = 2, 3, 5, 8, 4
    q_in, mem = rng.normal(size=(N, L, E)), rng.normal(size=(N, S, E))
    padding = np.zeros((N, S))  # float, as the head mask (PyTorch deprecates mixing)
    padding[0, 3:] = padding[1, 4:] = -np.inf
    head_mask = rng.normal(size=(N * H, L, S))
    g_out = rng.normal(size=(N, L, E))

    def run(make_attention) -> dict:
        with BUILD_LOCK:
            sg.manual_seed(5)
            mha = MultiheadAttention(E, H, batch_first=True).double()
            mha.in_proj_bias.array[:] = rng_bias  # nonzero, so the bias slices are checked
        attn = make_attention(mha)
        q, m = sg.tensor(q_in, requires_grad=True), sg.tensor(mem, requires_grad=True)
        out = attn(q, m, m, key_padding_mask=sg.tensor(padding), need_weights=False,
                   attn_mask=sg.tensor(head_mask))[0]  # fmt: skip
        (out * sg.tensor(g_out)).sum().backward()
        return {"out": out.detach().numpy(), "q": q.grad.numpy(), "m": m.grad.numpy(), "attn": attn}

    rng_bias = np.random.default_rng(1).normal(size=3 * E)
    want = run(lambda mha: mha)

    def rank_fn() -> dict:
        group = resolve(None)
        got = run(lambda mha: TensorParallelAttention.from_attention(mha, group))
        attn = got.pop("attn")
        got["w"] = gather_full(attn.in_proj_weight.grad.array, Split(0, blocks=3), group)
        got["b"] = gather_full(attn.in_proj_bias.grad.array, Split(0, blocks=3), group)
        got["wo"] = gather_full(attn.out_proj.weight.grad.array, Split(1), group)
        return got

    for got in on_ranks(2, rank_fn):
        for k in ("out", "q", "m"):
            np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-12, err_msg=k)
        full = want["attn"]
        np.testing.assert_allclose(got["w"], full.in_proj_weight.grad.numpy(), rtol=1e-10)
        np.testing.assert_allclose(got["b"], full.in_proj_bias.grad.numpy(), atol=1e-12)
        np.testing.assert_allclose(got["wo"], full.out_proj.weight.grad.numpy(), rtol=1e-10)


# -- errors --------------------------------------------------------------------------------
def test_heads_that_do_not_divide_are_a_clear_error() -> None:
    def make() -> None:
        shard_seq2seq(build(), resolve(None))

    with pytest.raises(ConfigError, match="number of heads divisible by 3, found 4"):
        on_ranks(3, make)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"world_size": 3}, "splits --heads evenly: expected a multiple of 3, found 4"),
        (
            {"strategy": "hybrid", "world_size": 4, "mesh": "dp=2,pp=2"},
            "--model seq2seq runs data x tensor meshes",
        ),
        ({"sequence_parallel": True}, "expected --model gpt, found --model seq2seq"),
    ],
)
def test_config_errors_say_what_was_expected(options: dict, message: str) -> None:
    fields = {"strategy": "tensor", "model": "seq2seq", "data": "reverse:40", "world_size": 2,
              "heads": 4, "d_model": 16}  # fmt: skip
    RunConfig(**fields).validate()  # tensor parallelism splits the seq2seq now, and the mesh
    RunConfig(**{**fields, "strategy": "hybrid", "world_size": 4, "mesh": "dp=2,tp=2"}).validate()
    with pytest.raises(ConfigError, match=message):
        RunConfig(**{**fields, **options}).validate()
