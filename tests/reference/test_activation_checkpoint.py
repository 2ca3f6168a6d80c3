"""Activation checkpointing (``sparkgrad.utils.checkpoint``) against PyTorch and against itself.

Two truths. With dropout off, the gradients of a checkpointed MLP and Transformer layer
equal PyTorch's ``torch.utils.checkpoint`` on the same weights (rtol 1e-5). With dropout on
the masks come from different generators in the two engines, so there the truth is
sparkgrad without checkpointing: recomputation replays the RNG state, so the gradients must
be equal *bit for bit* (``np.array_equal``), not merely close.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.utils.checkpoint as tcp

import sparkgrad as sg
from sparkgrad import nn
from sparkgrad.errors import GradError
from sparkgrad.models import build_mlp
from sparkgrad.utils.checkpoint import checkpoint, checkpoint_sequential

D, HEADS, FF = 16, 4, 32


def _torch_mlp(sg_model):
    sizes = [m.weight.shape for m in sg_model if isinstance(m, nn.Linear)]
    layers = []
    for i, (out, inp) in enumerate(sizes):
        layers.append(torch.nn.Linear(inp, out))
        if i < len(sizes) - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    model.load_state_dict({k: torch.tensor(v.numpy()) for k, v in sg_model.state_dict().items()})
    return model


def _grads(model, x):
    return [x.grad.numpy()] + [p.grad.numpy() for p in model.parameters()]


def _sg_encoder(layers, dropout):
    sg.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        D, HEADS, FF, dropout, activation="gelu", batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, layers)


def _run_encoder(mode, dropout=0.1, layers=3, data_seed=1):
    """Gradients of sum(y²) through an encoder stack, with ``mode`` of recompute."""
    enc = _sg_encoder(layers, dropout)
    x_np = np.random.default_rng(data_seed).standard_normal((2, 6, D)).astype(np.float32)
    x = sg.tensor(x_np, requires_grad=True)
    sg.manual_seed(7)  # the dropout stream
    if mode == "blocks":
        enc.checkpoint_layers = True
    if mode == "selective":
        for m in enc.modules():
            if isinstance(m, nn.MultiheadAttention):
                m.selective_recompute = True
    mask = nn.Transformer.generate_square_subsequent_mask(6)
    if mode == "sequential":
        y = checkpoint_sequential([lambda h, m=m: m(h, src_mask=mask) for m in enc.layers], 2, x)
    elif mode == "reentrant":
        y = x
        for m in enc.layers:
            y = checkpoint(m, y, mask, use_reentrant=True)
    else:
        y = enc(x, mask=mask)
    (y * y).sum().backward()
    return _grads(enc, x), sg.rand(3).numpy()


# ---- against PyTorch, dropout off ---------------------------------------------------------


def test_checkpointed_mlp_gradients_equal_pytorchs():
    model = build_mlp((32, 32, 32), seed=3, n_in=20, n_out=5)
    tmodel = _torch_mlp(model)
    x_np = np.random.default_rng(0).standard_normal((8, 20)).astype(np.float32)
    x, tx = sg.tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    sg.nn.functional.cross_entropy(
        checkpoint_sequential(model, 3, x), sg.tensor([1] * 8)
    ).backward()
    out = tcp.checkpoint_sequential(tmodel, 3, tx, use_reentrant=False)
    torch.nn.functional.cross_entropy(out, torch.tensor([1] * 8)).backward()
    t_grads = [tx.grad.numpy()] + [p.grad.numpy() for p in tmodel.parameters()]
    for a, b in zip(_grads(model, x), t_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode", ["blocks", "selective"])
def test_checkpointed_transformer_layer_gradients_equal_pytorchs(mode):
    layers = 2
    tlayer = torch.nn.TransformerEncoderLayer(
        D, HEADS, FF, 0.0, activation="gelu", batch_first=True, norm_first=True
    )
    tenc = torch.nn.TransformerEncoder(tlayer, layers, enable_nested_tensor=False)
    enc = _sg_encoder(layers, 0.0)
    enc.load_state_dict(tenc.state_dict())
    if mode == "blocks":
        enc.checkpoint_layers = True
    else:
        for m in enc.modules():
            if isinstance(m, nn.MultiheadAttention):
                m.selective_recompute = True
    x_np = np.random.default_rng(2).standard_normal((2, 6, D)).astype(np.float32)
    x, tx = sg.tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    mask = nn.Transformer.generate_square_subsequent_mask(6)
    tmask = torch.nn.Transformer.generate_square_subsequent_mask(6)
    (enc(x, mask=mask) ** 2).sum().backward()
    ty = tx
    for layer in tenc.layers:
        ty = tcp.checkpoint(layer, ty, tmask, use_reentrant=False)
    (ty**2).sum().backward()
    t_grads = [tx.grad.numpy()] + [p.grad.numpy() for p in tenc.parameters()]
    for a, b in zip(_grads(enc, x), t_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# ---- against sparkgrad without checkpointing, dropout on: bit for bit ------------------------


@pytest.mark.parametrize("mode", ["blocks", "selective", "sequential", "reentrant"])
def test_with_dropout_gradients_equal_the_unchecked_ones_bit_for_bit(mode):
    plain, plain_next = _run_encoder("none")
    checked, checked_next = _run_encoder(mode)
    assert len(plain) == len(checked) == 1 + 3 * 12
    for i, (a, b) in enumerate(zip(plain, checked, strict=True)):
        assert np.array_equal(a, b), f"gradient {i} differs"
    # the recomputation replayed the RNG and gave the stream back where forward left it
    assert np.array_equal(plain_next, checked_next)


def test_without_preserve_rng_state_the_masks_differ():
    """The control: recomputing from the *current* RNG state draws other dropout masks."""
    enc = _sg_encoder(1, 0.5)
    x = sg.tensor(np.ones((2, 6, D), np.float32), requires_grad=True)
    sg.manual_seed(7)
    (enc(x) ** 2).sum().backward()
    plain = x.grad.numpy()
    enc.zero_grad()
    x.grad = None
    sg.manual_seed(7)
    (checkpoint(enc.layers[0], x, preserve_rng_state=False) ** 2).sum().backward()
    assert not np.allclose(plain, x.grad.numpy())


def test_mlp_blocks_from_build_mlp_give_the_same_gradients_bit_for_bit():
    x_np = np.random.default_rng(0).standard_normal((8, 784)).astype(np.float32)
    runs = []
    for recompute in ("none", "blocks"):
        model = build_mlp((64, 64), seed=1, recompute=recompute)
        x = sg.tensor(x_np, requires_grad=True)
        sg.nn.functional.cross_entropy(model(x), sg.tensor([3] * 8)).backward()
        runs.append(_grads(model, x))
    assert list(build_mlp((64, 64), 1, recompute="blocks").state_dict()) == ["0.weight",
        "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]  # fmt: skip
    assert repr(build_mlp((4,), 1, recompute="blocks")).startswith("Sequential(")
    for a, b in zip(*runs, strict=True):
        assert np.array_equal(a, b)


# ---- the engine around it -----------------------------------------------------------------


def test_autograd_grad_works_through_a_non_reentrant_checkpoint():
    lin = nn.Linear(3, 3)
    x = sg.randn(2, 3, requires_grad=True)
    gx, gw = sg.autograd.grad(checkpoint(lin, x).sum(), [x, lin.weight])
    gx2, gw2 = sg.autograd.grad(lin(x).sum(), [x, lin.weight])
    assert np.array_equal(gx.numpy(), gx2.numpy()) and np.array_equal(gw.numpy(), gw2.numpy())
    assert lin.weight.grad is None  # grad() hands back, .grad untouched


def test_several_outputs_non_tensor_arguments_and_keyword_arguments():
    def f(a, k, b, scale=1.0):
        return a * b * k * scale, (a + b).exp(), 7

    a_np, b_np = np.array([0.5, -1.0], np.float32), np.array([2.0, 3.0], np.float32)
    a, b = sg.tensor(a_np, requires_grad=True), sg.tensor(b_np, requires_grad=True)
    ta, tb = torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)
    p, q, seven = checkpoint(f, a, 3.0, b, scale=2.0)
    tp, tq, _ = tcp.checkpoint(f, ta, 3.0, tb, scale=2.0, use_reentrant=False)
    assert seven == 7 and p.grad_fn.name() == "CheckpointBackward"
    (p.sum() + 2 * q.sum()).backward()
    (tp.sum() + 2 * tq.sum()).backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-6)
    a.grad = b.grad = ta.grad = tb.grad = None
    checkpoint(f, a, 3.0, b)[1].sum().backward()  # first output unused: its gradient is None
    tcp.checkpoint(f, ta, 3.0, tb, use_reentrant=False)[1].sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-6)


def test_an_input_modified_in_place_after_forward_is_detected():
    x = sg.randn(3, requires_grad=True)
    h = x * 2
    y = checkpoint(lambda t: (t * t).sum(), h)
    h.add_(1.0)
    with pytest.raises(GradError, match="modified by an inplace operation"):
        y.backward()


def test_the_graph_keeps_only_the_checkpoint_input():
    """No node of the function's own graph survives forward: one node, one saved array."""
    lin1, lin2 = nn.Linear(4, 8), nn.Linear(8, 4)
    x = sg.randn(5, 4, requires_grad=True)
    y = checkpoint(lambda t: lin2(lin1(t).tanh()).tanh(), x)
    node = y.grad_fn
    assert len(node.ctx.saved_tensors) == 1 and node.ctx.saved_tensors[0] is x.array
    # the edges: the input first, then every parameter the function used
    assert node.edges[0] is x
    params = (*lin1.parameters(), *lin2.parameters())
    assert {id(e) for e in node.edges[1:]} == {id(p) for p in params}
    assert len(node.edges) == 5


# ---- PyTorch's behaviour at the edges ---------------------------------------------------------


def test_under_no_grad_it_is_a_plain_call_without_warnings():
    lin = nn.Linear(3, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with sg.no_grad():
            y = checkpoint(lin, sg.randn(2, 3, requires_grad=True))
    assert not y.requires_grad and y.grad_fn is None


def test_reentrant_warns_when_no_input_requires_grad_as_pytorch():
    lin, tlin = nn.Linear(3, 3), torch.nn.Linear(3, 3)
    with pytest.warns(UserWarning, match="None of the inputs have requires_grad=True") as ours:
        y = checkpoint(lin, sg.randn(2, 3), use_reentrant=True)
    with pytest.warns(UserWarning, match="None of the inputs have requires_grad=True") as theirs:
        ty = tcp.checkpoint(tlin, torch.randn(2, 3), use_reentrant=True)
    assert str(ours[0].message) == str(theirs[0].message)
    assert y.requires_grad == ty.requires_grad is False  # so the weights get no gradient
    y2 = checkpoint(lin, sg.randn(2, 3), use_reentrant=False)  # non-reentrant: they do
    assert (
        y2.requires_grad
        is tcp.checkpoint(tlin, torch.randn(2, 3), use_reentrant=False).requires_grad
    )


def test_reentrant_rejects_keyword_arguments_as_pytorch():
    def f(a, b=1):
        return a * b

    with pytest.raises(ValueError, match="Unexpected keyword arguments: b"):
        checkpoint(f, sg.randn(2, requires_grad=True), b=2, use_reentrant=True)
    with pytest.raises(ValueError, match="Unexpected keyword arguments: b"):
        tcp.checkpoint(f, torch.randn(2, requires_grad=True), b=2, use_reentrant=True)


def test_use_reentrant_none_warns_and_means_true():
    lin = nn.Linear(3, 3)
    with pytest.warns(UserWarning, match="use_reentrant parameter should be passed explicitly"):
        y = checkpoint(lin, sg.randn(2, 3, requires_grad=True), use_reentrant=None)
    assert y.grad_fn.name() == "CheckpointFunctionBackward"


@pytest.mark.parametrize("segments", [0, 4, 1.5])
def test_checkpoint_sequential_rejects_bad_segment_counts(segments):
    with pytest.raises(ValueError, match=r"segments must be an int in \[1, 3\]"):
        checkpoint_sequential([nn.ReLU(), nn.ReLU(), nn.ReLU()], segments, sg.randn(2))


# ---- the models' --recompute: every gradient bit for bit, dropout on -----------------------


def _model_grads(name, recompute):
    from sparkgrad.models.gpt import build_gpt
    from sparkgrad.models.seq2seq import build_seq2seq
    from sparkgrad.models.vit import build_vit

    rng = np.random.default_rng(0)
    kw = {"d_model": 16, "nhead": 2, "num_layers": 2, "dropout": 0.2, "recompute": recompute}
    if name == "gpt":
        model, x = build_gpt(11, 0, context=8, **kw), rng.integers(0, 11, (3, 8))
    elif name == "vit":
        model, x = build_vit(0, **kw), rng.random((3, 28, 28)).astype(np.float32)
    else:
        model, x = build_seq2seq(0, **kw), rng.integers(1, 13, (3, 16))
    sg.manual_seed(5)
    out = model(sg.tensor(x))
    (out * out).mean().backward()
    return [p.grad.numpy() for p in model.parameters()]


@pytest.mark.parametrize("recompute", ["blocks", "selective"])
@pytest.mark.parametrize("name", ["gpt", "vit", "seq2seq"])
def test_models_recompute_gives_the_gradients_of_none_bit_for_bit(name, recompute):
    plain, checked = _model_grads(name, "none"), _model_grads(name, recompute)
    assert len(plain) == len(checked) > 10
    for i, (a, b) in enumerate(zip(plain, checked, strict=True)):
        assert np.array_equal(a, b), f"{name} --recompute {recompute}: gradient {i} differs"
