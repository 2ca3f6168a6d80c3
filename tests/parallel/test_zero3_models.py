"""ZeRO-3 on every model the engine trains, on 2 thread ranks, against one process.

The truth is :class:`SingleProcess` on the same global batches (3 AdamW steps): ZeRO-3's
losses, weights, optimizer state and predictions must be its numbers, under the plain
model's state-dict keys (so checkpoints move between the two), while each rank stores only
its ~1/2 of the parameters. The models are tiny and dropout-free (dropout and the ViT's
random shift draw per rank, so they would differ from one process by design).

They run in float64. Two ranks average two half-batch gradients where one process sums
the whole batch: the same number up to rounding, but AdamW's first steps are close to
``lr * sign(g)``, so an element whose gradient is about the size of float32 rounding (a
few in a million of the CNN's fc1; an attention's *key* bias, whose exact gradient is zero
because softmax ignores adding ``q·b_k`` to a whole row) moves by up to ``lr`` either way.
In float64 that noise is ~1e-17 and the comparison can be tight everywhere. The float32
run on Spark at the end checks the key bias against that ``lr``-per-step bound instead,
as ``tests/engine/test_sequence_runs`` does.

The models are built before the ranks start: the builders seed sparkgrad's global
generator, which thread ranks would share and race on.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import sparkgrad as sg
import sparkgrad.distributed as dist
from sparkgrad.dataset.reversal import PAD, make_reversal
from sparkgrad.errors import ConfigError
from sparkgrad.models.cnn import build_cnn
from sparkgrad.models.gpt import build_gpt
from sparkgrad.models.lstm_lm import build_lstm_lm
from sparkgrad.models.seq2seq import build_seq2seq
from sparkgrad.models.sequence_parts import TokenCrossEntropy
from sparkgrad.models.vit import build_vit
from sparkgrad.parallel.single import SingleProcess
from sparkgrad.parallel.zero.shard_unit import Zero3Linear
from sparkgrad.parallel.zero.strategy import ZeRO

LR, STEPS, BATCH, VOCAB = 1e-2, 3, 4, 11


RTOL, ATOL = 1e-9, 1e-10  # float64: rounding noise, AdamW-amplified, stays below 1e-11


def adamw(params: Any) -> Any:
    return sg.optim.AdamW(params, lr=LR)


# ---- the models and their data -----------------------------------------------------------
def cnn() -> sg.nn.Module:
    model = build_cnn(0).double()
    model.dropout1.p = model.dropout2.p = 0.0
    return model


class Scale(sg.nn.Module):
    """A layer with a parameter of its own and no Linear: the generic unit, plainly."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.scale = sg.nn.Parameter(sg.linspace(0.5, 1.5, n))

    def forward(self, x: Any) -> Any:
        return x * self.scale


def custom() -> sg.nn.Module:
    sg.manual_seed(0)
    model = sg.nn.Sequential(sg.nn.Linear(12, 6), Scale(6), sg.nn.ReLU(), sg.nn.Linear(6, 4))
    return model.double()


def digits(rng: np.random.Generator, batch: int, features: int = 784, classes: int = 10) -> list:
    pixels = rng.standard_normal((STEPS, batch, features))  # float64
    return list(zip(pixels, rng.integers(0, classes, (STEPS, batch))))


def text(rng: np.random.Generator, batch: int) -> list:
    ids = rng.integers(0, VOCAB, (STEPS, 2, batch, 8))  # inputs and next characters
    return [(x, y) for x, y in ids]


def reversal(rng: np.random.Generator, batch: int) -> list:
    """Rows whose answers all have 4 digits: every rank then scores the same number of
    tokens (PAD is ignored), so the mean of the ranks' mean losses is the global mean."""
    x, y = make_reversal(400, "train", seed=0)
    keep = np.flatnonzero((y != PAD).sum(axis=1) == 5)[: batch * STEPS]  # 4 digits + EOS
    return [(x[i], y[i]) for i in np.split(keep, STEPS)]


def gpt(tie: bool) -> Callable[[], sg.nn.Module]:
    options = dict(context=8, d_model=8, nhead=2, num_layers=1, tie_weights=tie)
    return lambda: build_gpt(VOCAB, 0, **options).double()


def lstm(tie: bool) -> Callable[[], sg.nn.Module]:
    options = dict(context=8, d_model=8, num_layers=2, tie_weights=tie)
    return lambda: build_lstm_lm(VOCAB, 0, **options).double()


CASES: dict[str, tuple[Callable, Callable, Callable]] = {  # model, loss, batches
    "cnn": (cnn, sg.nn.NLLLoss, digits),
    "vit": (
        lambda: build_vit(0, d_model=8, nhead=2, num_layers=1, shift=0).double(),
        sg.nn.CrossEntropyLoss,
        digits,
    ),
    "gpt": (gpt(False), TokenCrossEntropy, text),
    "gpt-tied": (gpt(True), TokenCrossEntropy, text),
    "lstm-lm": (lstm(False), TokenCrossEntropy, text),
    "lstm-lm-tied": (lstm(True), TokenCrossEntropy, text),
    "seq2seq": (
        lambda: build_seq2seq(0, d_model=8, nhead=2, num_layers=1).double(),
        lambda: TokenCrossEntropy(ignore_index=PAD),
        reversal,
    ),
    "custom": (custom, sg.nn.CrossEntropyLoss, lambda rng, batch: digits(rng, batch, 12, 4)),
}


# ---- running it ----------------------------------------------------------------------------
def train_single(build: Callable, loss: Callable, batches: list, load: tuple | None = None) -> dict:
    s = SingleProcess(build(), adamw, loss())
    if load is not None:
        s.load_full_state(*load)
    losses = [s.train_step(sg.tensor(x), sg.tensor(y)) for x, y in batches]
    logits = s.predict(sg.tensor(batches[0][0])).numpy()
    return {
        "losses": losses,
        "state": s.full_state_dict(),
        "opt": s.full_optimizer_state_dict(),
        "logits": logits,
    }


def run_zero3(
    build: Callable, loss: Callable, batches: list, world: int = 2, load: tuple | None = None
) -> list[dict]:
    models = [build() for _ in range(world)]

    def rank_fn(rank: int, size: int) -> dict:
        dist.init_process_group("threads", rank=rank, world_size=size)
        try:
            s = ZeRO(models[rank], adamw, loss(), stage=3)
            if load is not None:
                s.load_full_state(*load)
            losses = []
            for x, y in batches:
                mine = slice(rank * len(x) // size, (rank + 1) * len(x) // size)
                losses.append(s.train_step(sg.tensor(x[mine]), sg.tensor(y[mine])))
            return {
                "losses": losses,
                "state": s.full_state_dict(),
                "opt": s.full_optimizer_state_dict(),
                "logits": s.predict(sg.tensor(batches[0][0])).numpy(),
                "stored": sum(u.shard.array.size for u in s.units),
                "shards": [(u.layout.numel, u.shard.array.size) for u in s.units],
                "full": [u.full for u in s.units],
                "left_in_model": sum(p.array.size for p in s.model.parameters()),
                "model": s.model,
            }
        finally:
            dist.destroy_process_group()

    return dist.spawn(rank_fn, world)


def assert_same_weights(
    got: dict, want: dict, bound: float | None = None, rtol: float = RTOL, atol: float = ATOL
) -> None:
    """Same keys in the same order, same values; with a ``bound``, an attention's key bias
    only within it (float32, see the module docstring)."""
    assert list(got) == list(want)
    for k, w in want.items():
        g = got[k]
        if bound is not None and k.endswith("in_proj_bias"):  # [q | k | v]
            d = len(w) // 3
            assert np.abs(g[d : 2 * d] - w[d : 2 * d]).max() <= bound, k
            g, w = np.delete(g, slice(d, 2 * d)), np.delete(w, slice(d, 2 * d))
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=k)


def assert_same_optimizer_state(got: dict, want: dict) -> None:
    assert sorted(got["state"]) == sorted(want["state"])
    for i, s in want["state"].items():
        assert sorted(got["state"][i]) == sorted(s)
        for k, v in s.items():
            np.testing.assert_allclose(
                got["state"][i][k], v, rtol=RTOL, atol=1e-14, err_msg=f"{i}.{k}"
            )
    assert got["param_groups"] == want["param_groups"]


# ---- the tests ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_zero3_equals_single_process(name: str) -> None:
    build, loss, data = CASES[name]
    batches = data(np.random.default_rng(1), BATCH)
    truth = train_single(build, loss, batches)
    plain = build()
    total = sum(p.array.size for p in plain.parameters())
    for r in run_zero3(build, loss, batches):
        np.testing.assert_allclose(r["losses"], truth["losses"], rtol=RTOL)
        assert_same_weights(r["state"], truth["state"])  # the plain model's keys, in order
        assert_same_optimizer_state(r["opt"], truth["opt"])
        np.testing.assert_allclose(r["logits"], truth["logits"], rtol=RTOL, atol=ATOL)
        # this rank stores half of every unit (rounded up), and no full parameter anywhere
        assert sum(numel for numel, _ in r["shards"]) == total
        assert all(size == math.ceil(numel / 2) for numel, size in r["shards"])
        assert total / 2 <= r["stored"] <= total / 2 + len(r["shards"])
        assert r["full"] == [None] * len(r["shards"]) and r["left_in_model"] == 0


def test_tied_weights_are_one_shard_with_both_uses_in_the_gradient() -> None:
    """The GPT's head reads the token table: one unit, two gathers, both keys exported."""
    build, loss, data = CASES["gpt-tied"]
    batches = data(np.random.default_rng(2), BATCH)
    (r, _) = run_zero3(build, loss, batches)
    names = [n for n, _ in build().named_parameters()]
    assert "head.weight" not in names and "head.weight" in r["state"]
    np.testing.assert_array_equal(r["state"]["head.weight"], r["state"]["token.weight"])
    assert not isinstance(r["model"].head, Zero3Linear)  # its weight lives in token's unit
    assert isinstance(r["model"].blocks.layers[0].linear1, Zero3Linear)  # the fast path stays
    untied = run_zero3(*CASES["gpt"][:2], batches)[0]["model"]
    assert isinstance(untied.head, Zero3Linear)
    # the truth adds the token and head gradients of one Parameter: so must the shards
    assert_same_weights(r["state"], train_single(build, loss, batches)["state"])


def test_three_ranks_pad_the_units() -> None:
    build, loss, data = CASES["lstm-lm-tied"]
    batches = data(np.random.default_rng(3), 6)  # 6 rows: 2 per rank
    truth = train_single(build, loss, batches)
    results = run_zero3(build, loss, batches, world=3)
    assert any(numel % 3 for numel, _ in results[0]["shards"])  # really padded
    for r in results:
        assert_same_weights(r["state"], truth["state"])
        assert_same_optimizer_state(r["opt"], truth["opt"])


@pytest.mark.parametrize("name", ["seq2seq", "gpt-tied", "vit"])
def test_checkpoints_move_between_zero3_and_one_process(name: str) -> None:
    """Two steps under one, the rest under the other: the three-step truth either way."""
    build, loss, data = CASES[name]
    batches = data(np.random.default_rng(4), BATCH)
    truth = train_single(build, loss, batches)
    saved = run_zero3(build, loss, batches[:2])[0]
    if name == "seq2seq":
        assert "positions.pe" in saved["state"]  # a buffer, whole, under its own key
    resumed = train_single(build, loss, batches[2:], load=(saved["state"], saved["opt"]))
    assert_same_weights(resumed["state"], truth["state"])
    half = train_single(build, loss, batches[:2])
    for r in run_zero3(build, loss, batches[2:], load=(half["state"], half["opt"])):
        assert_same_weights(r["state"], truth["state"])
        assert_same_optimizer_state(r["opt"], truth["opt"])


def test_clear_errors() -> None:
    build, loss, _ = CASES["seq2seq"]
    model = build()
    state = {k: v.numpy() for k, v in build().state_dict().items()}
    state["positions.pe"] = state["positions.pe"][:3]

    def rank_fn(rank: int, world: int) -> list[str]:
        dist.init_process_group("threads", rank=rank, world_size=world)
        try:
            with pytest.raises(ConfigError) as empty:
                ZeRO(sg.nn.Sequential(sg.nn.ReLU()), adamw, sg.nn.CrossEntropyLoss(), stage=3)
            s = ZeRO(model, adamw, loss(), stage=3)
            with pytest.raises(ConfigError) as buffer:
                s.load_full_state(state)
            return [str(empty.value), str(buffer.value)]
        finally:
            dist.destroy_process_group()

    empty, buffer = dist.spawn(rank_fn, 1)[0]
    assert "expected a model with parameters to shard, found none" in empty
    assert "buffer 'positions.pe' has shape (3, 8) in the state, expected (64, 8)" in buffer


# ---- on Spark: main.py, two ranks, the export of one process ---------------------------------
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _main(*args: str) -> subprocess.CompletedProcess:
    # the Spark workers inherit this environment: PYTHONPATH makes them import this checkout
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYTHONPATH=path)
    env.pop("PYSPARK_GATEWAY_PORT", None)
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "main.py"), "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
    )


@pytest.mark.slow
def test_gpt_zero3_on_spark_exports_what_one_process_exports(tmp_path) -> None:
    from sparkgrad.export import load_safetensors

    rng = np.random.default_rng(0)
    words = ["spark", "grad", "tensor", "attention", "the", "model", "learns", "text,"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(" ".join(rng.choice(words, 750))[:3000] + "\n", encoding="utf-8")
    lr = 3e-3
    common = (
        "--model", "gpt", "--data", str(corpus), "--d-model", "16", "--heads", "4",
        "--layers", "1", "--context", "16", "--epochs", "1", "--batch-size", "8",
        "--optimizer", "adamw", "--lr", str(lr),
    )  # fmt: skip
    exports = {}
    for strategy, world in (("single", "1"), ("zero3", "2")):
        exports[strategy] = tmp_path / f"{strategy}.safetensors"
        where = ("--world-size", world, "--export", str(exports[strategy]))
        proc = _main(*common, "--strategy", strategy, *where)
        assert proc.returncode == 0, proc.stderr[-3000:]
    ours, meta = load_safetensors(exports["zero3"])
    truth, _ = load_safetensors(exports["single"])
    assert meta["strategy"] == "zero3" and meta["world_size"] == "2"
    steps = (int(len(corpus.read_text(encoding="utf-8")) * 0.9) - 1) // 16 // 8
    assert sorted(ours) == sorted(truth)
    vocab = json.loads(meta["vocab"])
    fresh = build_gpt(len(vocab), 0, context=16, d_model=16, nhead=4, num_layers=1)
    for key, start in fresh.state_dict().items():  # it trained: the match means something
        assert not np.allclose(start.numpy(), truth[key]), key
    assert_same_weights(
        {k: ours[k] for k in truth}, truth, bound=2 * lr * steps, rtol=1e-4, atol=1e-6
    )
