"""What a ``--model`` learns and how it is scored: the three tasks of the engine.

=========  ==========================  =================  ====================================
task       models                      ``--data``         score per epoch (on the test split)
=========  ==========================  =================  ====================================
digits     ``mlp``, ``cnn``, ``vit``   ``mnist-5k`` …     loss and accuracy
text       ``gpt``, ``lstm-lm``        ``pydoc-topics``   loss (nats per character) and
                                       or a text file     perplexity ``exp(loss)``
reverse    ``seq2seq``                 ``reverse:N``      loss and exact match of greedily
                                                          decoded answers
=========  ==========================  =================  ====================================

Each task turns ``--data`` into a training and a test :class:`TensorDataset` (inputs,
targets) and scores a model through ``strategy.predict`` only, so every strategy that can
predict can be scored — the strategies never learn which task they train.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

import sparkgrad as sg
from sparkgrad.dataset import TensorDataset
from sparkgrad.parallel.strategy import Strategy


@dataclass(frozen=True)
class Task:
    """One task: its default data and the metric its epochs report."""

    name: str
    default_data: str
    metric: str  # the EpochMetrics field that scores the model: higher is better except perplexity
    label: str  # how the epoch line names it
    percent: bool  # printed as a percentage

    def format(self, value: float) -> str:
        return f"{value:.2%}" if self.percent else f"{value:.3f}"


DIGITS = Task("digits", "mnist-5k", "test_accuracy", "test accuracy", True)
TEXT = Task("text", "pydoc-topics", "test_perplexity", "test perplexity", False)
REVERSE = Task("reverse", "reverse:20000", "test_exact_match", "test exact match", True)
TASKS = {t.name: t for t in (DIGITS, TEXT, REVERSE)}


def evaluate(
    task: Task, strategy: Strategy, loss_fn: Callable, loader: Iterable
) -> dict[str, float]:
    """``{"test_loss": ..., task.metric: ...}`` over ``loader``."""
    if task is REVERSE:
        return evaluate_reversal(strategy, loss_fn, loader)
    total_loss, correct, count = 0.0, 0, 0
    for x, y in loader:
        logits = strategy.predict(x)
        n = len(y)
        total_loss += float(loss_fn(logits, y).item()) * n
        if task is DIGITS:
            correct += int((logits.argmax(axis=1) == y).sum().item())
        count += n
    loss = total_loss / max(count, 1)
    if task is TEXT:  # every window has the same number of characters: a plain mean
        return {"test_loss": loss, "test_perplexity": math.exp(min(loss, 700.0))}
    return {"test_loss": loss, "test_accuracy": correct / max(count, 1)}


def greedy_decode(strategy: Strategy, x: sg.Tensor) -> np.ndarray:
    """The reversal model's answers, written one token at a time (no teacher forcing).

    ``x`` holds the source and, after it, the teacher-forced target; only the source is
    used. The decoder input starts as ``BOS, PAD, PAD, ...``; step ``t`` predicts token
    ``t`` from the tokens before it (the causal mask hides the PADs still ahead) and writes
    it into position ``t + 1`` of the decoder input.
    """
    from sparkgrad.dataset.reversal import BOS, PAD, SOURCE_LEN, TARGET_LEN

    ids = np.array(x.numpy(), dtype=np.int64)
    ids[:, SOURCE_LEN:] = PAD
    ids[:, SOURCE_LEN] = BOS
    answer = np.zeros((len(ids), TARGET_LEN), dtype=np.int64)
    for t in range(TARGET_LEN):
        logits = strategy.predict(sg.tensor(ids, device=x.device))
        answer[:, t] = np.asarray(logits[:, t].argmax(axis=-1).numpy())
        if t + 1 < TARGET_LEN:
            ids[:, SOURCE_LEN + t + 1] = answer[:, t]
    return answer


def exact_matches(answers: np.ndarray, targets: np.ndarray) -> int:
    """How many answers equal their target token for token, up to and including its EOS.

    What comes after the EOS is not read; a PAD, BOS or missing EOS before it is wrong.
    """
    from sparkgrad.dataset.reversal import EOS

    ends = (targets == EOS).argmax(axis=1)  # every target row holds one EOS
    return sum(np.array_equal(a[: e + 1], t[: e + 1]) for a, t, e in zip(answers, targets, ends))


def evaluate_reversal(strategy: Strategy, loss_fn: Callable, loader: Iterable) -> dict[str, float]:
    """Teacher-forced loss, and the share of answers that are exactly right up to EOS."""
    total_loss, exact, count = 0.0, 0, 0
    for x, y in loader:
        n = len(y)
        total_loss += float(loss_fn(strategy.predict(x), y).item()) * n
        exact += exact_matches(greedy_decode(strategy, x), np.asarray(y.numpy()))
        count += n
    return {"test_loss": total_loss / max(count, 1), "test_exact_match": exact / max(count, 1)}


def text_datasets(
    config: Any, corpus: str | None = None
) -> tuple[TensorDataset, TensorDataset, str]:
    """Train and validation windows of the corpus (``corpus``: text the driver already read)."""
    from sparkgrad.dataset.text import read_corpus, text_splits

    text = corpus if corpus is not None else read_corpus(config.data)
    vocab, train, test = text_splits(text, config.context)
    return TensorDataset(*train.arrays()), TensorDataset(*test.arrays()), vocab.chars


def reversal_datasets(config: Any) -> tuple[TensorDataset, TensorDataset]:
    from sparkgrad.dataset.reversal import make_reversal, parse_reverse_source

    count = parse_reverse_source(config.data)
    return (
        TensorDataset(*make_reversal(count, "train", config.seed)),
        TensorDataset(*make_reversal(count, "test", config.seed)),
    )
