"""``reverse:N`` — a translation task with an exact answer, for ``--model seq2seq``.

The "sentence" is a string of 1 to :data:`MAX_DIGITS` digits; its "translation" is the same
digits reversed (``"2024" → "4202"``). An encoder-decoder Transformer must read the whole
source before it can write the first target digit, so attention — not a local rule — does
the work; and the answer is exact, so the metric is exact match over the whole string.

Token ids: ``PAD = 0``, ``BOS = 1`` (start of the target), ``EOS = 2`` (end of the target),
digits ``'0'..'9'`` are ``3..12``. One example, padded to fixed widths:

=============  ==============================================  =======================
``src``        the digits, then PAD                             ``MAX_DIGITS`` ids
``tgt_in``     BOS, the reversed digits, then PAD (teacher      ``MAX_DIGITS + 1`` ids
               forcing: what the decoder has written so far)
``tgt_out``    the reversed digits, EOS, then PAD (what it      ``MAX_DIGITS + 1`` ids
               must write next; PAD positions are ignored by
               the loss: ``ignore_index=PAD``)
=============  ==============================================  =======================

The engine's strategies hand one input tensor to the model, so an example's input is
``src`` and ``tgt_in`` side by side (``MAX_DIGITS + MAX_DIGITS + 1`` ids); the model splits
them (:class:`sparkgrad.models.seq2seq.Seq2SeqTransformer`). ``train`` has ``N`` examples,
``test`` ``max(1, N // 10)`` from another stream of the same seed.
"""

from __future__ import annotations

import numpy as np

from sparkgrad.errors import ConfigError

PAD, BOS, EOS = 0, 1, 2
DIGIT0 = 3
VOCAB = DIGIT0 + 10
MAX_DIGITS = 10
SOURCE_LEN, TARGET_LEN = MAX_DIGITS, MAX_DIGITS + 1


def parse_reverse_source(text: str) -> int:
    """``reverse:N`` → N (a ConfigError when N is not a positive integer)."""
    count = text.split(":", 1)[1] if text.startswith("reverse:") else ""
    if not count.isdigit() or int(count) < 1:
        raise ConfigError(f"expected reverse:N with N a positive integer, found {text!r}")
    return int(count)


def encode_digits(digits: str) -> np.ndarray:
    """``"2024"`` → its source row (digits as ids 3..12, then PAD)."""
    if not digits.isdigit() or not 1 <= len(digits) <= MAX_DIGITS:
        raise ConfigError(f"expected 1 to {MAX_DIGITS} digits, found {digits!r}")
    row = np.full(SOURCE_LEN, PAD, dtype=np.int64)
    row[: len(digits)] = [DIGIT0 + int(d) for d in digits]
    return row


def decode_digits(ids: object) -> str:
    """The digits of a target row, up to its first EOS (PAD and BOS dropped)."""
    out = []
    for i in np.asarray(ids).reshape(-1).tolist():
        if i == EOS:
            break
        if DIGIT0 <= i < VOCAB:
            out.append(str(i - DIGIT0))
    return "".join(out)


def make_reversal(count: int, split: str = "train", seed: int = 0) -> tuple[np.ndarray, ...]:
    """``(inputs, targets)``: inputs (n, SOURCE_LEN + TARGET_LEN), targets (n, TARGET_LEN)."""
    n = count if split == "train" else max(1, count // 10)
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    lengths = rng.integers(1, MAX_DIGITS + 1, size=n)
    digits = rng.integers(0, 10, size=(n, MAX_DIGITS))
    src = np.full((n, SOURCE_LEN), PAD, dtype=np.int64)
    tgt_in = np.full((n, TARGET_LEN), PAD, dtype=np.int64)
    tgt_out = np.full((n, TARGET_LEN), PAD, dtype=np.int64)
    tgt_in[:, 0] = BOS
    for row, (k, d) in enumerate(zip(lengths, digits)):
        src[row, :k] = DIGIT0 + d[:k]
        tgt_in[row, 1 : k + 1] = DIGIT0 + d[:k][::-1]
        tgt_out[row, :k] = DIGIT0 + d[:k][::-1]
        tgt_out[row, k] = EOS
    return np.concatenate([src, tgt_in], axis=1), tgt_out
