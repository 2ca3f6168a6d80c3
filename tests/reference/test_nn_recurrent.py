"""``nn.RNN``, ``nn.LSTM``, ``nn.GRU`` and their cells against ``torch.nn``, forward and backward.

The recipe of :mod:`test_nn_layers`, the other way round: build the PyTorch module (its
own seeded weights), load its ``state_dict`` into the sparkgrad module (the key lists
must be equal), run both on the same float32 input and initial state, backpropagate
the same random upstream gradients into ``output``, ``h_n`` (and ``c_n``), and compare the
results, the input's and the initial state's gradients and every parameter's gradient.
PyTorch's CPU kernel computes the input projection for all steps at once and then loops
over time, the order sparkgrad uses, so float32-tight tolerances hold.

Then what PyTorch cannot check for us: float64 finite differences (gradcheck), the
inter-layer dropout (identity in eval, Bernoulli(1-p)/(1-p) statistics in training), and
the error messages.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import sparkgrad as sg
from sparkgrad import nn
from sparkgrad.errors import ConfigError, ShapeError

RTOL, ATOL = 1e-5, 1e-6
IN, HID, T, N = 4, 5, 6, 3


def make(kind: str, lib, *args, **kwargs):
    """``RNN`` (tanh or relu), ``LSTM`` or ``GRU`` of ``torch.nn`` or ``sparkgrad.nn``."""
    if kind.startswith("rnn_"):
        return lib.RNN(*args, nonlinearity=kind[4:], **kwargs)
    return getattr(lib, kind.upper())(*args, **kwargs)


def copied(kind: str, *args, **kwargs):
    """A torch module and a sparkgrad module holding torch's weights (same key order)."""
    torch.manual_seed(0)
    ref = make(kind, torch.nn, *args, **kwargs)
    ours = make(kind, nn, *args, **kwargs)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def rand(*shape: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def close(ours, theirs, what: str, rtol: float = RTOL, atol: float = ATOL) -> None:
    np.testing.assert_allclose(
        ours.detach().numpy(), theirs.detach().numpy(), rtol=rtol, atol=atol, err_msg=what
    )


def compare(ours, ref, x: np.ndarray, states: list[np.ndarray] | None, **tol) -> None:
    """Outputs, final states and every gradient of sparkgrad's module equal PyTorch's."""
    is_lstm = isinstance(ref, torch.nn.LSTM)
    xs, xt = sg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    hs = ht = None
    if states is not None:
        hs = [sg.tensor(s, requires_grad=True) for s in states]
        ht = [torch.tensor(s, requires_grad=True) for s in states]
    out_s, fin_s = ours(xs, None if hs is None else (tuple(hs) if is_lstm else hs[0]))
    out_t, fin_t = ref(xt, None if ht is None else (tuple(ht) if is_lstm else ht[0]))
    fin_s, fin_t = (fin_s, fin_t) if is_lstm else ((fin_s,), (fin_t,))

    assert out_s.shape == tuple(out_t.shape)
    close(out_s, out_t, "output", **tol)
    for k, (a, b) in enumerate(zip(fin_s, fin_t)):
        assert a.shape == tuple(b.shape)
        close(a, b, f"final state {k}", **tol)

    probes = [rand(*out_t.shape, seed=10)] + [
        rand(*f.shape, seed=11 + k) for k, f in enumerate(fin_t)
    ]
    loss_s = sum(
        ((o * sg.tensor(p)).sum() for o, p in zip((out_s, *fin_s), probes)), sg.tensor(0.0)
    )
    loss_t = sum((o * torch.from_numpy(p)).sum() for o, p in zip((out_t, *fin_t), probes))
    loss_s.backward()
    loss_t.backward()
    close(xs.grad, xt.grad, "input grad", **tol)
    for k, (a, b) in enumerate(zip(hs or (), ht or ())):
        close(a.grad, b.grad, f"initial state {k} grad", **tol)
    theirs = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        close(p.grad, theirs[name].grad, f"grad of {name}", **tol)


def initial_states(ref, batch: int | None, seed: int = 3) -> list[np.ndarray]:
    """Random ``h_0`` (and ``c_0``) of the shapes ``ref`` expects (no batch axis if None)."""
    layers = ref.num_layers * (2 if ref.bidirectional else 1)
    sizes = [ref.proj_size or ref.hidden_size] + (
        [ref.hidden_size] * isinstance(ref, torch.nn.LSTM)
    )
    lead = (layers,) if batch is None else (layers, batch)
    return [rand(*lead, size, seed=seed + k) for k, size in enumerate(sizes)]


# ---- the layers against torch.nn -----------------------------------------------------------
KINDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]


@pytest.mark.parametrize("with_hx", [False, True], ids=["zeros", "hx"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["TN", "NT"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("kind", KINDS)
def test_layer_matches_torch(kind, num_layers, bias, batch_first, bidirectional, with_hx):
    """Every configuration: output, h_n (c_n), dL/dinput, dL/dh_0 (dc_0), dL/dW for every W."""
    ours, ref = copied(
        kind, IN, HID, num_layers,
        bias=bias, batch_first=batch_first, bidirectional=bidirectional,
    )  # fmt: skip
    x = rand(N, T, IN, seed=1) if batch_first else rand(T, N, IN, seed=1)
    compare(ours, ref, x, initial_states(ref, N) if with_hx else None)


@pytest.mark.parametrize("with_hx", [False, True], ids=["zeros", "hx"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["TN", "NT"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_input_matches_torch(kind, bidirectional, batch_first, with_hx):
    """A 2-D input (T, input_size) is one sequence; hx is then (layers·D, hidden), as torch."""
    ours, ref = copied(kind, IN, HID, 2, batch_first=batch_first, bidirectional=bidirectional)
    compare(ours, ref, rand(T, IN, seed=2), initial_states(ref, None) if with_hx else None)


@pytest.mark.parametrize("with_hx", [False, True], ids=["zeros", "hx"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_lstm_with_projections_matches_torch(bidirectional, with_hx):
    """``proj_size``: h (and the next layer's input) is W_hr (o ∘ tanh c), c keeps hidden_size."""
    ours, ref = copied("lstm", IN, HID, 2, proj_size=3, bidirectional=bidirectional)
    assert ours.weight_hr_l1.shape == (3, HID) and ours.weight_ih_l1.shape == (
        4 * HID,
        3 * (1 + bidirectional),
    )
    compare(ours, ref, rand(T, N, IN, seed=4), initial_states(ref, N) if with_hx else None)


@pytest.mark.parametrize("kind", KINDS)
def test_long_sequences_match_torch(kind):
    """50 steps: the gradients summed over the whole unrolled graph still agree.

    Tolerance: atol 1e-5 instead of 1e-6, because dL/dW_hh is a sum of 50·N per-step
    products of size O(1) each (|grad| up to ~10), so float32 sums in another order differ by
    a few 1e-6 absolutely (still 1e-5 relative).
    """
    ours, ref = copied(kind, IN, HID, 2)
    compare(ours, ref, rand(50, N, IN, seed=5), initial_states(ref, N), atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_layer_on_device_matches_torch(kind, device):
    """The same loop on the module's device (the cuda case runs where CuPy and a GPU are)."""
    ours, ref = copied(kind, IN, HID, 2, bidirectional=True)
    ours.to(device)
    x = rand(T, N, IN, seed=12)
    xs, xt = sg.tensor(x, device=device, requires_grad=True), torch.tensor(x, requires_grad=True)
    (out_s, fin_s), (out_t, fin_t) = ours(xs), ref(xt)
    h_s, h_t = (fin_s[0], fin_t[0]) if kind == "lstm" else (fin_s, fin_t)
    assert out_s.device == h_s.device == ours.weight_ih_l0.device
    probe = rand(*out_t.shape, seed=13)
    (out_s * sg.tensor(probe, device=device)).sum().backward()
    (out_t * torch.from_numpy(probe)).sum().backward()
    cpu = lambda t: t.detach().to("cpu").numpy()  # noqa: E731
    np.testing.assert_allclose(cpu(out_s), out_t.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(cpu(h_s), h_t.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(cpu(xs.grad), xt.grad.numpy(), rtol=RTOL, atol=ATOL)
    theirs = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(cpu(p.grad), theirs[name].grad.numpy(), rtol=RTOL, atol=ATOL)


def test_state_dict_round_trip_and_shapes():
    """PyTorch's names, order and shapes; a sparkgrad state dict loads into torch, strictly."""
    ours = nn.GRU(IN, HID, 2, bidirectional=True)
    ref = torch.nn.GRU(IN, HID, 2, bidirectional=True)
    shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == shapes
    assert shapes["weight_ih_l1_reverse"] == (3 * HID, 2 * HID)
    ref.load_state_dict(
        {k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()}
    )
    np.testing.assert_array_equal(
        ref.weight_hh_l0.detach().numpy(), ours.weight_hh_l0.detach().numpy()
    )
    assert [n for n, _ in ours.named_parameters()] == ours._flat_weights_names
    assert [[p.shape for p in group] for group in ours.all_weights] == [
        [tuple(p.shape) for p in group] for group in ref.all_weights
    ]


@pytest.mark.parametrize(
    "make_pair",
    [
        lambda m: m.RNN(3, 4, nonlinearity="relu"),
        lambda m: m.RNN(3, 4, 2, dropout=0.5, bidirectional=True, batch_first=True, bias=False),
        lambda m: m.LSTM(3, 4, proj_size=2),
        lambda m: m.GRU(3, 4, 3),
        lambda m: m.RNNCell(3, 4, nonlinearity="relu"),
        lambda m: m.LSTMCell(3, 4, bias=False),
        lambda m: m.GRUCell(3, 4),
    ],
)
def test_repr_reads_like_torch(make_pair):
    assert repr(make_pair(nn)) == repr(make_pair(torch.nn))


def test_init_is_uniform_in_one_over_sqrt_hidden():
    """Every parameter from U(-1/√hidden, 1/√hidden), reproducible from the seed."""
    sg.manual_seed(3)
    lstm = nn.LSTM(10, 64, 2)
    bound = 1 / math.sqrt(64)
    for name, p in lstm.named_parameters():
        values = p.detach().numpy()
        assert np.abs(values).max() <= bound, name
        assert np.abs(values).max() > 0.9 * bound, name  # the whole interval, not a narrower one
        assert (
            abs(values.mean()) < 0.1 * bound
            and abs(values.std() - bound / math.sqrt(3)) < 0.1 * bound
        )
    sg.manual_seed(3)
    again = nn.LSTM(10, 64, 2)
    np.testing.assert_array_equal(
        again.weight_hh_l1.detach().numpy(), lstm.weight_hh_l1.detach().numpy()
    )


# ---- float64 finite differences ---------------------------------------------------------------
@pytest.mark.slow  # float64 finite differences through time, ~1.5 s a kind
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_gradcheck_through_time(kind):
    """Input, initial state(s) and every parameter of a 2-layer bidirectional layer (float64)."""
    sg.manual_seed(0)
    layer = make(kind, nn, 2, 3, 2, bidirectional=True).double()
    x = sg.randn(4, 2, 2, dtype=sg.float64, requires_grad=True)
    states = [
        sg.randn(4, 2, 3, dtype=sg.float64, requires_grad=True) for _ in range(1 + (kind == "lstm"))
    ]
    params = list(layer.parameters())

    def run(x, *rest):
        hx = tuple(rest[: len(states)]) if kind == "lstm" else rest[0]
        out, fin = layer(x, hx)
        return (out, *fin) if kind == "lstm" else (out, fin)

    assert sg.gradcheck(run, [x, *states, *params])


@pytest.mark.parametrize("cell", ["RNNCell", "LSTMCell", "GRUCell"])
def test_gradcheck_cells(cell):
    sg.manual_seed(1)
    layer = getattr(nn, cell)(3, 2).double()
    x = sg.randn(4, 3, dtype=sg.float64, requires_grad=True)
    h = sg.randn(4, 2, dtype=sg.float64, requires_grad=True)
    c = sg.randn(4, 2, dtype=sg.float64, requires_grad=True)

    def run(x, h, c, *params):
        return layer(x, (h, c)) if cell == "LSTMCell" else layer(x, h) * c

    assert sg.gradcheck(run, [x, h, c, *layer.parameters()])


# ---- the cells -------------------------------------------------------------------------------
CELLS = [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("LSTMCell", {}), ("GRUCell", {})]


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("with_hx", [False, True], ids=["zeros", "hx"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("cell,kwargs", CELLS, ids=["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_cell_matches_torch(cell, kwargs, bias, with_hx, batched):
    torch.manual_seed(0)
    ref = getattr(torch.nn, cell)(IN, HID, bias=bias, **kwargs)
    ours = getattr(nn, cell)(IN, HID, bias=bias, **kwargs)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    lead = (N,) if batched else ()
    x = rand(*lead, IN, seed=1)
    n_states = 2 if cell == "LSTMCell" else 1
    states = [rand(*lead, HID, seed=2 + k) for k in range(n_states)]
    xs, xt = sg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    hs = [sg.tensor(s, requires_grad=True) for s in states]
    ht = [torch.tensor(s, requires_grad=True) for s in states]
    pack = (lambda v: tuple(v)) if n_states == 2 else (lambda v: v[0])
    out_s = ours(xs, pack(hs) if with_hx else None)
    out_t = ref(xt, pack(ht) if with_hx else None)
    out_s, out_t = (out_s, out_t) if n_states == 2 else ((out_s,), (out_t,))
    loss_s, loss_t = sg.tensor(0.0), 0
    for k, (a, b) in enumerate(zip(out_s, out_t)):
        assert a.shape == tuple(b.shape)
        close(a, b, f"output {k}")
        probe = rand(*b.shape, seed=7 + k)
        loss_s = loss_s + (a * sg.tensor(probe)).sum()
        loss_t = loss_t + (b * torch.from_numpy(probe)).sum()
    loss_s.backward()
    loss_t.backward()
    close(xs.grad, xt.grad, "input grad")
    if with_hx:
        for a, b in zip(hs, ht):
            close(a.grad, b.grad, "state grad")
    theirs = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        close(p.grad, theirs[name].grad, f"grad of {name}")


@pytest.mark.parametrize("kind", KINDS)
def test_a_cell_in_a_loop_is_the_layer(kind):
    """The layer is its cell applied step by step: same weights, same outputs and h_n."""
    sg.manual_seed(2)
    layer = make(kind, nn, IN, HID)
    cell_cls = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}.get(kind, nn.RNNCell)
    cell = cell_cls(IN, HID, **({"nonlinearity": kind[4:]} if kind.startswith("rnn") else {}))
    cell.load_state_dict({k[: -len("_l0")]: v for k, v in layer.state_dict().items()})
    x = sg.tensor(rand(T, N, IN, seed=3))
    with sg.no_grad():
        out, fin = layer(x)
        state = None
        for t in range(T):
            state = cell(x[t], state)
            step_h = state[0] if kind == "lstm" else state
            np.testing.assert_allclose(step_h.numpy(), out[t].numpy(), rtol=1e-6, atol=1e-7)
    final = fin[0][0] if kind == "lstm" else fin[0]
    np.testing.assert_allclose(final.numpy(), step_h.numpy(), rtol=1e-6, atol=1e-7)


# ---- dropout between layers ------------------------------------------------------------------
def identity_relu_rnn(num_layers: int, p: float, width: int = 200) -> nn.RNN:
    """A relu RNN whose every layer passes a positive input through unchanged:
    W_ih = I, W_hh = 0, b = 0, so h_t = relu(x_t) = x_t. Whatever changes is dropout."""
    rnn = nn.RNN(width, width, num_layers, nonlinearity="relu", dropout=p)
    with sg.no_grad():
        for name, param in rnn.named_parameters():
            param.copy_(sg.eye(width) if name.startswith("weight_ih") else sg.zeros(*param.shape))
    return rnn


def test_dropout_is_identity_in_eval_and_matches_torch():
    """eval(): no dropout at all, so sparkgrad's outputs equal PyTorch's exactly as without it."""
    ours, ref = copied("lstm", IN, HID, 3, dropout=0.7)
    ours.eval()
    ref.eval()
    compare(ours, ref, rand(T, N, IN, seed=8), initial_states(ref, N))


def test_dropout_statistics_in_training():
    """train(): each inter-layer activation kept with probability 1-p and scaled by 1/(1-p);
    the last layer's output is not dropped (kept values are x/(1-p) once, never twice)."""
    p, width = 0.3, 200
    sg.manual_seed(5)
    rnn = identity_relu_rnn(num_layers=3, p=p, width=width)
    x = np.abs(rand(20, 10, width, seed=9)) + 0.5  # positive: relu keeps it, 40,000 values
    out = rnn(sg.tensor(x))[0].detach().numpy()
    survived = out != 0
    # two dropouts (after layers 0 and 1, not after layer 2): kept with (1-p)², scaled twice
    keep = (1 - p) ** 2
    np.testing.assert_allclose(out[survived], x[survived] / keep, rtol=1e-5)
    n = survived.size
    assert abs(survived.mean() - keep) < 4 * math.sqrt(keep * (1 - keep) / n)
    rnn.eval()
    np.testing.assert_allclose(rnn(sg.tensor(x))[0].detach().numpy(), x, rtol=1e-6)


def test_dropout_draws_a_new_mask_each_call_and_gradients_follow_it():
    sg.manual_seed(6)
    rnn = identity_relu_rnn(num_layers=2, p=0.5, width=50)
    x = sg.tensor(np.abs(rand(4, 3, 50, seed=10)) + 0.5, requires_grad=True)
    first = rnn(x)[0]
    second = rnn(x)[0]
    assert not np.array_equal(first.detach().numpy() != 0, second.detach().numpy() != 0)
    first.sum().backward()
    # d out / d x = mask / (1-p) where kept, 0 where dropped (W_ih = I, relu' = 1)
    np.testing.assert_allclose(x.grad.numpy(), (first.detach().numpy() != 0) * 2.0)


def test_dropout_on_one_layer_warns_and_changes_nothing():
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        rnn = identity_relu_rnn(num_layers=1, p=0.5, width=8)
    x = np.abs(rand(3, 2, 8, seed=11)) + 0.5
    np.testing.assert_allclose(rnn(sg.tensor(x))[0].detach().numpy(), x, rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.LSTM(3, 4, 2, dropout=0.5)  # two layers: no warning


# ---- errors, with PyTorch's messages ---------------------------------------------------------
def test_wrong_input_size_is_a_shape_error():
    with pytest.raises(
        ShapeError, match=r"input.size\(-1\) must be equal to input_size. Expected 10, got 7"
    ):
        nn.LSTM(10, 20)(sg.randn(5, 3, 7))
    with pytest.raises(ShapeError, match="inconsistent input_size: got 7 expected 10"):
        nn.GRUCell(10, 20)(sg.randn(3, 7))


def test_wrong_hidden_shape_names_both_shapes():
    with pytest.raises(ShapeError, match=r"Expected hidden size \(1, 3, 20\), got \[1, 2, 20\]"):
        nn.GRU(10, 20)(sg.randn(5, 3, 10), sg.randn(1, 2, 20))
    with pytest.raises(
        ShapeError, match=r"Expected hidden\[1\] size \(2, 3, 20\), got \[1, 3, 20\]"
    ):
        nn.LSTM(10, 20, bidirectional=True)(
            sg.randn(5, 3, 10), (sg.randn(2, 3, 20), sg.randn(1, 3, 20))
        )
    with pytest.raises(ShapeError, match=r"Expected hidden\[0\] size \(1, 3, 2\)"):
        nn.LSTM(10, 20, proj_size=2)(sg.randn(5, 3, 10), (sg.randn(1, 3, 20), sg.randn(1, 3, 20)))
    with pytest.raises(
        ShapeError, match="For batched 3-D input, hx should also be 3-D but got 2-D"
    ):
        nn.RNN(10, 20)(sg.randn(5, 3, 10), sg.randn(3, 20))
    with pytest.raises(
        ShapeError, match="For unbatched 2-D input, hx should also be 2-D but got 3-D"
    ):
        nn.RNN(10, 20)(sg.randn(5, 10), sg.randn(1, 1, 20))
    with pytest.raises(
        ShapeError, match=r"LSTM expects hx to be a tuple \(h_0, c_0\), found a Tensor"
    ):
        nn.LSTM(10, 20)(sg.randn(5, 3, 10), sg.randn(1, 3, 20))
    with pytest.raises(ShapeError, match="Input batch size 3 doesn't match hidden0 batch size 2"):
        nn.RNNCell(10, 20)(sg.randn(3, 10), sg.randn(2, 20))
    with pytest.raises(
        ShapeError, match="hidden1 has inconsistent hidden_size: got 21, expected 20"
    ):
        nn.LSTMCell(10, 20)(sg.randn(3, 10), (sg.randn(3, 20), sg.randn(3, 21)))


def test_wrong_input_rank_dtype_and_packed_sequences():
    with pytest.raises(ShapeError, match="LSTM: Expected input to be 2D or 3D, got 4D instead"):
        nn.LSTM(10, 20)(sg.randn(5, 3, 10, 1))
    with pytest.raises(ShapeError, match="LSTMCell: Expected input to be 1D or 2D, got 3D instead"):
        nn.LSTMCell(10, 20)(sg.randn(5, 3, 10))
    with pytest.raises(
        ConfigError, match=r"RNN input dtype \(float64\) does not match weight dtype \(float32\)"
    ):
        nn.GRU(10, 20)(sg.randn(5, 3, 10, dtype=sg.float64))
    with pytest.raises(ShapeError, match="GRUCell: for unbatched 1-D input, hx should also be 1-D"):
        nn.GRUCell(10, 20)(sg.randn(10), sg.randn(1, 20))
    with pytest.raises(
        ShapeError, match=r"LSTMCell expects hx to be a tuple \(h_0, c_0\), found 1"
    ):
        nn.LSTMCell(10, 20)(sg.randn(3, 10), (sg.randn(3, 20),))
    with pytest.raises(ConfigError, match=r"RNNCell input dtype \(float64\) does not match"):
        nn.RNNCell(10, 20)(sg.randn(3, 10, dtype=sg.float64))
    with pytest.raises(ShapeError, match="sequence length to be larger than 0"):
        nn.GRU(10, 20)(sg.randn(0, 3, 10))
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.zeros(5, 2, 10), [5, 3])
    with pytest.raises(NotImplementedError, match="PackedSequence is not implemented"):
        nn.LSTM(10, 20)(packed)


def test_constructor_checks():
    with pytest.raises(ConfigError, match=r"dropout should be a number in range \[0, 1\]"):
        nn.LSTM(3, 4, 2, dropout=1.5)
    with pytest.raises(ConfigError, match="proj_size has to be smaller than hidden_size"):
        nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(
        ConfigError, match="Unknown nonlinearity 'gelu'. Select from 'tanh' or 'relu'."
    ):
        nn.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ConfigError, match="hidden_size must be greater than zero"):
        nn.GRU(3, 0)
    with pytest.raises(TypeError, match="batch_first should be of type bool, got: int"):
        nn.GRU(3, 4, batch_first=1)
    assert nn.RNN(3, 4, 2, "relu").nonlinearity == "relu"  # 4th positional, as torch
