"""The independent truth for every strategy test: a plain single-process run.

``train_single`` builds the model from the seed, takes ``steps`` optimizer steps on the
*global* batches and returns the final weights, the optimizer state and the losses. A
strategy is right when its ranks end with the same numbers (rtol 1e-5).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import sparkgrad as sg
from sparkgrad.autodiff import functional as F
from sparkgrad.parallel.single import SingleProcess

FEATURES, CLASSES = 12, 4
WIDTHS = (FEATURES, 16, 16, 8, CLASSES)  # hidden widths divisible by 2 and 4


def make_model(seed: int = 0, widths: tuple[int, ...] = WIDTHS) -> sg.nn.Module:
    """``Linear-ReLU-...-Linear`` from ``seed`` (the same weights on every rank)."""
    sg.manual_seed(seed)
    layers: list[sg.nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(sg.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(sg.nn.ReLU())
    return sg.nn.Sequential(*layers)


def optimizer_factory(name: str) -> Any:
    """``params -> optimizer``: SGD with momentum or Adam."""
    if name == "sgd":
        return lambda params: sg.optim.SGD(params, lr=0.1, momentum=0.9)
    return lambda params: sg.optim.Adam(params, lr=0.01)


def make_batches(steps: int, batch: int, seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """``steps`` global batches of random features and labels."""
    rng = np.random.default_rng(seed)
    return [
        (
            rng.standard_normal((batch, FEATURES)).astype(np.float32),
            rng.integers(0, CLASSES, batch),
        )
        for _ in range(steps)
    ]


def train_single(batches: list, optimizer: str, seed: int = 0, widths: tuple = WIDTHS) -> dict:
    """Final ``state`` (NumPy), ``optimizer_state`` and per-step ``losses`` of one process."""
    model = make_model(seed, widths)
    strategy = SingleProcess(model, optimizer_factory(optimizer), F.cross_entropy)
    losses = [strategy.train_step(sg.tensor(x), sg.tensor(y)) for x, y in batches]
    return {
        "state": strategy.full_state_dict(),
        "optimizer_state": strategy.full_optimizer_state_dict(),
        "losses": losses,
    }


def rows(x: np.ndarray, size: int, rank: int) -> np.ndarray:
    """Rank ``rank``'s contiguous rows of a global batch split ``size`` ways."""
    n = len(x) // size
    return x[rank * n : (rank + 1) * n]


def assert_same_state(got: dict, want: dict, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Every key present in both, every array equal within ``rtol``."""
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol, err_msg=k)
