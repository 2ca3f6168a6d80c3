"""``reverse:N``: every row read back against the rule it must obey, digit by digit."""

from __future__ import annotations

import numpy as np
import pytest

from sparkgrad.dataset.reversal import (
    BOS,
    DIGIT0,
    EOS,
    MAX_DIGITS,
    PAD,
    SOURCE_LEN,
    TARGET_LEN,
    decode_digits,
    encode_digits,
    make_reversal,
    parse_reverse_source,
)
from sparkgrad.errors import ConfigError


def _digits_of_source(row: np.ndarray) -> list[int]:
    """The source's digit ids: everything before the first PAD (the rest must be PAD)."""
    k = int((row != PAD).sum())
    assert (row[:k] != PAD).all() and (row[k:] == PAD).all(), row
    return row[:k].tolist()


def test_every_row_is_source_then_bos_reversed_and_target_reversed_eos_pad():
    inputs, targets = make_reversal(300, "train", seed=3)
    assert inputs.shape == (300, SOURCE_LEN + TARGET_LEN) and targets.shape == (300, TARGET_LEN)
    assert inputs.dtype == targets.dtype == np.int64
    lengths = set()
    for x, y in zip(inputs, targets):
        src, tgt_in = x[:SOURCE_LEN], x[SOURCE_LEN:]
        digits = _digits_of_source(src)
        k = len(digits)
        lengths.add(k)
        assert 1 <= k <= MAX_DIGITS
        assert all(DIGIT0 <= d < DIGIT0 + 10 for d in digits)
        rev = digits[::-1]
        assert y.tolist() == rev + [EOS] + [PAD] * (TARGET_LEN - k - 1)
        assert tgt_in.tolist() == [BOS] + rev + [PAD] * (TARGET_LEN - k - 1)
        # teacher forcing: the decoder input is the target shifted right by one, BOS first
        assert tgt_in[1 : k + 1].tolist() == y[:k].tolist()
    assert lengths == set(range(1, MAX_DIGITS + 1))  # every length occurs in 300 rows


def test_decode_digits_reads_up_to_the_first_eos():
    assert decode_digits([DIGIT0 + 4, DIGIT0 + 2, DIGIT0 + 0, DIGIT0 + 2, EOS, PAD]) == "4202"
    assert decode_digits([BOS, DIGIT0 + 7, PAD, DIGIT0 + 1, EOS, DIGIT0 + 9]) == "71"
    assert decode_digits([EOS, DIGIT0 + 1]) == ""
    assert decode_digits(np.array([[DIGIT0 + 5, DIGIT0 + 6]])) == "56"  # no EOS: all digits
    assert decode_digits(encode_digits("2024")) == "2024"


def test_encode_digits_writes_the_source_row():
    assert encode_digits("2024").tolist() == [5, 3, 5, 7] + [PAD] * (SOURCE_LEN - 4)
    for bad in ("", "12a", "1" * (MAX_DIGITS + 1)):
        with pytest.raises(ConfigError, match="expected 1 to 10 digits"):
            encode_digits(bad)


def test_the_answer_decodes_to_the_reversed_source_string():
    inputs, targets = make_reversal(50, "train", seed=0)
    for x, y in zip(inputs, targets):
        assert decode_digits(y) == decode_digits(x[:SOURCE_LEN])[::-1]


def test_the_same_seed_gives_the_same_rows_and_another_seed_other_rows():
    a, b = make_reversal(100, "train", seed=5), make_reversal(100, "train", seed=5)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    other = make_reversal(100, "train", seed=6)
    assert not np.array_equal(a[0], other[0])


def test_the_test_split_is_a_tenth_and_another_stream():
    train_x, _ = make_reversal(200, "train", seed=1)
    test_x, test_y = make_reversal(200, "test", seed=1)
    assert len(test_x) == len(test_y) == 20
    assert not np.array_equal(test_x, train_x[:20])
    assert len(make_reversal(5, "test", seed=1)[0]) == 1  # at least one test example


def test_parse_reverse_source():
    assert parse_reverse_source("reverse:20000") == 20000
    assert parse_reverse_source("reverse:1") == 1
    for bad in ("reverse:", "reverse:0", "reverse:-3", "reverse:1e3", "reverse:x", "rev:10"):
        with pytest.raises(ConfigError, match="expected reverse:N with N a positive integer"):
            parse_reverse_source(bad)
