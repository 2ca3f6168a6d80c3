"""Training to accuracy: both engines, same initial weights, same batches, side by side.

:func:`train_both` trains the MLP in sparkgrad and in PyTorch in one process:

- the same weights: sparkgrad's :func:`~sparkgrad.engine.model.build_mlp` from the seed,
  copied into PyTorch by :func:`~sparkgrad.benchmark.torch_ddp_job.torch_mlp`;
- the same batches in the same order: one NumPy permutation per epoch, drawn once and
  used by both engines (so the first step sees the same batch and, from the same weights,
  gives the same loss up to float rounding — the report checks it);
- the same optimizer maths (``torch.optim`` semantics in both) and the same thread count.

Epochs are interleaved — sparkgrad's epoch 1, PyTorch's epoch 1, sparkgrad's epoch 2, … —
so background load on a shared machine hits both alike. An epoch's clock covers the training
loop only (forward, loss, backward, optimizer step, reading the loss), not the evaluation;
on a GPU it is synchronised before it starts and before it stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import sparkgrad as sg
from sparkgrad.autodiff.backend import to_numpy
from sparkgrad.benchmark.step import _synchronize
from sparkgrad.benchmark.torch_ddp_job import torch_mlp, torch_optimizer
from sparkgrad.benchmark.torch_device import torch_device
from sparkgrad.dataset import load_mnist
from sparkgrad.engine.model import build_mlp, build_optimizer

ENGINES = ("sparkgrad", "pytorch")


@dataclass
class TrainingComparison:
    """Per-epoch curves of both engines on one dataset (``curves[engine][i]`` = epoch i+1)."""

    data: str
    hidden: tuple[int, ...]
    optimizer: str
    batch: int
    train_samples: int
    test_samples: int
    first_loss: dict[str, float] = field(default_factory=dict)
    step_losses: dict[str, list[float]] = field(default_factory=dict)
    curves: dict[str, list[dict]] = field(default_factory=dict)

    def final(self, engine: str, key: str) -> float:
        """The last epoch's ``key`` (e.g. ``test_accuracy``) of ``engine``."""
        return self.curves[engine][-1][key]

    def epoch_seconds(self, engine: str) -> float:
        """Median seconds per epoch, epoch 1 (warm-up) left out when there are more."""
        seconds = [m["seconds"] for m in self.curves[engine]]
        return float(np.median(seconds[1:] if len(seconds) > 1 else seconds))

    @property
    def ratio(self) -> float:
        """sparkgrad / PyTorch seconds per epoch."""
        return self.epoch_seconds("sparkgrad") / self.epoch_seconds("pytorch")


def _limit(arrays: tuple[np.ndarray, np.ndarray], n: int | None) -> tuple[np.ndarray, ...]:
    return arrays if n is None else tuple(a[:n] for a in arrays)


def _engines(
    hidden: tuple[int, ...], seed: int, optimizer: str, lr: float, momentum: float, device: str
) -> dict[str, tuple[Callable, Callable]]:
    """``engine -> (step(x, y) -> loss, predict(x) -> labels)`` on numpy inputs."""
    import torch

    s_model = build_mlp(hidden, seed).to(device)
    s_opt = build_optimizer(optimizer, s_model.parameters(), lr, momentum)
    s_loss = sg.nn.CrossEntropyLoss()
    t_model = torch_mlp(hidden, seed).to(torch_device(device))
    t_opt = torch_optimizer(optimizer, t_model.parameters(), lr, momentum)
    t_loss = torch.nn.CrossEntropyLoss()

    def s_step(x: Any, y: Any) -> float:
        s_opt.zero_grad()
        loss = s_loss(s_model(x), y)
        loss.backward()
        s_opt.step()
        return loss.item()

    def s_predict(x: Any) -> np.ndarray:
        with sg.no_grad():
            return to_numpy(s_model(x).array).argmax(axis=1)

    def t_step(x: Any, y: Any) -> float:
        t_opt.zero_grad()
        loss = t_loss(t_model(x), y)
        loss.backward()
        t_opt.step()
        return loss.item()

    def t_predict(x: Any) -> np.ndarray:
        with torch.no_grad():
            return t_model(x).argmax(dim=1).cpu().numpy()

    return {"sparkgrad": (s_step, s_predict), "pytorch": (t_step, t_predict)}


def _to_engine(engine: str, array: np.ndarray, device: str) -> Any:
    if engine == "sparkgrad":
        return sg.tensor(array, device=device)
    import torch

    return torch.from_numpy(array).to(torch_device(device))


def train_both(
    data: str = "mnist-5k",
    hidden: tuple[int, ...] = (256, 256),
    epochs: int = 5,
    batch: int = 64,
    optimizer: str = "sgd",
    lr: float = 0.05,
    momentum: float = 0.9,
    seed: int = 0,
    device: str = "cpu",
    train_limit: int | None = None,
    test_limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainingComparison:
    """Train both engines ``epochs`` epochs on ``data`` (any ``--data`` source string)."""
    x_train, y_train = _limit(load_mnist(data, "train", seed=seed), train_limit)
    x_test, y_test = _limit(load_mnist(data, "test", seed=seed), test_limit)
    result = TrainingComparison(data, tuple(hidden), optimizer, batch, len(y_train), len(y_test))
    engines = _engines(tuple(hidden), seed, optimizer, lr, momentum, device)
    test_x = {e: _to_engine(e, x_test, device) for e in ENGINES}
    sync = _synchronize(device)
    rng = np.random.default_rng(seed)
    steps_per_epoch = len(y_train) // batch  # drop_last, as DataLoader(drop_last=True)
    for e in ENGINES:
        result.step_losses[e], result.curves[e] = [], []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(y_train))[: steps_per_epoch * batch].reshape(-1, batch)
        for engine in ENGINES:
            step, predict = engines[engine]
            # batches are moved to the device before the clock starts, as a DataLoader
            # with pinned memory would prefetch them
            batches = [
                (_to_engine(engine, x_train[i], device), _to_engine(engine, y_train[i], device))
                for i in order
            ]
            sync()
            start = time.perf_counter()
            losses = [step(x, y) for x, y in batches]
            sync()
            seconds = time.perf_counter() - start
            accuracy = float(np.mean(predict(test_x[engine]) == y_test))
            result.step_losses[engine] += losses
            result.curves[engine].append(
                {
                    "epoch": epoch,
                    "train_loss": float(np.mean(losses)),
                    "test_accuracy": accuracy,
                    "seconds": seconds,
                    "samples_per_second": len(losses) * batch / seconds,
                }
            )
            if progress:
                progress(
                    f"train {data} {engine} epoch {epoch}/{epochs}: loss {np.mean(losses):.4f}"
                    f" acc {accuracy:.4f} {seconds:.2f}s"
                )
    for e in ENGINES:
        result.first_loss[e] = result.step_losses[e][0]
    return result
