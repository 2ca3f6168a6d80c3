"""Walkthrough 2.4 — training a tiny multi-layer perceptron, and matching PyTorch step for step.

Everything so far comes together: layers (walkthrough 2.2) compute logits,
cross-entropy (walkthrough 2.1) scores them, ``backward`` (walkthroughs 1.1-1.3) fills
every weight's ``.grad``, and an optimizer (walkthrough 2.3) moves the weights. Repeat,
and the loss goes down.

The problem is **XOR**: points in the square [-1, 1]², labelled 1 when both coordinates
have the same sign. No straight line separates the classes, so a single linear layer
cannot learn it — but two layers with a ReLU in between can bend the boundary. The
first two tests show both facts.

The third test is the strongest check in this track: started from the *same*
weights (PyTorch's, copied in) on the *same* data, sparkgrad's loss curve equals
PyTorch's at every step. Any mistake in any forward, backward or update would make
the curves part within a few steps.
"""

import numpy as np
import pytest
import torch

import sparkgrad as sg


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run PyTorch on one thread: these tiny matrices gain nothing from threads, and on a
    busy machine competing threads make each step many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def xor_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform in [-1, 1]² (float32) and labels 1 where x₀·x₁ > 0 (int64)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    return x, (x[:, 0] * x[:, 1] > 0).astype(np.int64)


def mlp(hidden: int = 16) -> sg.nn.Sequential:
    """2 inputs → hidden → hidden → 2 logits, ReLU in between."""
    return sg.nn.Sequential(
        sg.nn.Linear(2, hidden),
        sg.nn.ReLU(),
        sg.nn.Linear(hidden, hidden),
        sg.nn.ReLU(),
        sg.nn.Linear(hidden, 2),
    )


def train(model: sg.nn.Module, x: np.ndarray, y: np.ndarray, steps: int, lr: float) -> list:
    """Full-batch training with Adam; returns the loss of every step (before its update)."""
    opt = sg.optim.Adam(model.parameters(), lr=lr)
    loss_fn = sg.nn.CrossEntropyLoss()
    xs, ys = sg.tensor(x), sg.tensor(y)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(xs), ys)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def accuracy(model: sg.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of points whose largest logit is the true class (no graph needed)."""
    with sg.no_grad():
        predicted = model(sg.tensor(x)).argmax(dim=1).numpy()
    return float((predicted == y).mean())


def test_an_mlp_learns_xor():
    """200 Adam steps on 256 points: ≥ 95% accuracy on 1000 *new* points, loss far lower."""
    sg.manual_seed(0)
    model = mlp()
    x, y = xor_data(256, seed=1)
    losses = train(model, x, y, steps=200, lr=0.03)
    x_test, y_test = xor_data(1000, seed=2)

    assert losses[0] > 0.6  # about log 2 ≈ 0.69: the untrained model is guessing
    assert losses[-1] < 0.15
    assert accuracy(model, x_test, y_test) >= 0.95


def test_a_single_linear_layer_cannot_learn_xor():
    """Same data, same loop, no hidden layer: a straight line is little better than chance."""
    sg.manual_seed(0)
    model = sg.nn.Linear(2, 2)
    x, y = xor_data(256, seed=1)
    losses = train(model, x, y, steps=200, lr=0.03)
    assert losses[-1] > 0.6
    assert accuracy(model, *xor_data(1000, seed=2)) < 0.75


def _torch_mlp(hidden: int = 16) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Linear(2, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 2),
    )


@pytest.mark.parametrize(
    ("optimizer", "kwargs"),
    [("SGD", {"lr": 0.1, "momentum": 0.9}), ("Adam", {"lr": 0.01})],
)
def test_loss_curve_equals_pytorch_from_the_same_weights(optimizer: str, kwargs: dict):
    """100 steps on mini-batches of 32; the two loss curves agree to float32 precision.

    Same architecture, same state-dict names (``0.weight``, ``2.bias`` ...), so PyTorch's
    freshly initialised weights load straight into the sparkgrad model.
    """
    torch.manual_seed(0)
    tmodel = _torch_mlp()
    model = mlp()
    model.load_state_dict(tmodel.state_dict())
    assert list(model.state_dict()) == list(tmodel.state_dict())

    opt = getattr(sg.optim, optimizer)(model.parameters(), **kwargs)
    topt = getattr(torch.optim, optimizer)(tmodel.parameters(), **kwargs)
    loss_fn, tloss_fn = sg.nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    x, y = xor_data(320, seed=3)

    losses, tlosses = [], []
    for step in range(100):
        batch = slice(32 * (step % 10), 32 * (step % 10 + 1))
        opt.zero_grad()
        loss = loss_fn(model(sg.tensor(x[batch])), sg.tensor(y[batch]))
        loss.backward()
        opt.step()
        topt.zero_grad()
        tloss = tloss_fn(tmodel(torch.tensor(x[batch])), torch.tensor(y[batch]))
        tloss.backward()
        topt.step()
        losses.append(loss.item())
        tlosses.append(tloss.item())

    np.testing.assert_allclose(losses, tlosses, rtol=1e-5)
    assert losses[-1] < 0.5 * losses[0]  # and it did learn something along the way
    for name, tparam in tmodel.state_dict().items():
        np.testing.assert_allclose(
            model.state_dict()[name].numpy(), tparam.numpy(), rtol=1e-4, atol=1e-5, err_msg=name
        )
