"""What ``--model`` and ``--optimizer`` name: the models the engine trains and their optimizers.

Each model (``sparkgrad.models``) comes with what the engine must know about it: how to
build it from the run's seed, its loss (the CNN ends in ``log_softmax``, so it trains with
``NLLLoss``, as PyTorch's MNIST example does), a batch size for evaluation that keeps memory
modest, how its inputs are scaled, the name written into exported files, and whether the
layer-splitting strategies
(model, pipeline, tensor, hybrid) know how to cut it — today they cut an MLP's Linear layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sparkgrad as sg
from sparkgrad.autodiff.nn import Module
from sparkgrad.models import architecture, build_cnn, build_mlp

__all__ = ["MODELS", "OPTIMIZERS", "ModelSpec", "architecture", "build_mlp", "build_optimizer"]


@dataclass(frozen=True)
class ModelSpec:
    """One ``--model`` choice."""

    build: Callable[[Any], Module]  # RunConfig -> the model, drawn from config.seed
    loss: Callable[[], Module]
    eval_batch: int
    standardize: bool  # pixels (x/255 - 0.1307) / 0.3081, as PyTorch's MNIST example; else x/255
    name: Callable[[Any], str]  # RunConfig -> the architecture stored in exports
    splits_layers: bool  # can model/pipeline/tensor/hybrid cut it?


MODELS = {
    "mlp": ModelSpec(
        build=lambda c: build_mlp(c.hidden, c.seed),
        loss=sg.nn.CrossEntropyLoss,
        eval_batch=1000,
        standardize=False,
        name=lambda c: architecture(c.hidden),
        splits_layers=True,
    ),
    "cnn": ModelSpec(
        build=lambda c: build_cnn(c.seed),
        loss=sg.nn.NLLLoss,
        eval_batch=250,  # conv2's unfolded patches of 1000 images take ~660 MB
        standardize=True,
        name=lambda c: "cnn-mnist",
        splits_layers=False,
    ),
}

OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "rmsprop", "adagrad")


def build_optimizer(name: str, params: object, lr: float, momentum: float = 0.0) -> object:
    """One of :data:`OPTIMIZERS`, with PyTorch's defaults except ``lr`` (and SGD's momentum)."""
    if name == "sgd":
        return sg.optim.SGD(params, lr=lr, momentum=momentum)
    if name == "rmsprop":
        return sg.optim.RMSprop(params, lr=lr, momentum=momentum)
    cls = {
        "adam": sg.optim.Adam,
        "adamw": sg.optim.AdamW,
        "adadelta": sg.optim.Adadelta,
        "adagrad": sg.optim.Adagrad,
    }[name]
    return cls(params, lr=lr)
