"""``nn.MultiheadAttention`` and the Transformer layers against ``torch.nn``.

The recipe of ``test_nn_layers.py``, with PyTorch's module as the source of the weights:

1. build the ``torch.nn`` module and the sparkgrad one with the same configuration;
2. assert their ``state_dict`` key lists are equal (same names, same order), then load
   PyTorch's state dict into sparkgrad with ``load_state_dict`` (no renaming);
3. run both on the same float32 inputs and masks, compare the outputs;
4. backpropagate the same random upstream gradient (into the attention weights too, when
   they are returned) and compare the gradients of every parameter and every input.

Training mode with ``dropout=0.0`` and eval mode (dropout switched off) are compared
exactly; dropout itself by its statistics. Tolerances are float32's: rtol 1e-5 and atol
1e-6 *times the largest magnitude in the compared array* (at least 1e-6). The scaling is
the one loosening, and its reason: a weight gradient entry is a sum over every position
of products of O(1) terms, and where such a sum cancels to ~0.01 its float32 rounding
(a few ulps of the terms, ~1e-6 for gradients of size ~4) is larger than 1e-6 of the
result. Tests that loosen further say why.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sparkgrad as sg
from sparkgrad import nn
from sparkgrad.errors import ConfigError, ShapeError

RTOL, ATOL = 1e-5, 1e-6
pytestmark = [  # PyTorch's own notes about its nested-tensor fast path, not ours
    pytest.mark.filterwarnings("ignore:enable_nested_tensor is True"),
    pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors"),
]


def _to_sg(x, grad=False):
    if isinstance(x, np.ndarray):
        return sg.tensor(x, requires_grad=grad and x.dtype.kind == "f")
    return x


def _to_torch(x, grad=False):
    if isinstance(x, np.ndarray):
        return torch.tensor(x, requires_grad=grad and x.dtype.kind == "f")
    return x


def load_from_torch(sg_module: nn.Module, torch_module: torch.nn.Module) -> None:
    """Same keys in the same order, then PyTorch's weights loaded strictly into sparkgrad."""
    assert list(sg_module.state_dict()) == list(torch_module.state_dict())
    sg_module.load_state_dict(torch_module.state_dict())


def assert_close(actual, desired, rtol, atol, err_msg=""):
    """assert_allclose with atol scaled to the array's largest magnitude (module docstring)."""
    scale = max(1.0, float(np.nanmax(np.abs(desired)))) if np.size(desired) else 1.0
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol * scale, err_msg=err_msg)


def compare(sg_module, torch_module, inputs, kwargs=None, rtol=RTOL, atol=ATOL, grads=True):
    """Outputs (and returned attention weights), input grads and parameter grads equal."""
    kwargs = kwargs or {}
    load_from_torch(sg_module, torch_module)
    s_in = [_to_sg(x, grad=True) for x in inputs]
    t_in = [_to_torch(x, grad=True) for x in inputs]
    if len(inputs) == 3 and inputs[1] is inputs[2]:  # keep "key is value" (cross-attention)
        s_in[2], t_in[2] = s_in[1], t_in[1]
    if len(inputs) == 3 and inputs[0] is inputs[1]:  # ... and "query is key" (self-attention)
        s_in, t_in = [s_in[0]] * 3, [t_in[0]] * 3
    s_out = sg_module(*s_in, **{k: _to_sg(v) for k, v in kwargs.items()})
    t_out = torch_module(*t_in, **{k: _to_torch(v) for k, v in kwargs.items()})
    s_out = s_out if isinstance(s_out, tuple) else (s_out,)
    t_out = t_out if isinstance(t_out, tuple) else (t_out,)
    rng = np.random.default_rng(123)
    s_loss = t_loss = 0
    for s, t in zip(s_out, t_out):
        if t is None:
            assert s is None
            continue
        assert s.shape == tuple(t.shape)
        assert_close(s.detach().numpy(), t.detach().numpy(), rtol, atol)
        g = rng.standard_normal(t.shape).astype(np.float32)
        s_loss = s_loss + (s * sg.tensor(g)).sum()
        t_loss = t_loss + (t * torch.from_numpy(g)).sum()
    if not grads:
        return s_out
    s_loss.backward()
    t_loss.backward()
    s_params = dict(sg_module.named_parameters())
    t_params = dict(torch_module.named_parameters())
    assert s_params.keys() == t_params.keys()
    for name, p in t_params.items():
        assert p.grad is not None, name
        assert_close(s_params[name].grad.numpy(), p.grad.numpy(), rtol, atol, err_msg=name)
    seen = set()
    for i, (s, t) in enumerate(zip(s_in, t_in)):
        if isinstance(t, torch.Tensor) and t.requires_grad and id(t) not in seen:
            seen.add(id(t))
            assert_close(s.grad.numpy(), t.grad.numpy(), rtol, atol, err_msg=f"input {i}")
    return s_out


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def padding(n, s, lengths):
    """(N, S) boolean key padding: True past each sequence's length."""
    return np.arange(s)[None, :] >= np.asarray(lengths)[:, None]


def causal(l, s=None):
    """(L, S) boolean attn_mask for MultiheadAttention: True above the diagonal (= masked)."""
    return np.triu(np.ones((l, s or l), bool), 1)


# ---- MultiheadAttention --------------------------------------------------------------------
E, L, S, N, H = 8, 5, 6, 3, 2


def _masks(kind, l, s, n, heads, seed=0):
    rng = np.random.default_rng(seed)
    kpm = padding(n, s, [s, s - 2, 1][:n])
    return {
        "none": {},
        "causal_bool": {"attn_mask": causal(l, s)},
        "float": {"attn_mask": rng.standard_normal((l, s)).astype(np.float32)},
        "3d_bool": {"attn_mask": np.triu(rng.random((n * heads, l, s)) < 0.3, 1)},
        "3d_float": {"attn_mask": rng.standard_normal((n * heads, l, s)).astype(np.float32)},
        "kpm_bool": {"key_padding_mask": kpm},
        "kpm_float": {"key_padding_mask": np.where(kpm, -1e4, 0.0).astype(np.float32)},
        "both": {"attn_mask": causal(l, s), "key_padding_mask": kpm},
    }[kind]


MASKS = ["none", "causal_bool", "float", "3d_bool", "3d_float", "kpm_bool", "kpm_float", "both"]
WEIGHTS = [(True, True), (True, False), (False, True)]


def _mha_inputs(kind, batch_first, l=L, s=S, n=N):
    def seq(length, dim, seed):
        x = rand(length, n, dim, seed=seed)
        return x.transpose(1, 0, 2).copy() if batch_first else x

    if kind == "self":
        x = seq(l, E, 1)
        return [x, x, x]
    if kind == "cross":  # decoder-style: key is value (the memory)
        mem = seq(s, E, 2)
        return [seq(l, E, 1), mem, mem]
    if kind == "kdim_vdim":
        return [seq(l, E, 1), seq(s, 5, 2), seq(s, 7, 3)]
    return [seq(l, E, 1), seq(s, E, 2), seq(s, E, 3)]  # three different tensors


@pytest.mark.parametrize("kind", ["self", "cross", "distinct", "kdim_vdim"])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize(("need_weights", "average"), WEIGHTS)
@pytest.mark.parametrize("mask", MASKS)
def test_multihead_attention_matches_torch(kind, batch_first, need_weights, average, mask):
    """Self/cross/three-input/kdim-vdim attention, both layouts, with and without weights,
    every mask kind (boolean and float, 2-D and 3-D attn_mask, key padding, both)."""
    s = L if kind == "self" else S
    dims = {"kdim": 5, "vdim": 7} if kind == "kdim_vdim" else {}
    ref = torch.nn.MultiheadAttention(E, H, batch_first=batch_first, **dims)
    mha = nn.MultiheadAttention(E, H, batch_first=batch_first, **dims)
    kwargs = {"need_weights": need_weights, "average_attn_weights": average}
    kwargs.update(_masks(mask, L, s, N, H))
    compare(mha, ref, _mha_inputs(kind, batch_first, s=s), kwargs)


@pytest.mark.parametrize("heads", [1, 4, 8])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    ("add_bias_kv", "add_zero_attn"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_heads_bias_and_extra_keys_match_torch(heads, bias, add_bias_kv, add_zero_attn):
    """Head counts down to head_dim 1, no biases, the learned extra key/value (bias_k,
    bias_v) and the zero key, each with a padding mask and a 2-D mask to be padded too."""
    ref = torch.nn.MultiheadAttention(E, heads, bias=bias, add_bias_kv=add_bias_kv,
                                      add_zero_attn=add_zero_attn)  # fmt: skip
    mha = nn.MultiheadAttention(E, heads, bias=bias, add_bias_kv=add_bias_kv,
                                add_zero_attn=add_zero_attn)  # fmt: skip
    q, k, _ = _mha_inputs("cross", False)
    kwargs = {"attn_mask": causal(L, S), "key_padding_mask": padding(N, S, [6, 4, 2])}
    compare(mha, ref, [q, k, k], kwargs)


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("mask", ["none", "3d_bool", "kpm_bool", "both"])
def test_unbatched_inputs_match_torch(need_weights, mask):
    """2-D (L, E) inputs: a 1-D key padding mask, a (heads, L, S) attn_mask; weights (L, S)."""
    ref, mha = torch.nn.MultiheadAttention(E, H), nn.MultiheadAttention(E, H)
    q, k = rand(L, E, seed=1), rand(S, E, seed=2)
    kwargs = {"need_weights": need_weights}
    masks = _masks(mask, L, S, 1, H)
    if "key_padding_mask" in masks:
        masks["key_padding_mask"] = padding(1, S, [4])[0]  # (S,): the last two keys padded
    kwargs.update(masks)
    out = compare(mha, ref, [q, k, k], kwargs)
    assert out[0].shape == (L, E)


def test_fully_padded_sequence_without_weights_gives_zeros_like_torch():
    """A batch element whose every key is padding: the fused path returns 0 for its
    attention (so the output is out_proj's bias), as PyTorch's; gradients match too."""
    ref, mha = torch.nn.MultiheadAttention(E, H), nn.MultiheadAttention(E, H)
    with torch.no_grad():
        ref.out_proj.bias.normal_()
    q, k, _ = _mha_inputs("cross", False)
    kpm = padding(N, S, [6, 0, 3])  # batch element 1 has no keys at all
    out, _ = compare(mha, ref, [q, k, k], {"key_padding_mask": kpm, "need_weights": False})
    bias = ref.out_proj.bias.detach().numpy()
    np.testing.assert_allclose(out.detach().numpy()[:, 1], np.broadcast_to(bias, (L, E)))


def test_fully_padded_sequence_with_weights_gives_nan_like_torch():
    """need_weights=True takes PyTorch's explicit softmax: an all -inf row is 0/0 = NaN, in
    the weights and the output, at exactly the positions where PyTorch has NaN."""
    ref, mha = torch.nn.MultiheadAttention(E, H), nn.MultiheadAttention(E, H)
    q, k, _ = _mha_inputs("cross", False)
    kpm = padding(N, S, [6, 0, 3])
    with np.errstate(invalid="ignore"):  # NumPy notes the nan it makes; PyTorch is silent
        out, weights = compare(mha, ref, [q, k, k], {"key_padding_mask": kpm}, grads=False)
    assert (
        np.isnan(out.detach().numpy()[:, 1]).all() and np.isnan(weights.detach().numpy()[1]).all()
    )
    assert np.isfinite(out.detach().numpy()[:, [0, 2]]).all()


def test_is_causal_hint_matches_torch():
    """is_causal=True with the causal mask: without weights and padding the mask is dropped
    and the fused op builds it (PyTorch's shortcut); the numbers are the same."""
    for need_weights in (False, True):
        ref, mha = torch.nn.MultiheadAttention(E, H), nn.MultiheadAttention(E, H)
        x = rand(L, N, E)
        kwargs = {"attn_mask": causal(L), "is_causal": True, "need_weights": need_weights}
        hinted = compare(mha, ref, [x, x, x], kwargs)[0]
        plain = mha(*(sg.tensor(x),) * 3, attn_mask=sg.tensor(causal(L)), need_weights=False)[0]
        np.testing.assert_allclose(hinted.detach().numpy(), plain.detach().numpy(), atol=1e-6)


def test_functional_form_with_static_keys_matches_torch():
    """``F.multi_head_attention_forward`` itself, with given per-head keys and values
    (``static_k``/``static_v`` of shape (N·H, S, head_dim)) in place of projected ones."""
    ref = torch.nn.MultiheadAttention(E, H)
    rng = np.random.default_rng(4)
    q = rand(L, N, E, seed=1)
    static = [rng.standard_normal((N * H, S, E // H)).astype(np.float32) for _ in range(2)]
    kpm = padding(N, S, [6, 2, 4])

    def run(lib, to):
        weights = {k: to(v.detach().numpy()) for k, v in ref.named_parameters()}
        return lib(
            to(q), to(q), to(q), E, H, weights["in_proj_weight"], weights["in_proj_bias"],
            None, None, False, 0.0, weights["out_proj.weight"], weights["out_proj.bias"],
            key_padding_mask=to(kpm), static_k=to(static[0]), static_v=to(static[1]),
        )  # fmt: skip

    ours = run(sg.nn.functional.multi_head_attention_forward, sg.tensor)
    theirs = run(torch.nn.functional.multi_head_attention_forward, torch.tensor)
    for a, b in zip(ours, theirs):
        assert_close(a.numpy(), b.numpy(), RTOL, ATOL)


def test_eval_mode_switches_dropout_off():
    """dropout=0.5 in eval mode is the identity: equal to PyTorch's eval-mode module (run
    with grad enabled, so PyTorch takes its ordinary path, not the inference fast path)."""
    ref, mha = (
        torch.nn.MultiheadAttention(E, H, dropout=0.5),
        nn.MultiheadAttention(E, H, dropout=0.5),
    )
    ref.eval(), mha.eval()
    x = rand(L, N, E)
    compare(mha, ref, [x, x, x], {"key_padding_mask": padding(N, L, [5, 3, 4])})
    compare(mha, ref, [x, x, x], {"need_weights": False, "attn_mask": causal(L)})


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_on_the_returned_weights(p):
    """Training mode drops attention probabilities: each per-head weight is either 0 or its
    eval-mode value / (1-p), and about 1-p of them survive (as PyTorch, the weights handed
    back are the dropped ones)."""
    sg.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, dropout=p)
    x = sg.tensor(rand(32, 8, 16))
    _, dropped = mha(x, x, x, average_attn_weights=False)
    mha.eval()
    _, full = mha(x, x, x, average_attn_weights=False)
    dropped, full = dropped.detach().numpy(), full.detach().numpy()
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], full[kept] / (1 - p), rtol=1e-5)
    assert abs(kept.mean() - (1 - p)) < 0.02  # 32768 coins


def test_mha_initialisation_is_torchs():
    """Parameter names, shapes and order as PyTorch; xavier-uniform in_proj_weight, zero
    biases, out_proj a Linear (PyTorch's NonDynamicallyQuantizableLinear)."""
    sg.manual_seed(0)
    mha, ref = nn.MultiheadAttention(64, 4), torch.nn.MultiheadAttention(64, 4)
    shapes = {k: tuple(v.shape) for k, v in mha.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert list(shapes) == ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    assert isinstance(mha.out_proj, nn.Linear)
    assert type(mha.out_proj).__name__ == type(ref.out_proj).__name__
    w = mha.in_proj_weight.detach().numpy()
    bound = np.sqrt(6 / (64 + 3 * 64))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert w.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)
    assert (mha.in_proj_bias.detach().numpy() == 0).all()
    assert (mha.out_proj.bias.detach().numpy() == 0).all()
    assert np.abs(mha.out_proj.weight.detach().numpy()).max() <= 1 / np.sqrt(64)
    sep = nn.MultiheadAttention(8, 2, kdim=5, vdim=3, add_bias_kv=True)
    ref = torch.nn.MultiheadAttention(8, 2, kdim=5, vdim=3, add_bias_kv=True)
    assert list(sep.state_dict()) == list(ref.state_dict())
    assert sep.in_proj_weight is None and sep.k_proj_weight.shape == (8, 5)
    assert sep.bias_k.shape == (1, 1, 8)


def test_mha_errors():
    """PyTorch's refusals, as ShapeError/ConfigError/TypeError with both shapes named."""
    with pytest.raises(AssertionError):
        torch.nn.MultiheadAttention(10, 3)
    with pytest.raises(ShapeError, match="embed_dim must be divisible by num_heads"):
        nn.MultiheadAttention(10, 3)
    with pytest.raises(ConfigError, match="greater than 0"):
        nn.MultiheadAttention(0, 1)
    mha = nn.MultiheadAttention(E, H)
    x = sg.tensor(rand(L, N, E))
    with pytest.raises(ShapeError, match=r"2D attn_mask is \(4, 5\), but should be \(5, 5\)"):
        mha(x, x, x, attn_mask=sg.zeros(4, 5))
    with pytest.raises(ShapeError, match=r"3D attn_mask is \(3, 5, 5\), but should be \(6, 5, 5\)"):
        mha(x, x, x, attn_mask=sg.zeros(3, 5, 5))
    with pytest.raises(
        ShapeError, match=r"key_padding_mask of shape \(3, 5\) \(N, S\), but got \(2, 5\)"
    ):
        mha(x, x, x, key_padding_mask=sg.zeros(2, 5, dtype=sg.bool))
    with pytest.raises(ShapeError, match="expected `key_padding_mask` to be `None` or 2-D"):
        mha(x, x, x, key_padding_mask=sg.zeros(5, dtype=sg.bool))
    with pytest.raises(ShapeError, match="embedding dimension of 8, but got 4"):
        y = sg.zeros(L, N, 4)
        mha(y, y, y)
    with pytest.raises(ShapeError, match="unbatched 2D or batched 3D"):
        mha(sg.zeros(1, L, N, E), x, x)
    with pytest.raises(TypeError, match="only bool and floating types of attn_mask"):
        mha(x, x, x, attn_mask=sg.zeros(5, 5, dtype=sg.int64))
    with pytest.raises(ConfigError, match="Need attn_mask if specifying the is_causal hint"):
        mha(x, x, x, is_causal=True)
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        t = torch.zeros(L, N, E)
        torch.nn.MultiheadAttention(E, H)(t, t, t, is_causal=True)


def test_mismatched_mask_dtypes_warn_like_torch():
    """A boolean padding mask with a float attn_mask still works, with PyTorch's warning."""
    ref, mha = torch.nn.MultiheadAttention(E, H), nn.MultiheadAttention(E, H)
    x = rand(L, N, E)
    kwargs = {"attn_mask": rand(L, L), "key_padding_mask": padding(N, L, [5, 4, 3])}
    with pytest.warns(UserWarning, match="mismatched key_padding_mask and attn_mask"):
        compare(mha, ref, [x, x, x], kwargs)


# ---- Transformer layers --------------------------------------------------------------------
D, FF = 8, 16


def _act(activation, lib):
    return lib.GELU(approximate="tanh") if activation == "module" else activation


def _layout(x, batch_first):
    return x.transpose(1, 0, 2).copy() if batch_first else x


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu", "module"])
@pytest.mark.parametrize("mask", ["none", "causal", "padding", "both", "float"])
def test_encoder_layer_matches_torch(norm_first, batch_first, activation, mask):
    """Post- and pre-norm, both layouts, relu/gelu/a module, every mask; train mode, p=0."""
    kw = {"dropout": 0.0, "batch_first": batch_first, "norm_first": norm_first}
    ref = torch.nn.TransformerEncoderLayer(D, 2, FF, activation=_act(activation, torch.nn), **kw)
    layer = nn.TransformerEncoderLayer(D, 2, FF, activation=_act(activation, nn), **kw)
    src = _layout(rand(L, N, D), batch_first)
    masks = {
        "none": {},
        "causal": {"src_mask": causal(L), "is_causal": True},
        "padding": {"src_key_padding_mask": padding(N, L, [5, 2, 0])},  # one fully padded
        "both": {"src_mask": causal(L), "src_key_padding_mask": padding(N, L, [5, 3, 4])},
        "float": {"src_mask": rand(L, L, seed=5)},
    }[mask]
    compare(layer, ref, [src], masks)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_decoder_layer_matches_torch(norm_first, batch_first, activation):
    """Self-attention (causal + padding), cross-attention (memory padding), feed-forward."""
    kw = {"dropout": 0.0, "batch_first": batch_first, "norm_first": norm_first}
    ref = torch.nn.TransformerDecoderLayer(D, 2, FF, activation=activation, **kw)
    layer = nn.TransformerDecoderLayer(D, 2, FF, activation=activation, **kw)
    tgt, memory = (
        _layout(rand(L, N, D, seed=1), batch_first),
        _layout(rand(S, N, D, seed=2), batch_first),
    )
    kwargs = {
        "tgt_mask": causal(L),
        "tgt_key_padding_mask": padding(N, L, [5, 4, 3]),
        "memory_key_padding_mask": padding(N, S, [6, 2, 5]),
        "tgt_is_causal": False,
    }
    compare(layer, ref, [tgt, memory], kwargs)
    compare(layer, ref, [tgt, memory], {"memory_mask": rand(L, S, seed=3)})


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_and_decoder_stacks_match_torch(norm_first):
    """Two deep-copied layers and a final norm; keys ``layers.0.self_attn.in_proj_weight``..."""
    kw = {"dropout": 0.0, "norm_first": norm_first}
    ref = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(D, 2, FF, **kw), 2, torch.nn.LayerNorm(D),
        enable_nested_tensor=False,
    )  # fmt: skip
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, 2, FF, **kw), 2, nn.LayerNorm(D))
    assert "layers.1.self_attn.in_proj_weight" in enc.state_dict()
    src = rand(L, N, D)
    compare(enc, ref, [src], {"mask": causal(L), "src_key_padding_mask": padding(N, L, [5, 4, 2])})
    ref = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(D, 2, FF, **kw), 2)
    dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(D, 2, FF, **kw), 2)
    compare(dec, ref, [rand(L, N, D, seed=1), rand(S, N, D, seed=2)],
            {"tgt_mask": nn.Transformer.generate_square_subsequent_mask(L).numpy()})  # fmt: skip


def test_stacked_layers_are_independent_copies():
    """Each layer is a deep copy: equal starting weights, separate Parameters."""
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, 2, FF), 3)
    w = [layer.linear1.weight for layer in enc.layers]
    assert w[0] is not w[1] and len({id(p) for p in enc.parameters()}) == len(
        list(enc.parameters())
    )
    np.testing.assert_array_equal(w[0].detach().numpy(), w[2].detach().numpy())


@pytest.mark.filterwarnings("ignore:Support for mismatched")  # float tgt_mask, bool padding
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_matches_torch(batch_first, norm_first):
    """The whole model, every mask at once. 2 + 2 layers of float32 rounding compound: some
    gradients differ by a few 1e-6 in absolute terms, so atol is 1e-5 here (rtol stays)."""
    kw = {"dropout": 0.0, "batch_first": batch_first, "norm_first": norm_first}
    ref = torch.nn.Transformer(D, 2, 2, 2, FF, activation="gelu", **kw)
    model = nn.Transformer(D, 2, 2, 2, FF, activation="gelu", **kw)
    src, tgt = (
        _layout(rand(S, N, D, seed=1), batch_first),
        _layout(rand(L, N, D, seed=2), batch_first),
    )
    kwargs = {
        "tgt_mask": torch.nn.Transformer.generate_square_subsequent_mask(L).numpy(),
        "src_key_padding_mask": padding(N, S, [6, 3, 5]),
        "tgt_key_padding_mask": padding(N, L, [5, 5, 2]),
        "memory_key_padding_mask": padding(N, S, [6, 3, 5]),
    }
    compare(model, ref, [src, tgt], kwargs, atol=1e-5)


def test_transformer_eval_mode_matches_torch():
    """dropout=0.1 in eval mode is switched off; with grad enabled PyTorch runs its ordinary
    path, so every position matches."""
    ref, model = torch.nn.Transformer(D, 2, 1, 1, FF), nn.Transformer(D, 2, 1, 1, FF)
    ref.eval(), model.eval()
    kwargs = {"src_key_padding_mask": padding(N, S, [6, 3, 5]), "tgt_mask": causal(L)}
    compare(model, ref, [rand(S, N, D, seed=1), rand(L, N, D, seed=2)], kwargs, atol=1e-5)


def test_torch_fast_path_agrees_on_the_positions_it_defines():
    """Eval mode under no_grad with batch_first: PyTorch's encoder takes its fast path
    (nested tensors for the padding). Outputs agree on the real tokens; PyTorch's values at
    padded positions come from its nested-tensor path and are not compared."""
    ref = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(D, 2, FF, batch_first=True), 2
    )
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, 2, FF, batch_first=True), 2)
    load_from_torch(enc, ref)
    ref.eval(), enc.eval()
    src, kpm = rand(N, L, D), padding(N, L, [5, 3, 2])
    with torch.no_grad():
        expected = ref(torch.tensor(src), src_key_padding_mask=torch.tensor(kpm)).numpy()
    with sg.no_grad():
        out = enc(sg.tensor(src), src_key_padding_mask=sg.tensor(kpm)).numpy()
    real = ~kpm
    np.testing.assert_allclose(out[real], expected[real], rtol=1e-4, atol=1e-5)  # fused kernels


def test_train_mode_dropout_changes_the_output():
    """dropout=0.5 in train mode draws a new mask each call (seeded: reproducible)."""
    layer = nn.TransformerEncoderLayer(D, 2, FF, dropout=0.5)
    x = sg.tensor(rand(L, N, D))
    sg.manual_seed(1)
    a = layer(x).detach().numpy()
    sg.manual_seed(1)
    np.testing.assert_array_equal(a, layer(x).detach().numpy())
    assert np.abs(a - layer(x).detach().numpy()).max() > 1e-3
    layer.eval()
    np.testing.assert_array_equal(layer(x).detach().numpy(), layer(x).detach().numpy())


def test_generate_square_subsequent_mask_is_torchs():
    """0 on and below the diagonal, -inf above, float32 by default (a static method)."""
    for sz in (1, 4):
        mask = nn.Transformer.generate_square_subsequent_mask(sz)
        np.testing.assert_array_equal(
            mask.numpy(), torch.nn.Transformer.generate_square_subsequent_mask(sz).numpy()
        )
        assert mask.dtype == np.float32
    assert nn.Transformer.generate_square_subsequent_mask(3, dtype=sg.float64).dtype == np.float64


def test_causal_mask_is_detected():
    """is_causal=None: the encoder notices that the mask is the causal one (PyTorch's
    _detect_is_causal_mask) and gets the same numbers as with the explicit hint."""
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, 2, FF, dropout=0.0), 1)
    x = sg.tensor(rand(L, N, D))
    mask = nn.Transformer.generate_square_subsequent_mask(L)
    detected = enc(x, mask=mask).detach().numpy()
    np.testing.assert_array_equal(detected, enc(x, mask=mask, is_causal=True).detach().numpy())
    np.testing.assert_allclose(
        detected, enc(x, mask=mask, is_causal=False).detach().numpy(), atol=1e-6
    )


def test_transformer_state_dict_keys_and_init():
    """Keys in PyTorch's order; every matrix re-initialised xavier-uniform (by fan in/out)."""
    model, ref = nn.Transformer(D, 2, 2, 1, FF), torch.nn.Transformer(D, 2, 2, 1, FF)
    assert list(model.state_dict()) == list(ref.state_dict())
    w = model.encoder.layers[0].linear1.weight.detach().numpy()
    assert np.abs(w).max() <= np.sqrt(6 / (D + FF))


def test_transformer_errors():
    model = nn.Transformer(D, 2, 1, 1, FF)
    with pytest.raises(ShapeError, match="batch number of src and tgt must be equal"):
        model(sg.zeros(S, 2, D), sg.zeros(L, 3, D))
    with pytest.raises(ShapeError, match="feature number of src and tgt must be equal to d_model"):
        model(sg.zeros(S, 2, 4), sg.zeros(L, 2, 4))
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        torch.nn.TransformerEncoderLayer(D, 2, activation="tanh")
    with pytest.raises(ConfigError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(D, 2, activation="tanh")
    with pytest.raises(ShapeError, match="embed_dim must be divisible by num_heads"):
        nn.TransformerDecoderLayer(D, 3)


def test_reprs_read_like_torch():
    """print(model) shows the same tree as PyTorch's (names, sizes, the out_proj class)."""
    assert repr(nn.TransformerEncoderLayer(D, 2, FF)) == repr(
        torch.nn.TransformerEncoderLayer(D, 2, FF)
    )
    assert repr(nn.MultiheadAttention(D, 2)) == repr(torch.nn.MultiheadAttention(D, 2))
