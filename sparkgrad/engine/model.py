"""The model every strategy trains: an MLP 784 → hidden... → 10, built from a seed.

Building it right after ``sg.manual_seed(seed)`` gives the same weights on every rank, every
strategy and every run, which is what lets the tests compare strategies weight for weight.
"""

from __future__ import annotations

import sparkgrad as sg
from sparkgrad.autodiff.nn import Module


def build_mlp(
    hidden: tuple[int, ...] = (256, 256), seed: int = 0, n_in: int = 784, n_out: int = 10
) -> Module:
    """``Linear-ReLU-...-Linear`` with PyTorch's default init, drawn from ``seed``."""
    sg.manual_seed(seed)
    sizes = (n_in, *hidden, n_out)
    layers: list[Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(sg.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(sg.nn.ReLU())
    return sg.nn.Sequential(*layers)


def build_optimizer(name: str, params: object, lr: float, momentum: float = 0.0) -> object:
    """``sgd`` (with momentum), ``adam`` or ``adamw`` with PyTorch's defaults otherwise."""
    if name == "sgd":
        return sg.optim.SGD(params, lr=lr, momentum=momentum)
    if name == "adam":
        return sg.optim.Adam(params, lr=lr)
    return sg.optim.AdamW(params, lr=lr)


def architecture(hidden: tuple[int, ...]) -> str:
    """``mlp-784-256-256-10``: the name stored in exported files."""
    return "mlp-" + "-".join(str(n) for n in (784, *hidden, 10))
