"""Text for the character-level language models: corpus, vocabulary, windows, splits.

The truths are exact inputs: a text written here, its bytes (the offset of a bad byte is
counted by hand), a vocabulary spelled out, an entropy computed by hand, and slices of the
id array taken directly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparkgrad.dataset.text import (
    CharVocab,
    TextWindows,
    read_corpus,
    text_splits,
)
from sparkgrad.errors import ConfigError, DataFormatError


# ---- read_corpus ------------------------------------------------------------------------------
def test_the_default_corpus_is_the_pydoc_topics_long_and_the_same_each_time():
    text = read_corpus()
    assert len(text) > 100_000
    assert read_corpus("pydoc-topics") == text  # named or defaulted, and deterministic
    assert read_corpus(None) == text
    assert 'The "assert" statement' in text  # the reference manual's own words


def test_a_utf8_file_is_read_as_text(tmp_path):
    path = tmp_path / "corpus.txt"
    text = "Grüße, 世界 — naïve café\nsecond line\n"
    path.write_bytes(text.encode("utf-8"))
    assert read_corpus(str(path)) == text


@pytest.mark.parametrize("form", ["file://{}", "file:{}"])
def test_a_file_uri_is_read_locally(tmp_path, form):
    path = tmp_path / "corpus.txt"
    path.write_text("from a file URI\n", encoding="utf-8")
    assert read_corpus(form.format(path)) == "from a file URI\n"


def test_a_non_utf8_file_names_the_byte_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    good = "héllo "  # é is two bytes in UTF-8: the offset counts bytes, not characters
    path.write_bytes(good.encode("utf-8") + b"\xff rest")
    offset = len(good.encode("utf-8"))
    assert offset == 7 and len(good) == 6
    with pytest.raises(DataFormatError, match=rf"byte 0xff at offset {offset}\b") as info:
        read_corpus(str(path))
    assert "UTF-8" in str(info.value) and str(path) in str(info.value)


def test_a_latin1_encoded_file_is_refused_at_its_first_accent(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("abc café".encode("latin-1"))  # é = 0xe9, followed by nothing
    with pytest.raises(DataFormatError, match="byte 0xe9 at offset 7"):
        read_corpus(str(path))


def test_a_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="found a directory"):
        read_corpus(str(tmp_path))


def test_a_missing_file_is_a_config_error(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(ConfigError, match="no such file") as info:
        read_corpus(str(missing))
    assert str(missing) in str(info.value)


# ---- CharVocab --------------------------------------------------------------------------------
def test_the_vocabulary_is_the_sorted_characters_and_round_trips():
    text = "hello, world"
    vocab = CharVocab.of(text)
    assert vocab.chars == " ,dehlorw" and len(vocab) == 9
    ids = vocab.encode(text)
    assert ids.dtype == np.int64
    assert ids.tolist() == [" ,dehlorw".index(c) for c in text]
    assert vocab.decode(ids) == text
    assert vocab.decode(ids.reshape(3, 4)) == text  # any shape, read in order
    assert vocab.decode([]) == "" and vocab.encode("").tolist() == []


def test_encoding_a_character_outside_the_vocabulary_names_it():
    vocab = CharVocab.of("abc")
    with pytest.raises(ConfigError, match=r"character 'z' is not in .* vocabulary of 3"):
        vocab.encode("abz")


@pytest.mark.parametrize("bad", [3, -1, 100])
def test_decoding_an_id_outside_the_vocabulary_names_it(bad):
    vocab = CharVocab.of("abc")
    with pytest.raises(ConfigError, match=rf"token id {bad} is outside .*expected 0\.\.2"):
        vocab.decode([0, bad, 1])


def test_unigram_entropy_matches_a_hand_computation():
    # "aab": p(a) = 2/3, p(b) = 1/3
    expected = -(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3)
    assert CharVocab.of("aab").unigram_entropy("aab") == pytest.approx(expected, rel=1e-12)
    # four equally likely characters: log 4 nats; a single character: 0
    assert CharVocab.of("abcd").unigram_entropy("abcd" * 5) == pytest.approx(math.log(4))
    assert CharVocab.of("x").unigram_entropy("xxxx") == 0.0


# ---- TextWindows ------------------------------------------------------------------------------
def test_window_i_is_the_slice_at_i_times_context_and_its_target_is_shifted_by_one():
    ids = np.arange(100, 123, dtype=np.int64)  # 23 ids, context 5: (23 - 1) // 5 = 4 windows
    windows = TextWindows(ids, 5)
    assert len(windows) == 4
    for i in range(4):
        x, y = windows[i]
        np.testing.assert_array_equal(x, ids[5 * i : 5 * i + 5])
        np.testing.assert_array_equal(y, ids[5 * i + 1 : 5 * i + 6])
        np.testing.assert_array_equal(x[1:], y[:-1])  # the same window, shifted by one
    np.testing.assert_array_equal(windows[-1][0], windows[3][0])
    inputs, targets = windows.arrays()
    assert inputs.shape == targets.shape == (4, 5)
    for i in range(4):
        np.testing.assert_array_equal(inputs[i], windows[i][0])
        np.testing.assert_array_equal(targets[i], windows[i][1])
    with pytest.raises(IndexError):
        windows[4]


def test_exactly_one_window_fits_context_plus_one_ids():
    windows = TextWindows(np.arange(6), 5)
    assert len(windows) == 1
    np.testing.assert_array_equal(windows[0][1], [1, 2, 3, 4, 5])


def test_a_text_shorter_than_one_window_is_a_data_format_error():
    with pytest.raises(DataFormatError, match=r"5 characters is shorter .*--context 5 needs"):
        TextWindows(np.arange(5), 5)


# ---- text_splits ------------------------------------------------------------------------------
def test_the_validation_part_is_the_last_tenth_contiguous_and_disjoint():
    text = "".join(chr(ord("a") + (i * 7) % 26) for i in range(1000))
    vocab, train, test = text_splits(text, 8)
    assert vocab == CharVocab.of(text)
    ids = vocab.encode(text)
    np.testing.assert_array_equal(train.ids, ids[:900])  # first nine tenths
    np.testing.assert_array_equal(test.ids, ids[900:])  # the last tenth, in order
    assert len(train) == (900 - 1) // 8 and len(test) == (100 - 1) // 8
    # the windows read only their own part: training stops before position 900
    train_x, train_y = train.arrays()
    test_x, _ = test.arrays()
    assert train_y.size and train_x.size
    np.testing.assert_array_equal(train_y[-1], ids[len(train) * 8 - 7 : len(train) * 8 + 1])
    np.testing.assert_array_equal(test_x[0], ids[900:908])


def test_a_corpus_whose_validation_tenth_is_shorter_than_a_window_is_refused():
    with pytest.raises(DataFormatError, match=r"validation \(last tenth\) part has 5 characters"):
        text_splits("abcdefghij" * 5, 8)  # 50 characters: 45 train, 5 validation
    with pytest.raises(DataFormatError, match=r"training \(first nine tenths\) part has 9"):
        text_splits("short text", 64)
