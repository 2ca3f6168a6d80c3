"""Text for the character-level language models (``--model gpt`` and ``--model lstm-lm``).

A language model learns to predict the next character of a text. Three pieces:

1. :func:`read_corpus` — the text. The default, ``pydoc-topics``, is the Python reference
   manual's topics that every Python installation ships in ``pydoc_data`` (about 465,000
   characters of English and code), so nothing is downloaded. A local UTF-8 file or a
   Hadoop URI (``hdfs://``, ``s3a://``, ``file://``; read through Spark) can be given instead.
2. :class:`CharVocab` — the characters of the corpus, sorted, numbered 0..V-1
   (``encode``/``decode``). The vocabulary is a function of the text alone, so every rank
   builds the same one.
3. :class:`TextWindows` — the encoded text cut into windows of ``context + 1`` ids:
   input ``ids[i : i + context]``, target ``ids[i + 1 : i + context + 1]`` (the same window
   shifted by one). Windows start every ``context`` characters, so an epoch reads the text
   once.

:func:`text_splits` holds out the last tenth of the text for validation (a contiguous piece:
random windows would leak the validation text into training through overlapping context).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass

import numpy as np

from sparkgrad.dataset.dataset import Dataset
from sparkgrad.errors import ConfigError, DataFormatError

DEFAULT_CORPUS = "pydoc-topics"
VALIDATION_FRACTION = 0.1


def pydoc_topics() -> str:
    """The standard library's reference topics, joined in sorted order (same on every rank)."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name] for name in sorted(topics))


def decode_utf8(data: bytes, where: str) -> str:
    """``data`` as text; a DataFormatError naming the byte offset when it is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"{where}: expected UTF-8 text, found byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start} that is not valid UTF-8"
        ) from None


def read_corpus(source: str | None = None, spark: object = None) -> str:
    """The text of ``source``: ``pydoc-topics`` (default), a local file, or a Hadoop URI."""
    from sparkgrad.dataset.sources import file_uri_path, is_uri

    text = source or DEFAULT_CORPUS
    if text == DEFAULT_CORPUS:
        return pydoc_topics()
    local = file_uri_path(text) if text.startswith("file:") else None
    if is_uri(text) and local is None:
        from sparkgrad.dataset.spark_io import list_files, read_files

        files = list_files(text, spark)
        if len(files) != 1:
            raise DataFormatError(f"{text}: expected one text file, found {len(files)} files")
        return decode_utf8(read_files(files, spark)[files[0]], f"--data {text}")
    path = local or text
    if os.path.isdir(path):
        raise ConfigError(f"--data {text}: expected a UTF-8 text file, found a directory")
    if not os.path.isfile(path):
        raise ConfigError(
            f"--data {text}: no such file (give a UTF-8 text file, a Hadoop URI or "
            f"'{DEFAULT_CORPUS}')"
        )
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DataFormatError(f"--data {text}: cannot read ({exc.strerror or exc})") from None
    return decode_utf8(data, f"--data {text}")


@dataclass(frozen=True)
class CharVocab:
    """The characters of a text, numbered in sorted order."""

    chars: str

    @classmethod
    def of(cls, text: str) -> CharVocab:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """int64 ids of ``text``; a ConfigError names the first character not in the vocabulary."""
        index = {c: i for i, c in enumerate(self.chars)}
        try:
            return np.array([index[c] for c in text], dtype=np.int64)
        except KeyError as exc:
            raise ConfigError(
                f"character {exc.args[0]!r} is not in the corpus's vocabulary of "
                f"{len(self)} characters"
            ) from None

    def decode(self, ids: object) -> str:
        """The text of ``ids``; a ConfigError names an id outside 0..V-1."""
        values = [int(i) for i in np.asarray(ids).reshape(-1)]
        bad = [i for i in values if not 0 <= i < len(self)]
        if bad:
            raise ConfigError(
                f"token id {bad[0]} is outside the vocabulary (expected 0..{len(self) - 1})"
            )
        return "".join(self.chars[i] for i in values)

    def unigram_entropy(self, text: str) -> float:
        """Entropy in nats of the character frequencies: the loss of a model ignoring context."""
        counts, n = Counter(text), len(text)
        return -sum(c / n * math.log(c / n) for c in counts.values())


class TextWindows(Dataset):
    """Item ``i``: (``ids[s : s + context]``, ``ids[s + 1 : s + context + 1]``), s = i·context."""

    def __init__(self, ids: np.ndarray, context: int) -> None:
        if len(ids) < context + 1:
            raise DataFormatError(
                f"a text of {len(ids)} character{'s' if len(ids) != 1 else ''} is shorter than "
                f"one context window "
                f"(--context {context} needs at least {context + 1})"
            )
        self.ids, self.context = np.asarray(ids, dtype=np.int64), context
        self.count = (len(ids) - 1) // context

    def __len__(self) -> int:
        return self.count

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All windows at once: inputs and targets, each (len(self), context)."""
        n, t = self.count, self.context
        return self.ids[: n * t].reshape(n, t), self.ids[1 : n * t + 1].reshape(n, t)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not -self.count <= index < self.count:
            raise IndexError(f"window {index} out of range for {self.count} windows")
        start, t = (index % self.count) * self.context, self.context
        return self.ids[start : start + t], self.ids[start + 1 : start + t + 1]


def text_splits(text: str, context: int) -> tuple[CharVocab, TextWindows, TextWindows]:
    """The vocabulary and the train / validation windows (the last tenth of the text)."""
    vocab = CharVocab.of(text)
    ids = vocab.encode(text)
    cut = int(len(ids) * (1 - VALIDATION_FRACTION))
    parts = {"training (first nine tenths)": ids[:cut], "validation (last tenth)": ids[cut:]}
    for name, part in parts.items():
        if len(part) < context + 1:
            raise DataFormatError(
                f"the corpus's {name} part has {len(part)} characters, shorter than one "
                f"context window of {context + 1}: give a longer text or a smaller --context"
            )
    return vocab, TextWindows(ids[:cut], context), TextWindows(ids[cut:], context)
