"""The sequence models (``--model vit|gpt|lstm-lm|seq2seq``) against their PyTorch twins.

The truth is ``torch.nn``: each model, built the way the engine builds it
(``MODELS[name].build(config, vocab)``), must have exactly the twin's ``state_dict`` keys,
load into the twin strictly, and give the twin's logits, loss and every parameter gradient
on the same inputs. Generation and greedy decoding are compared with loops written here
with the twin; sampling with the softmax's own probabilities; the ViT's random shift with
the shift found by search. Runs of ``main.py`` and their exports: ``test_sequence_runs.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import sparkgrad as sg
from sparkgrad.benchmark.torch_models import TorchGPT, TorchLSTMLM, TorchSeq2Seq, TorchViT
from sparkgrad.dataset.reversal import (
    DIGIT0,
    EOS,
    PAD,
    SOURCE_LEN,
    TARGET_LEN,
    make_reversal,
)
from sparkgrad.dataset.reversal import VOCAB as VOCAB_SIZE
from sparkgrad.engine.config import RunConfig
from sparkgrad.engine.model import MODELS
from sparkgrad.engine.tasks import REVERSE, evaluate, exact_matches, greedy_decode
from sparkgrad.errors import ConfigError, ShapeError
from sparkgrad.models.sequence_parts import sample_next
from sparkgrad.models.vit import RandomShift
from sparkgrad.parallel.registry import make_strategy

pytestmark = pytest.mark.filterwarnings(  # torch's eval fast path packs padded sources
    "ignore:The PyTorch API of nested tensors:UserWarning"
)

VOCAB = "abcdefghijk"  # 11 characters
SIZES = dict(d_model=16, heads=2, layers=2, context=8, dropout=0.0)


def _config(model: str, **overrides) -> RunConfig:
    return RunConfig(strategy="single", model=model, **{**SIZES, **overrides}).validate()


def _twin(config: RunConfig, vocab: str) -> torch.nn.Module:
    """The PyTorch twin of ``MODELS[config.model].build(config, vocab)``."""
    c = config
    if c.model == "vit":
        return TorchViT(d_model=c.d_model, nhead=c.heads, num_layers=c.layers, dropout=c.dropout)
    if c.model == "gpt":
        return TorchGPT(
            len(vocab), c.context, c.d_model, c.heads, c.layers, c.dropout, c.tie_weights
        )
    if c.model == "lstm-lm":
        return TorchLSTMLM(len(vocab), c.context, c.d_model, c.layers, c.dropout, c.tie_weights)
    assert c.model == "seq2seq"
    return TorchSeq2Seq(d_model=c.d_model, nhead=c.heads, num_layers=c.layers, dropout=c.dropout)


def _inputs(model: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) as the engine's loaders hand them to the model."""
    rng = np.random.default_rng(seed)
    if model == "vit":
        return rng.standard_normal((3, 28, 28)).astype(np.float32), rng.integers(0, 10, 3)
    if model == "seq2seq":
        return make_reversal(4, "train", seed=seed)  # rows of 1..10 digits: real padding
    ids = rng.integers(0, len(VOCAB), (3, SIZES["context"] + 1))
    return ids[:, :-1], ids[:, 1:]


def _torch_loss(model: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if model == "vit":
        return TF.cross_entropy(logits, target)
    ignore = 0 if model == "seq2seq" else -100  # seq2seq: PAD positions are not scored
    v = logits.shape[-1]
    return TF.cross_entropy(logits.reshape(-1, v), target.reshape(-1), ignore_index=ignore)


def _pair(model: str, **overrides) -> tuple[sg.nn.Module, torch.nn.Module, RunConfig]:
    config = _config(model, **overrides)
    ours = MODELS[model].build(config, VOCAB)
    twin = _twin(config, VOCAB)
    state = {k: torch.from_numpy(np.array(v.numpy())) for k, v in ours.state_dict().items()}
    twin.load_state_dict(state, strict=True)
    return ours, twin, config


CASES = [
    pytest.param("vit", {}, id="vit"),
    pytest.param("gpt", {}, id="gpt"),
    pytest.param("gpt", {"tie_weights": True}, id="gpt-tied"),
    pytest.param("lstm-lm", {}, id="lstm-lm"),
    pytest.param("lstm-lm", {"tie_weights": True, "layers": 1}, id="lstm-lm-tied"),
    pytest.param("seq2seq", {"layers": 1}, id="seq2seq"),
]


@pytest.mark.parametrize("model, overrides", CASES)
def test_state_dict_keys_equal_the_twins_and_load_strictly(model, overrides):
    config = _config(model, **overrides)
    ours = MODELS[model].build(config, VOCAB)
    twin = _twin(config, VOCAB)
    keys = list(ours.state_dict())
    assert keys == list(twin.state_dict())  # same names, same order, no renaming
    for key, value in ours.state_dict().items():
        assert tuple(value.shape) == tuple(twin.state_dict()[key].shape), key
    state = {k: torch.from_numpy(np.array(v.numpy())) for k, v in ours.state_dict().items()}
    result = twin.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    if overrides.get("tie_weights"):
        out_layer = ours.head if model == "gpt" else ours.decoder
        embedding = ours.token if model == "gpt" else ours.encoder
        assert out_layer.weight is embedding.weight  # one matrix, two names


def test_the_sinusoidal_positions_are_the_papers_formula():
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
    config = _config("seq2seq", d_model=6, heads=2, layers=1)
    pe = MODELS["seq2seq"].build(config, "").state_dict()["positions.pe"].numpy()
    assert pe.shape == (64, 6) and pe.dtype == np.float32
    for pos in (0, 1, 7, 63):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert pe[pos, 2 * i] == pytest.approx(np.sin(angle), abs=1e-6)
            assert pe[pos, 2 * i + 1] == pytest.approx(np.cos(angle), abs=1e-6)
    twin = _twin(config, "")  # computed by the twin on its own, before any state is loaded
    np.testing.assert_allclose(pe, twin.state_dict()["positions.pe"].numpy(), atol=1e-7)
    assert "positions.pe" not in dict(MODELS["seq2seq"].build(config, "").named_parameters())


DROPOUT_CASES = [
    pytest.param(name, {"dropout": 0.3, "layers": 2}, id=f"{name}-dropout")
    for name in ("vit", "gpt", "lstm-lm", "seq2seq")
]


@pytest.mark.parametrize("model, overrides", CASES + DROPOUT_CASES)
def test_eval_logits_equal_the_twins(model, overrides):
    ours, twin, _ = _pair(model, **overrides)
    ours.eval(), twin.eval()
    x, _ = _inputs(model)
    with sg.no_grad(), torch.no_grad():
        got, want = ours(sg.tensor(x)), twin(torch.from_numpy(x))
    assert got.dtype == sg.float32
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model, overrides", CASES)
def test_train_mode_loss_and_every_gradient_equal_the_twins(model, overrides):
    ours, twin, _ = _pair(model, **overrides)
    ours.train(), twin.train()
    if model == "vit":  # the random shift would draw different shifts: tested on its own below
        ours.shift.pad = twin.shift.pad = 0
    x, y = _inputs(model, seed=1)
    loss = MODELS[model].loss()(ours(sg.tensor(x)), sg.tensor(y))
    loss.backward()
    t_loss = _torch_loss(model, twin(torch.from_numpy(x)), torch.from_numpy(y))
    t_loss.backward()
    np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=1e-5, atol=1e-6)
    ours_params = dict(ours.named_parameters())
    twin_params = dict(twin.named_parameters())
    assert sorted(ours_params) == sorted(twin_params)  # a tied matrix is one parameter
    for name, p in twin_params.items():
        assert p.grad is not None and ours_params[name].grad is not None, name
        np.testing.assert_allclose(
            ours_params[name].grad.numpy(), p.grad.numpy(), rtol=1e-5, atol=1e-6, err_msg=name
        )
        assert np.abs(p.grad.numpy()).max() > 0, name  # every parameter is on the loss's path


def test_vit_reads_square_channel_and_flat_images_alike():
    ours, _, _ = _pair("vit")
    ours.eval()
    x, _ = _inputs("vit")
    with sg.no_grad():
        square = ours(sg.tensor(x)).numpy()
        for layout in (x.reshape(3, 1, 28, 28), x.reshape(3, 784)):
            np.testing.assert_array_equal(ours(sg.tensor(layout)).numpy(), square)
        with pytest.raises(ShapeError, match=r"expects images .*found \(3, 27, 27\)"):
            ours(sg.tensor(x[:, :27, :27].copy()))


# ---- RandomShift: the ViT's augmentation ------------------------------------------------------
def _shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` moved down ``dy`` and right ``dx`` pixels, zeros where nothing moved in."""
    out = np.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def _find_shift(source: np.ndarray, moved: np.ndarray) -> tuple[int, int]:
    found = [
        (dy, dx)
        for dy in range(-2, 3)
        for dx in range(-2, 3)
        if np.array_equal(_shifted(source, dy, dx), moved)
    ]
    assert len(found) == 1, found  # random images: exactly one shift explains the output
    return found[0]


def test_random_shift_is_the_identity_in_eval_mode():
    layer = RandomShift(2).eval()
    x = sg.tensor(np.random.default_rng(0).random((4, 28, 28), dtype=np.float32))
    assert layer(x) is x


def test_random_shift_moves_each_image_by_at_most_two_pixels_with_zero_fill():
    sg.manual_seed(0)
    images = np.random.default_rng(1).random((400, 28, 28), dtype=np.float32) + 0.5
    out = RandomShift(2).train()(sg.tensor(images)).numpy()
    assert out.shape == images.shape
    shifts = [_find_shift(a, b) for a, b in zip(images, out)]
    assert set(shifts) == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}


def test_random_shift_keeps_every_pixel_when_nothing_leaves_the_frame():
    sg.manual_seed(1)
    images = np.zeros((50, 28, 28), dtype=np.float32)
    images[:, 2:26, 2:26] = np.random.default_rng(2).random((50, 24, 24), dtype=np.float32)
    out = RandomShift(2).train()(sg.tensor(images)).numpy()
    np.testing.assert_allclose(out.sum(axis=(1, 2)), images.sum(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_array_equal(np.sort(out, axis=None), np.sort(images, axis=None))
    assert not np.array_equal(out, images)  # and it did move them


def test_random_shift_passes_the_gradient_back_to_where_each_pixel_came_from():
    """The backward of a shift is the opposite shift (zero where a pixel fell off)."""
    sg.manual_seed(2)
    rng = np.random.default_rng(3)
    images = rng.random((6, 28, 28), dtype=np.float32) + 0.5
    upstream = rng.standard_normal((6, 28, 28)).astype(np.float32)
    x = sg.tensor(images, requires_grad=True)
    out = RandomShift(2).train()(x)
    (out * sg.tensor(upstream)).sum().backward()
    for i in range(6):
        dy, dx = _find_shift(images[i], out.detach().numpy()[i])
        np.testing.assert_array_equal(x.grad.numpy()[i], _shifted(upstream[i], -dy, -dx))


# ---- generate: sampling text from the GPT ----------------------------------------------------
def _gpt_pair(**overrides):
    ours, twin, config = _pair("gpt", **overrides)
    return ours, twin.eval(), config


def _torch_greedy(twin: torch.nn.Module, prompt: np.ndarray, steps: int) -> np.ndarray:
    ids = torch.from_numpy(prompt)
    with torch.no_grad():
        for _ in range(steps):
            nxt = twin(ids[:, -twin.context :])[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], 1)
    return ids.numpy()


def test_generate_at_temperature_zero_is_the_twins_greedy_continuation():
    ours, twin, _ = _gpt_pair()
    prompt = np.array([[0, 1, 2], [5, 5, 4]], dtype=np.int64)
    got = ours.generate(sg.tensor(prompt), 12, temperature=0).numpy()  # 3 + 12 > context 8
    assert got.shape == (2, 15)
    np.testing.assert_array_equal(got[:, :3], prompt)
    np.testing.assert_array_equal(got, _torch_greedy(twin, prompt, 12))
    assert ours.training  # generate restores the mode it found


def test_generate_crops_a_prompt_longer_than_the_context():
    ours, twin, config = _gpt_pair()
    prompt = np.random.default_rng(4).integers(0, len(VOCAB), (2, 3 * config.context))
    got = ours.generate(sg.tensor(prompt), 5, temperature=0).numpy()
    np.testing.assert_array_equal(got, _torch_greedy(twin, prompt, 5))
    # only the last `context` ids matter: a prompt with another beginning continues the same
    other = prompt.copy()
    other[:, : -config.context] = (other[:, : -config.context] + 1) % len(VOCAB)
    again = ours.generate(sg.tensor(other), 5, temperature=0).numpy()
    np.testing.assert_array_equal(again[:, -5:], got[:, -5:])


def test_sampling_is_reproducible_under_a_seed_and_stays_within_top_k():
    ours, twin, _ = _gpt_pair()
    prompt = sg.tensor(np.array([[1, 2, 3, 4]] * 8, dtype=np.int64))
    sg.manual_seed(7)
    first = ours.generate(prompt, 10, temperature=1.5, top_k=3).numpy()
    sg.manual_seed(7)
    second = ours.generate(prompt, 10, temperature=1.5, top_k=3).numpy()
    np.testing.assert_array_equal(first, second)
    # each sampled token is one of the 3 most likely after the tokens before it (twin's logits)
    for step in range(10):
        t = first.shape[1] - 10 + step  # position of the sampled token
        window = first[:, max(0, t - ours.context) : t]
        with torch.no_grad():
            logits = twin(torch.from_numpy(window))[:, -1]
        top3 = torch.topk(logits, 3).indices.numpy()
        assert all(first[r, t] in top3[r] for r in range(len(first))), step
    assert len(np.unique(first[:, 4:])) > 1  # it did sample, not always the argmax
    sg.manual_seed(8)
    third = ours.generate(prompt, 10, temperature=1.5, top_k=3).numpy()
    assert not np.array_equal(first, third)  # another seed, another sample


def test_top_k_of_one_is_greedy():
    ours, twin, _ = _gpt_pair()
    prompt = np.array([[3, 1, 4]], dtype=np.int64)
    got = ours.generate(sg.tensor(prompt), 6, temperature=0.8, top_k=1).numpy()
    np.testing.assert_array_equal(got, _torch_greedy(twin, prompt, 6))


def test_lstm_generate_carries_its_state_like_rereading_the_whole_prefix():
    """Greedy LSTM generation with the state carried on == the twin rereading all ids."""
    ours, twin, _ = _pair("lstm-lm")
    twin.eval()
    prompt = np.array([[0, 4, 2, 9], [10, 1, 1, 3]], dtype=np.int64)
    got = ours.generate(sg.tensor(prompt), 7, temperature=0).numpy()
    ids = torch.from_numpy(prompt)
    with torch.no_grad():
        for _ in range(7):
            ids = torch.cat([ids, twin(ids)[:, -1].argmax(-1, keepdim=True)], 1)
    np.testing.assert_array_equal(got, ids.numpy())
    with pytest.raises(ConfigError, match=r"token id 11 is outside .*expected 0\.\.10"):
        ours.generate(sg.tensor(np.array([[0, 11]])), 2, temperature=0)


def test_sample_next_draws_each_token_as_often_as_its_softmax_probability():
    logits = np.tile(np.array([[1.0, 2.0, 0.5, 2.5]], dtype=np.float32), (40_000, 1))
    sg.manual_seed(11)
    ids = sample_next(sg.tensor(logits), temperature=2.0).numpy()
    p = torch.softmax(torch.tensor(logits[0]) / 2.0, 0).numpy()
    freq = np.bincount(ids, minlength=4) / len(ids)
    np.testing.assert_allclose(freq, p, atol=0.01)  # about 4 standard deviations
    sg.manual_seed(11)
    kept = sample_next(sg.tensor(logits), temperature=2.0, top_k=2).numpy()
    p2 = torch.softmax(torch.tensor([2.0, 2.5]) / 2.0, 0).numpy()
    assert set(np.unique(kept)) == {1, 3}
    np.testing.assert_allclose(np.bincount(kept, minlength=4)[[1, 3]] / len(kept), p2, atol=0.01)


@pytest.mark.parametrize("u, expected", [(0.0, 1), (np.nextafter(np.float32(1), 0), 3)])
def test_sample_next_never_draws_a_filtered_token_even_at_the_ends_of_u(monkeypatch, u, expected):
    """u = 0 (possible: sg.rand is in [0, 1)) must give the first token still allowed."""
    monkeypatch.setattr(sg, "rand", lambda n: sg.tensor(np.full(n, u, dtype=np.float32)))
    logits = sg.tensor(np.array([[0.0, 5.0, 1.0, 4.0]], dtype=np.float32))
    assert sample_next(logits, temperature=1.0, top_k=2).item() == expected


def test_sample_next_refuses_bad_settings():
    logits = sg.tensor(np.zeros((1, 4), dtype=np.float32))
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="temperature must be a finite number >= 0"):
            sample_next(logits, temperature=bad)
    with pytest.raises(ConfigError, match="top_k must be >= 1, found 0"):
        sample_next(logits, top_k=0)


# ---- greedy decoding of the seq2seq model ----------------------------------------------------
def test_greedy_decode_equals_greedy_decoding_with_the_twin():
    ours, twin, config = _pair("seq2seq", layers=1)
    twin.eval()
    x, _ = make_reversal(6, "train", seed=9)
    strategy = make_strategy("single", ours, lambda params: sg.optim.SGD(params, lr=0.1), None)
    got = greedy_decode(strategy, sg.tensor(x))
    assert got.shape == (6, TARGET_LEN)

    ids = torch.from_numpy(x.copy())
    ids[:, SOURCE_LEN:] = 0
    ids[:, SOURCE_LEN] = 1  # BOS, then PAD: nothing of the teacher-forced target is used
    want = np.zeros((6, TARGET_LEN), dtype=np.int64)
    with torch.no_grad():
        for t in range(TARGET_LEN):
            want[:, t] = twin(ids)[:, t].argmax(-1).numpy()
            if t + 1 < TARGET_LEN:
                ids[:, SOURCE_LEN + t + 1] = torch.from_numpy(want[:, t])
    np.testing.assert_array_equal(got, want)
    # and the teacher-forced part of x really was ignored
    scrambled = x.copy()
    scrambled[:, SOURCE_LEN + 1 :] = 7
    np.testing.assert_array_equal(greedy_decode(strategy, sg.tensor(scrambled)), got)


class _Answers:
    """A stand-in strategy whose model always writes the same answers (one-hot logits)."""

    def __init__(self, answers: np.ndarray) -> None:
        self.logits = np.eye(VOCAB_SIZE, dtype=np.float32)[answers]

    def predict(self, x: sg.Tensor) -> sg.Tensor:
        return sg.tensor(self.logits[: len(x)])


def test_exact_match_needs_every_token_up_to_and_including_eos():
    d = [DIGIT0 + i for i in range(10)]
    target = np.array([[d[1], d[2], d[3], EOS] + [PAD] * (TARGET_LEN - 4)] * 5)
    answers = np.array(
        [
            [d[1], d[2], d[3], EOS] + [PAD] * (TARGET_LEN - 4),  # right
            [d[1], d[2], d[3], EOS] + [d[9]] * (TARGET_LEN - 4),  # right; after EOS is not read
            [d[1], d[2], PAD, d[3], EOS] + [PAD] * (TARGET_LEN - 5),  # a PAD inside: wrong
            [d[1], d[2], d[3], PAD] + [PAD] * (TARGET_LEN - 4),  # never stops: wrong
            [d[1], d[2], d[3], d[4], EOS] + [PAD] * (TARGET_LEN - 5),  # one digit too many
        ]
    )
    assert exact_matches(answers, target) == 2
    x, _ = make_reversal(5, "train", seed=0)  # the stand-in ignores its input
    loader = [(sg.tensor(x), sg.tensor(target))]
    scores = evaluate(REVERSE, _Answers(answers), lambda logits, y: sg.tensor(0.0), loader)
    assert scores["test_exact_match"] == pytest.approx(2 / 5)
