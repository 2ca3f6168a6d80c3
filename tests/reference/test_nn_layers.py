"""Every layer of ``sparkgrad.nn`` against ``torch.nn``, forward *and* backward.

The recipe is the same for each layer, and it is the honest way to test a layer:

1. build the sparkgrad layer (seeded) and the PyTorch layer of the same configuration;
2. copy the sparkgrad weights into PyTorch through ``state_dict`` (the names must match);
3. feed both the same float32 input and compare the outputs;
4. backpropagate the same random upstream gradient and compare the gradient of the input
   and of every parameter.

PyTorch is the independent truth here: it shares no code with sparkgrad. Tolerances are
float32-tight (a few ulps of the values involved), so a wrong formula cannot pass.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sparkgrad as sg
from sparkgrad import nn

RTOL, ATOL = 1e-5, 1e-6


def copy_into_torch(sg_module: nn.Module, torch_module: torch.nn.Module) -> None:
    """Load sparkgrad's weights into the PyTorch module (strict: same names, same shapes)."""
    state = {k: torch.from_numpy(v.numpy().copy()) for k, v in sg_module.state_dict().items()}
    torch_module.load_state_dict(state, strict=True)


def compare_forward_backward(sg_module, torch_module, x: np.ndarray, input_grad: bool = True):
    """Run both modules on ``x``; assert equal outputs, input grads and parameter grads."""
    copy_into_torch(sg_module, torch_module)
    rng = np.random.default_rng(1)
    xs = sg.tensor(x, requires_grad=input_grad)
    xt = torch.tensor(x, requires_grad=input_grad)
    ys, yt = sg_module(xs), torch_module(xt)
    np.testing.assert_allclose(ys.detach().numpy(), yt.detach().numpy(), rtol=RTOL, atol=ATOL)

    upstream = rng.standard_normal(yt.shape).astype(np.float32)
    ys.backward(sg.tensor(upstream))
    yt.backward(torch.from_numpy(upstream))
    if input_grad:
        np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), rtol=RTOL, atol=ATOL)
    torch_grads = dict(torch_module.named_parameters())
    sg_params = dict(sg_module.named_parameters())
    assert sg_params.keys() == torch_grads.keys()
    for name, p in sg_params.items():
        np.testing.assert_allclose(
            p.grad.numpy(), torch_grads[name].grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=name
        )


def batch(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(bias):
    """y = x Wᵀ + b and its three gradients, including inputs with extra leading dims."""
    sg.manual_seed(0)
    compare_forward_backward(
        nn.Linear(7, 5, bias=bias), torch.nn.Linear(7, 5, bias=bias), batch(4, 7)
    )
    sg.manual_seed(0)
    compare_forward_backward(
        nn.Linear(7, 5, bias=bias), torch.nn.Linear(7, 5, bias=bias), batch(2, 3, 7)
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.ReLU(),
        lambda m: m.GELU(),
        lambda m: m.GELU(approximate="tanh"),
        lambda m: m.Tanh(),
        lambda m: m.Sigmoid(),
        lambda m: m.Softmax(dim=1),
        lambda m: m.Softmax(dim=0),
        lambda m: m.LogSoftmax(dim=-1),
        lambda m: m.Flatten(),
        lambda m: m.Flatten(0, 1),
        lambda m: m.Identity(),
    ],
    ids=[
        "relu",
        "gelu",
        "gelu_tanh",
        "tanh",
        "sigmoid",
        "softmax1",
        "softmax0",
        "logsoftmax",
        "flatten",
        "flatten01",
        "identity",
    ],  # fmt: skip
)
def test_parameter_free_layers_match_torch(make):
    """Activations and reshapes: same outputs and input gradients as PyTorch."""
    x = batch(3, 4, 5) * 3  # spread out, so saturating regions are exercised too
    compare_forward_backward(make(nn), make(torch.nn), x)


@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, False)])
def test_layer_norm_matches_torch(affine, bias):
    """Normalisation over the last two dims, with random (not 1/0) weight and bias."""
    sg.manual_seed(0)
    layer = nn.LayerNorm((4, 5), eps=1e-5, elementwise_affine=affine, bias=bias)
    ref = torch.nn.LayerNorm((4, 5), eps=1e-5, elementwise_affine=affine, bias=bias)
    with sg.no_grad():
        for p in layer.parameters():  # random affine parameters make the test sharper
            nn.init.normal_(p)
    compare_forward_backward(layer, ref, batch(3, 4, 5) * 2 + 1)


def test_layer_norm_initialised_to_identity_affine():
    """Default weight is all ones and bias all zeros, as in PyTorch."""
    layer = nn.LayerNorm(6)
    np.testing.assert_array_equal(layer.weight.detach().numpy(), np.ones(6, np.float32))
    np.testing.assert_array_equal(layer.bias.detach().numpy(), np.zeros(6, np.float32))


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch(padding_idx):
    """Row lookup; repeated ids accumulate gradient; the padding row gets none."""
    sg.manual_seed(0)
    layer = nn.Embedding(10, 4, padding_idx=padding_idx)
    ref = torch.nn.Embedding(10, 4, padding_idx=padding_idx)
    ids = np.array([[1, 2, 2, 9], [0, 9, 2, 5]])
    copy_into_torch(layer, ref)
    ys, yt = layer(sg.tensor(ids)), ref(torch.from_numpy(ids))
    np.testing.assert_array_equal(ys.detach().numpy(), yt.detach().numpy())
    upstream = batch(2, 4, 4, seed=3)
    ys.backward(sg.tensor(upstream))
    yt.backward(torch.from_numpy(upstream))
    np.testing.assert_allclose(
        layer.weight.grad.numpy(), ref.weight.grad.numpy(), rtol=RTOL, atol=ATOL
    )
    if padding_idx is not None:
        row = padding_idx % 10
        assert layer.padding_idx == ref.padding_idx == row
        assert not layer.weight.detach().numpy()[row].any(), "padding row must start at zero"


def test_mlp_matches_torch_end_to_end():
    """A whole model: Flatten → Linear → GELU → LayerNorm → Linear → Tanh → Linear."""
    sg.manual_seed(1)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(12, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 8),
        nn.Tanh(), nn.Linear(8, 3),
    )  # fmt: skip
    ref = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(12, 16), torch.nn.GELU(), torch.nn.LayerNorm(16),
        torch.nn.Linear(16, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3),
    )  # fmt: skip
    compare_forward_backward(model, ref, batch(5, 3, 4))


# ---- losses ---------------------------------------------------------------------------
def compare_loss(sg_loss, torch_loss, logits: np.ndarray, target: np.ndarray) -> None:
    """Loss value and gradient w.r.t. the logits, against PyTorch."""
    xs = sg.tensor(logits, requires_grad=True)
    xt = torch.tensor(logits, requires_grad=True)
    ts = sg.tensor(target)
    tt = torch.from_numpy(target)
    ls, lt = sg_loss(xs, ts), torch_loss(xt, tt)
    np.testing.assert_allclose(ls.detach().numpy(), lt.detach().numpy(), rtol=RTOL, atol=ATOL)
    upstream = np.random.default_rng(7).standard_normal(lt.shape).astype(np.float32)
    ls.backward(sg.tensor(upstream))
    lt.backward(torch.from_numpy(upstream))
    np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_loss_matches_torch(reduction, smoothing):
    """Logits (N, C) with integer targets, one of them ignored."""
    target = np.array([0, 3, -100, 2, 1, 3])
    kwargs = dict(reduction=reduction, ignore_index=-100, label_smoothing=smoothing)
    compare_loss(
        nn.CrossEntropyLoss(**kwargs), torch.nn.CrossEntropyLoss(**kwargs), batch(6, 4) * 4, target
    )


def test_cross_entropy_loss_spatial_targets_match_torch():
    """Logits (N, C, L) with targets (N, L), the layout of per-token classification."""
    target = np.random.default_rng(2).integers(0, 5, size=(3, 7))
    compare_loss(nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss(), batch(3, 5, 7), target)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_after_log_softmax_matches_torch(reduction):
    """NLLLoss consumes log-probabilities; LogSoftmax + NLLLoss equals CrossEntropyLoss."""
    target = np.array([1, 0, 4, 4, 2])
    sg_pipeline = nn.Sequential(nn.LogSoftmax(dim=1))
    torch_pipeline = torch.nn.Sequential(torch.nn.LogSoftmax(dim=1))
    compare_loss(
        lambda x, t: nn.NLLLoss(reduction=reduction)(sg_pipeline(x), t),
        lambda x, t: torch.nn.NLLLoss(reduction=reduction)(torch_pipeline(x), t),
        batch(5, 5),
        target,
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_torch(reduction):
    compare_loss(
        nn.MSELoss(reduction=reduction),
        torch.nn.MSELoss(reduction=reduction),
        batch(4, 3),
        batch(4, 3, seed=9),
    )


def test_loss_constructors_reject_what_they_cannot_do():
    """Unsupported options fail loudly at construction instead of being ignored."""
    from sparkgrad.errors import ConfigError

    with pytest.raises(ConfigError, match="reduction"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ConfigError, match="label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ConfigError):
        nn.MSELoss(size_average=True)


# ---- dropout ----------------------------------------------------------------------------
def test_dropout_train_mode_drops_and_rescales():
    """In training, each element is 0 or x/(1-p); about p of them are 0; grads use the mask."""
    p = 0.3
    layer = nn.Dropout(p)
    sg.manual_seed(0)
    x = sg.tensor(np.full((200, 500), 2.0, np.float32), requires_grad=True)
    y = layer(x)
    out = y.detach().numpy()
    kept = out != 0
    np.testing.assert_allclose(out[kept], 2.0 / (1 - p), rtol=1e-6)
    # 100,000 Bernoulli(0.3) draws: the standard error of the fraction is 0.0014
    assert abs((~kept).mean() - p) < 0.01
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / (1 - p), rtol=1e-6)


def test_dropout_eval_mode_is_identity_and_seeded_masks_repeat():
    """eval() switches dropout off; the same seed draws the same mask again."""
    layer = nn.Dropout(0.5)
    x = sg.randn(50, 40)
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    layer.train()
    sg.manual_seed(5)
    first = layer(x).numpy()
    sg.manual_seed(5)
    np.testing.assert_array_equal(layer(x).numpy(), first)
    assert not np.array_equal(first, x.numpy())
