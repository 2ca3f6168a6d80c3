"""A tiny GPT, its global batches and the single-process truth, for the tensor-parallel tests.

The vocabulary (11) is divisible by none of 2, 4 and 8, so the vocabulary slices are uneven
on every tensor-parallel size tested; 8 heads of width 2 split 2, 4 and 8 ways. Every rank
builds its model under one lock: the thread ranks share sparkgrad's seeded generator.

AdamW runs with ``eps=1e-3``, not 1e-8: the key projection's bias has a gradient of exactly
zero in exact arithmetic (softmax ignores a shift shared by a whole row of scores), so what
reaches it is float noise (~5e-10) that differs with the reduction order; with eps 1e-8 Adam
divides that noise by its own size and takes ±lr steps in random directions on both sides.
A larger eps keeps those steps ~1e-8 and, unlike eps 1e-8 (whose first step is lr·sign(g)),
makes every other parameter's step proportional to its gradient: a stricter comparison.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

import sparkgrad as sg
import sparkgrad.distributed as dist
from sparkgrad.models.gpt import build_gpt
from sparkgrad.models.sequence_parts import TokenCrossEntropy
from sparkgrad.parallel.single import SingleProcess

VOCAB, CONTEXT = 11, 8
GPT_OPTIONS = {"context": CONTEXT, "d_model": 16, "nhead": 8, "num_layers": 2, "dropout": 0.0}
BUILD_LOCK = threading.Lock()


def build(seed: int = 0, **options: Any) -> sg.nn.Module:
    """The tiny GPT from ``seed`` (one thread at a time; see the module docstring)."""
    with BUILD_LOCK:
        return build_gpt(VOCAB, seed, **{**GPT_OPTIONS, **options})


def optimizer_factory(name: str) -> Callable[[Any], Any]:
    """``params -> optimizer``: SGD with momentum or AdamW (eps: see the module docstring)."""
    if name == "sgd":
        return lambda params: sg.optim.SGD(params, lr=0.1, momentum=0.9)
    return lambda params: sg.optim.AdamW(params, lr=0.01, eps=1e-3)


def make_batches(steps: int, batch: int = 4, seed: int = 1, length: int = CONTEXT) -> list:
    """``steps`` global batches of ids and next-token targets, a few targets ignored (-100)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        ids = rng.integers(0, VOCAB, (batch, length))
        target = rng.integers(0, VOCAB, (batch, length))
        target[rng.random((batch, length)) < 0.15] = -100
        out.append((ids, target))
    return out


def train_single(batches: list, optimizer: str, seed: int = 0, **options: Any) -> dict:
    """Final ``state``, ``optimizer_state`` and per-step ``losses`` of one process."""
    strategy = SingleProcess(
        build(seed, **options), optimizer_factory(optimizer), TokenCrossEntropy()
    )
    losses = [strategy.train_step(sg.tensor(x), sg.tensor(y)) for x, y in batches]
    return {
        "state": strategy.full_state_dict(),
        "optimizer_state": strategy.full_optimizer_state_dict(),
        "losses": losses,
        "strategy": strategy,
    }


def single_logits(state: dict, ids: np.ndarray, **options: Any) -> np.ndarray:
    """What a single process with weights ``state`` predicts for ``ids``."""
    model = build(9, **options)
    model.load_state_dict(state)
    model.eval()
    with sg.no_grad():
        return model(sg.tensor(ids)).numpy()


def rows(x: np.ndarray, size: int, rank: int) -> np.ndarray:
    n = len(x) // size
    return x[rank * n : (rank + 1) * n]


def on_ranks(world: int, fn: Callable[[], Any]) -> list[Any]:
    """``fn()`` on ``world`` thread ranks, each inside its own process group."""

    def rank_fn(rank: int, world_size: int) -> Any:
        dist.init_process_group("threads", rank=rank, world_size=world_size)
        try:
            return fn()
        finally:
            dist.destroy_process_group()

    return dist.spawn(rank_fn, world)


def run_ranks(
    world: int,
    make: Callable[[], Any],
    batches: list,
    load: tuple | None = None,
    predict_x: np.ndarray | None = None,
) -> list[dict]:
    """On ``world`` thread ranks: build, optionally load a full state, train on this rank's
    rows of every batch; return state, optimizer state, losses and (optionally) logits."""

    def rank_fn(rank: int, world_size: int) -> dict:
        dist.init_process_group("threads", rank=rank, world_size=world_size)
        try:
            s = make()
            if load is not None:
                s.load_full_state(*load)
            n, r = s.data_parallel_size, s.data_parallel_rank
            losses = [
                s.train_step(sg.tensor(rows(x, n, r)), sg.tensor(rows(y, n, r))) for x, y in batches
            ]
            out = {
                "state": s.full_state_dict(),
                "opt": s.full_optimizer_state_dict(),
                "losses": losses,
                "report": s.report(),
            }
            if predict_x is not None:
                out["logits"] = s.predict(sg.tensor(predict_x)).numpy()
            return out
        finally:
            dist.destroy_process_group()

    return dist.spawn(rank_fn, world)


def assert_matches(results: list[dict], truth: dict, rtol: float = 1e-5) -> None:
    """Weights, losses and optimizer state of every rank equal the single process's."""
    for r in results:
        assert sorted(r["state"]) == sorted(truth["state"])
        for k, want in truth["state"].items():
            np.testing.assert_allclose(r["state"][k], want, rtol=rtol, atol=1e-6, err_msg=k)
        np.testing.assert_allclose(r["losses"], truth["losses"], rtol=rtol)
        want_opt = truth["optimizer_state"]["state"]
        assert sorted(r["opt"]["state"]) == sorted(want_opt)
        for i, s in want_opt.items():
            for k, v in s.items():
                got = r["opt"]["state"][i][k]
                np.testing.assert_allclose(got, v, rtol=rtol, atol=1e-7, err_msg=f"{i}.{k}")
