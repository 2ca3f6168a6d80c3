"""What ``--model`` and ``--optimizer`` name: the models the engine trains and their optimizers.

Each model (``sparkgrad.models``) comes with what the engine must know about it: its task
(:mod:`sparkgrad.engine.tasks`: digits, text or reverse — which data it reads and how it is
scored), how to build it from the run's config and seed (a language model also needs its
corpus's vocabulary: ``vocab``), its loss (the CNN ends in ``log_softmax``, so it trains
with ``NLLLoss``, as PyTorch's MNIST example does; sequence models score every position:
``TokenCrossEntropy``), a batch size for evaluation that keeps memory modest, how its
inputs are scaled, the name written into exported files, and the settings it trains well
with when the command line gives none
(``defaults``: a ViT wants AdamW and 30 epochs where the MLP's SGD defaults are fine).
Which models a layer-splitting strategy can cut is the strategy's own ``models`` list
(``parallel/strategy.py``): model, pipeline, tensor and hybrid cut the MLP and the GPT,
context splits the GPT's sequence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sparkgrad as sg
from sparkgrad.autodiff.nn import Module
from sparkgrad.engine.tasks import DIGITS, REVERSE, TEXT, Task
from sparkgrad.models import architecture, build_cnn, build_mlp
from sparkgrad.models.gpt import build_gpt
from sparkgrad.models.lstm_lm import build_lstm_lm
from sparkgrad.models.seq2seq import build_seq2seq
from sparkgrad.models.sequence_parts import TokenCrossEntropy
from sparkgrad.models.vit import build_vit

__all__ = ["MODELS", "OPTIMIZERS", "ModelSpec", "architecture", "build_mlp", "build_optimizer"]


@dataclass(frozen=True)
class ModelSpec:
    """One ``--model`` choice."""

    task: Task
    build: Callable[[Any, str], Module]  # (RunConfig, vocab) -> the model, drawn from config.seed
    loss: Callable[[], Module]
    eval_batch: int
    standardize: bool  # pixels (x/255 - 0.1307) / 0.3081, as PyTorch's MNIST example; else x/255
    name: Callable[[Any], str]  # RunConfig -> the architecture stored in exports
    defaults: dict = field(default_factory=dict)  # options this model trains well with
    options: tuple[str, ...] = ()  # the model options (--d-model ...) it reads


def _transformer_name(kind: str) -> Callable[[Any], str]:
    return lambda c: f"{kind}-d{c.d_model}-h{c.heads}-l{c.layers}"


SEQUENCE_OPTIONS = ("d_model", "heads", "layers", "dropout")
TEXT_DEFAULTS = {"optimizer": "adamw", "lr": 3e-3, "batch_size": 32, "epochs": 3}

MODELS = {
    "mlp": ModelSpec(
        task=DIGITS,
        build=lambda c, vocab: build_mlp(c.hidden, c.seed, recompute=c.recompute),
        loss=sg.nn.CrossEntropyLoss,
        eval_batch=1000,
        standardize=False,
        name=lambda c: architecture(c.hidden),
        options=("hidden", "recompute"),
    ),
    "cnn": ModelSpec(
        task=DIGITS,
        build=lambda c, vocab: build_cnn(c.seed),
        loss=sg.nn.NLLLoss,
        eval_batch=250,  # conv2's unfolded patches of 1000 images take ~660 MB
        standardize=True,
        name=lambda c: "cnn-mnist",
    ),
    "vit": ModelSpec(
        task=DIGITS,
        build=lambda c, vocab: build_vit(
            c.seed,
            d_model=c.d_model,
            nhead=c.heads,
            num_layers=c.layers,
            dropout=c.dropout,
            recompute=c.recompute,
        ),
        loss=sg.nn.CrossEntropyLoss,
        eval_batch=500,
        standardize=True,
        name=_transformer_name("vit-p7"),
        defaults={"optimizer": "adamw", "lr": 2e-3, "gamma": 0.93, "epochs": 30},
        options=(*SEQUENCE_OPTIONS, "recompute"),
    ),
    "gpt": ModelSpec(
        task=TEXT,
        build=lambda c, vocab: build_gpt(
            len(vocab),
            c.seed,
            context=c.context,
            d_model=c.d_model,
            nhead=c.heads,
            num_layers=c.layers,
            dropout=c.dropout,
            tie_weights=c.tie_weights,
            recompute=c.recompute,
        ),
        loss=TokenCrossEntropy,
        eval_batch=250,
        standardize=False,
        name=_transformer_name("gpt"),
        defaults=TEXT_DEFAULTS,
        options=(*SEQUENCE_OPTIONS, "context", "tie_weights", "recompute"),
    ),
    "lstm-lm": ModelSpec(
        task=TEXT,
        build=lambda c, vocab: build_lstm_lm(
            len(vocab),
            c.seed,
            context=c.context,
            d_model=c.d_model,
            num_layers=c.layers,
            dropout=c.dropout,
            tie_weights=c.tie_weights,
        ),
        loss=TokenCrossEntropy,
        eval_batch=250,
        standardize=False,
        name=lambda c: f"lstm-lm-d{c.d_model}-l{c.layers}",
        defaults={**TEXT_DEFAULTS, "d_model": 128},
        options=("d_model", "layers", "dropout", "context", "tie_weights"),
    ),
    "seq2seq": ModelSpec(
        task=REVERSE,
        build=lambda c, vocab: build_seq2seq(
            c.seed,
            d_model=c.d_model,
            nhead=c.heads,
            num_layers=c.layers,
            dropout=c.dropout,
            recompute=c.recompute,
        ),
        loss=lambda: TokenCrossEntropy(ignore_index=0),  # PAD positions are not scored
        eval_batch=500,
        standardize=False,
        name=_transformer_name("seq2seq"),
        defaults={"optimizer": "adamw", "lr": 2e-3, "gamma": 0.7, "epochs": 10},
        options=(*SEQUENCE_OPTIONS, "recompute"),
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
