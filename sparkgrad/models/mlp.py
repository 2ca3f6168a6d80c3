"""The multi-layer perceptron every strategy trains by default: 784 → hidden... → 10.

Building it right after ``sg.manual_seed(seed)`` gives the same weights on every rank, every
strategy and every run, which is what lets the tests compare strategies weight for weight.
Its ``state_dict`` keys (``0.weight``, ``0.bias``, ``2.weight`` ...) are those of the same
``torch.nn.Sequential``.
"""

from __future__ import annotations

from sparkgrad.autodiff import nn
from sparkgrad.autodiff.random import manual_seed
from sparkgrad.models.recompute import CheckpointedSequential, set_recompute

__all__ = ["architecture", "build_mlp"]


def build_mlp(
    hidden: tuple[int, ...] = (256, 256),
    seed: int = 0,
    n_in: int = 784,
    n_out: int = 10,
    recompute: str = "none",
) -> nn.Module:
    """``Linear-ReLU-...-Linear`` with PyTorch's default init, drawn from ``seed``.

    ``recompute="blocks"`` checkpoints each ``Linear``+``ReLU`` (:mod:`.recompute`): the
    same layers, weights and ``state_dict``, in a ``Sequential`` that recomputes in backward.
    """
    manual_seed(seed)
    sizes = (n_in, *hidden, n_out)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if recompute == "none":
        return nn.Sequential(*layers)
    if recompute != "blocks":
        set_recompute(nn.Sequential(), recompute)  # the error that names the valid modes
    return set_recompute(CheckpointedSequential(*layers), recompute)


def architecture(hidden: tuple[int, ...]) -> str:
    """``mlp-784-256-256-10``: the name stored in exported files."""
    return "mlp-" + "-".join(str(n) for n in (784, *hidden, 10))
