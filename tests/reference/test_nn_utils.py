"""Gradient clipping and flat parameter vectors, against ``torch.nn.utils``.

The strongest check is a *trajectory*: train the same model in sparkgrad and PyTorch for
several SGD steps with clipping and compare the reported norms and the weights after every
step. A learning rate and a ``max_norm`` are chosen so that clipping is active on most
steps (and inactive on some), so both branches of ``min(1, max_norm / norm)`` are used.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import sparkgrad as sg
from sparkgrad import nn
from sparkgrad.errors import GradError, ShapeError


def twin_models():
    """The same MLP in both libraries, with identical weights."""
    sg.manual_seed(0)
    ours = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 4))
    theirs = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    theirs.load_state_dict(
        {k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()}
    )
    return ours, theirs


# max_norm sits inside the range of this run's gradient norms for each norm type
@pytest.mark.parametrize(
    "norm_type,max_norm", [(2.0, 0.42), (1.0, 4.5), (math.inf, 0.105), (3.0, 0.21)]
)
def test_clip_grad_norm_trajectory_matches_torch(norm_type, max_norm):
    ours, theirs = twin_models()
    rng = np.random.default_rng(0)
    lr, clipped_steps = 0.5, 0
    for _ in range(8):
        x = rng.standard_normal((32, 10)).astype(np.float32)
        y = rng.integers(0, 4, size=32)
        loss_s = nn.CrossEntropyLoss()(ours(sg.tensor(x)), sg.tensor(y))
        loss_t = torch.nn.CrossEntropyLoss()(theirs(torch.from_numpy(x)), torch.from_numpy(y))
        ours.zero_grad()
        theirs.zero_grad()
        loss_s.backward()
        loss_t.backward()
        norm_s = nn.utils.clip_grad_norm_(ours.parameters(), max_norm, norm_type=norm_type)
        norm_t = torch.nn.utils.clip_grad_norm_(theirs.parameters(), max_norm, norm_type=norm_type)
        assert isinstance(norm_s, sg.Tensor) and norm_s.shape == ()
        np.testing.assert_allclose(norm_s.item(), norm_t.item(), rtol=1e-5)
        clipped_steps += norm_t.item() > max_norm
        with sg.no_grad(), torch.no_grad():
            for p in ours.parameters():
                p.sub_(p.grad, alpha=lr)
            for p in theirs.parameters():
                p.sub_(p.grad, alpha=lr)
        for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
            np.testing.assert_allclose(
                p.detach().numpy(), q.detach().numpy(), rtol=1e-5, atol=2e-6, err_msg=name
            )
    assert 0 < clipped_steps < 8, "the test must exercise both clipped and unclipped steps"


def test_clip_grad_norm_leaves_small_gradients_alone_and_handles_no_grads():
    p = nn.Parameter(sg.tensor([3.0, 4.0]))
    p.grad = sg.tensor([0.3, 0.4])
    total = nn.utils.clip_grad_norm_([p], max_norm=1.0)
    assert total.item() == pytest.approx(0.5)
    np.testing.assert_allclose(p.grad.numpy(), [0.3, 0.4], rtol=1e-6)
    nn.utils.clip_grad_norm_(p, max_norm=0.1)  # a single tensor is accepted too
    np.testing.assert_allclose(np.linalg.norm(p.grad.numpy()), 0.1, rtol=1e-5)
    assert nn.utils.clip_grad_norm_([nn.Parameter(sg.zeros(2))], 1.0).item() == 0.0


def test_clip_grad_norm_nonfinite():
    p = nn.Parameter(sg.zeros(2))
    p.grad = sg.tensor([np.inf, 1.0])
    with pytest.raises(GradError, match="non-finite"):
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert math.isinf(nn.utils.clip_grad_norm_([p], 1.0).item())


def test_clip_grad_value_matches_torch():
    g = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    p, q = nn.Parameter(sg.zeros(5, 6)), torch.nn.Parameter(torch.zeros(5, 6))
    p.grad, q.grad = sg.tensor(g), torch.from_numpy(g.copy())
    nn.utils.clip_grad_value_([p], 0.5)
    torch.nn.utils.clip_grad_value_([q], 0.5)
    np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())


def test_parameters_to_vector_and_back_match_torch():
    ours, theirs = twin_models()
    vec_s = nn.utils.parameters_to_vector(ours.parameters())
    vec_t = torch.nn.utils.parameters_to_vector(theirs.parameters())
    np.testing.assert_array_equal(vec_s.detach().numpy(), vec_t.detach().numpy())
    new = np.arange(vec_s.numel(), dtype=np.float32)
    nn.utils.vector_to_parameters(sg.tensor(new), ours.parameters())
    torch.nn.utils.vector_to_parameters(torch.from_numpy(new), theirs.parameters())
    for p, q in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
    with pytest.raises(ShapeError, match="elements"):
        nn.utils.vector_to_parameters(sg.zeros(3), ours.parameters())
