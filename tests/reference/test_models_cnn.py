"""``sparkgrad.models.MnistCNN`` against PyTorch's MNIST example network, weight for weight.

The torch side is ``Net`` from ``pytorch/examples`` (``mnist/main.py``), written out here.
With the state dict copied (either way) both must give the same log-probabilities and,
through ``nll_loss``, the same gradient for every parameter. Dropout masks cannot match
between two generators, so the comparison runs in eval mode.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from torch import nn

import sparkgrad as sg
import sparkgrad.autodiff.functional as F
from sparkgrad.errors import ShapeError
from sparkgrad.models import MnistCNN, build_cnn


class Net(nn.Module):
    """PyTorch's examples/mnist network, verbatim."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = TF.relu(x)
        x = self.conv2(x)
        x = TF.relu(x)
        x = TF.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = TF.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        return TF.log_softmax(x, dim=1)


def _images(n, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 2.5, (n, 1, 28, 28)).astype(np.float32)


def _to_torch(model):
    return {k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()}


def test_state_dict_keys_and_shapes_are_torchs():
    model, net = build_cnn(0), Net()
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: tuple(v.shape) for k, v in net.state_dict().items()
    }
    assert list(model.state_dict()) == list(net.state_dict())


def test_logits_and_gradients_equal_torch_with_copied_weights():
    """sparkgrad weights into torch's Net: same log-probabilities, same parameter gradients.

    Tolerance: rtol 1e-5 on the log-probabilities (~2.3); on the gradients (|g| ≤ 0.2)
    rtol 1e-4 and atol 1e-6: conv weight gradients sum N·26·26 products in float32 in
    another order (the differences seen are ~3e-8).
    """
    model, net = build_cnn(3), Net()
    net.load_state_dict(_to_torch(model))
    model.eval()
    net.eval()
    xv, yv = _images(16, 1), np.random.default_rng(2).integers(0, 10, 16)
    out, t_out = model(sg.tensor(xv)), net(torch.tensor(xv))
    np.testing.assert_allclose(out.detach().numpy(), t_out.detach().numpy(), rtol=1e-5, atol=1e-6)
    F.nll_loss(out, sg.tensor(yv)).backward()
    TF.nll_loss(t_out, torch.tensor(yv)).backward()
    params = dict(model.named_parameters())
    for name, p in net.named_parameters():
        np.testing.assert_allclose(
            params[name].grad.numpy(), p.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name
        )


def test_torch_weights_load_into_mnist_cnn():
    """The other way: a torch-initialised Net's state_dict loads unchanged and agrees."""
    torch.manual_seed(0)
    net = Net().eval()
    model = MnistCNN().eval()
    model.load_state_dict(net.state_dict())
    xv = _images(4, 5)
    np.testing.assert_allclose(
        model(sg.tensor(xv)).detach().numpy(),
        net(torch.tensor(xv)).detach().numpy(),
        rtol=1e-5,
        atol=1e-5,
    )


def test_flat_input_is_reshaped_and_wrong_shapes_are_refused():
    """(N, 784) rows, as load_mnist gives them, mean the same images as (N, 1, 28, 28)."""
    model = build_cnn(0).eval()
    xv = _images(3, 6)
    np.testing.assert_array_equal(
        model(sg.tensor(xv.reshape(3, 784))).detach().numpy(),
        model(sg.tensor(xv)).detach().numpy(),
    )
    with pytest.raises(ShapeError, match=r"\(N, 1, 28, 28\) or flat \(N, 784\)"):
        model(sg.ones(3, 28, 28))


def test_build_cnn_is_seeded_and_train_mode_drops():
    """Same seed, same weights; train mode applies dropout, yet outputs stay log-probabilities."""
    a, b, c = build_cnn(7), build_cnn(7), build_cnn(8)
    for (k, va), vb, vc in zip(
        a.state_dict().items(), b.state_dict().values(), c.state_dict().values()
    ):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=k)
        assert not np.array_equal(va.numpy(), vc.numpy()), k
    x = sg.tensor(_images(8, 7))
    train_out = a.train()(x).detach().numpy()
    eval_out = a.eval()(x).detach().numpy()
    assert not np.allclose(train_out, eval_out)
    np.testing.assert_allclose(np.exp(train_out).sum(axis=1), 1.0, rtol=1e-5)
