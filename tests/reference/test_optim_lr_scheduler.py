"""Learning-rate schedules against ``torch.optim.lr_scheduler``, value for value.

A schedule is plain Python floats, so sparkgrad must produce *the same floats* as PyTorch,
not merely close ones: PyTorch's chainable schedules compute each lr from the previous one
(CosineAnnealingLR included, with its special case at the bottom of the cosine), and the
rounding of that recursion is part of the values. Every test runs past the interesting
points (milestones, ``T_max``, a second cosine period).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sparkgrad as sg
from sparkgrad.errors import ConfigError


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The reference runs are tiny: one torch thread saves thread start-up and contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SCHEDULES = {  # kw: last_epoch, when resuming
    "StepLR": lambda m, o, **kw: m.StepLR(o, step_size=3, gamma=0.5, **kw),
    "MultiStepLR": lambda m, o, **kw: m.MultiStepLR(o, milestones=[2, 5, 5, 11], gamma=0.3, **kw),
    "ExponentialLR": lambda m, o, **kw: m.ExponentialLR(o, gamma=0.9, **kw),
    "CosineAnnealingLR": lambda m, o, **kw: m.CosineAnnealingLR(o, T_max=7, eta_min=0.001, **kw),
    "CosineAnnealingLR-eta0": lambda m, o, **kw: m.CosineAnnealingLR(o, T_max=5, **kw),
    "LambdaLR": lambda m, o, **kw: m.LambdaLR(o, lr_lambda=lambda e: 1.0 / (1 + e) ** 0.5, **kw),
    "LambdaLR-per-group": lambda m, o, **kw: m.LambdaLR(
        o, lr_lambda=[lambda e: 0.95**e, lambda e: min(1.0, (e + 1) / 4)], **kw
    ),
}


def _optimizers(lrs=(0.1, 0.03)):
    """A sparkgrad and a torch SGD with one param group per lr."""
    ours = sg.optim.SGD(
        [{"params": [sg.tensor([1.0], requires_grad=True)], "lr": lr} for lr in lrs]
    )
    theirs = torch.optim.SGD(
        [{"params": [torch.tensor([1.0], requires_grad=True)], "lr": lr} for lr in lrs]
    )
    return ours, theirs


def _lr_trajectory(scheduler, optimizer, epochs):
    lrs = [scheduler.get_last_lr()]
    for _ in range(epochs):
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr())
        assert lrs[-1] == [g["lr"] for g in optimizer.param_groups]
    return lrs


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_equals_torch_value_for_value(name):
    ours, theirs = _optimizers()
    mine = SCHEDULES[name](sg.optim.lr_scheduler, ours)
    ref = SCHEDULES[name](torch.optim.lr_scheduler, theirs)
    assert _lr_trajectory(mine, ours, 30) == _lr_trajectory(ref, theirs, 30)
    assert mine.last_epoch == ref.last_epoch == 30


@settings(max_examples=25, deadline=None)
@given(
    t_max=st.integers(1, 12),
    eta_min=st.sampled_from([0.0, 1e-4, 0.02]),
    lr=st.floats(1e-3, 1.0),
    epochs=st.integers(1, 40),
)
def test_cosine_annealing_any_period_equals_torch(t_max, eta_min, lr, epochs):
    ours, theirs = _optimizers((lr,))
    mine = sg.optim.lr_scheduler.CosineAnnealingLR(ours, T_max=t_max, eta_min=eta_min)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(theirs, T_max=t_max, eta_min=eta_min)
    assert _lr_trajectory(mine, ours, epochs) == _lr_trajectory(ref, theirs, epochs)


def test_cosine_annealing_follows_the_closed_form_within_rounding():
    """The recursion is a way of computing eta_min + (base - eta_min)(1 + cos(pi t/T))/2."""
    ours, _ = _optimizers((0.5,))
    sched = sg.optim.lr_scheduler.CosineAnnealingLR(ours, T_max=6, eta_min=0.01)
    lrs = [lr[0] for lr in _lr_trajectory(sched, ours, 24)]
    closed = [0.01 + 0.49 * (1 + np.cos(np.pi * t / 6)) / 2 for t in range(25)]
    np.testing.assert_allclose(lrs, closed, rtol=1e-12, atol=1e-15)


def test_scheduler_drives_the_optimizer_like_torch():
    """SGD with momentum under a cosine schedule: the weights follow torch's."""
    rng = np.random.default_rng(0)
    init = rng.standard_normal((5, 4))
    w, tw = sg.tensor(init, requires_grad=True), torch.tensor(init, requires_grad=True)
    opt = sg.optim.SGD([w], lr=0.2, momentum=0.9)
    ref = torch.optim.SGD([tw], lr=0.2, momentum=0.9, foreach=False)
    sched = sg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(ref, T_max=8)
    for _ in range(20):
        w.grad = sg.tensor(np.tanh(w.array) + 0.5 * w.array)
        tw.grad = torch.tanh(tw.detach()) + 0.5 * tw.detach()
        opt.step()
        ref.step()
        sched.step()
        tsched.step()
    np.testing.assert_allclose(w.detach().numpy(), tw.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", SCHEDULES)
def test_resume_from_state_dicts_equals_uninterrupted(name):
    """Save optimizer + scheduler after 10 epochs (through JSON), resume, run 15 more."""
    straight, _ = _optimizers()
    uninterrupted = _lr_trajectory(SCHEDULES[name](sg.optim.lr_scheduler, straight), straight, 25)

    first, _ = _optimizers()
    sched = SCHEDULES[name](sg.optim.lr_scheduler, first)
    _lr_trajectory(sched, first, 10)
    saved_sched = json.loads(json.dumps(sched.state_dict()))
    saved_opt = first.state_dict()

    resumed, _ = _optimizers(lrs=(7.0, 7.0))  # wrong lrs on purpose: the state restores them
    sched2 = SCHEDULES[name](sg.optim.lr_scheduler, resumed)  # as in torch: scheduler first
    resumed.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    assert sched2.last_epoch == 10
    assert _lr_trajectory(sched2, resumed, 15) == uninterrupted[10:]


@pytest.mark.parametrize("name", SCHEDULES)
def test_constructing_with_last_epoch_equals_torch(name):
    """The old way to resume: pass ``last_epoch`` (the groups must carry ``initial_lr``)."""
    ours, theirs = _optimizers()
    for group, torch_group, base in zip(ours.param_groups, theirs.param_groups, (0.2, 0.05)):
        group["initial_lr"] = torch_group["initial_lr"] = base
    mine = SCHEDULES[name](sg.optim.lr_scheduler, ours, last_epoch=6)
    ref = SCHEDULES[name](torch.optim.lr_scheduler, theirs, last_epoch=6)
    assert _lr_trajectory(mine, ours, 20) == _lr_trajectory(ref, theirs, 20)


def test_resuming_with_last_epoch_needs_initial_lr():
    ours, _ = _optimizers()
    with pytest.raises(ConfigError, match="initial_lr"):
        sg.optim.lr_scheduler.StepLR(ours, step_size=2, last_epoch=4)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda o: sg.optim.lr_scheduler.StepLR(o, step_size=0), "step_size"),
        (lambda o: sg.optim.lr_scheduler.CosineAnnealingLR(o, T_max=0), "T_max"),
        (lambda o: sg.optim.lr_scheduler.LambdaLR(o, [lambda e: 1.0]), "2 lr_lambdas"),
        (lambda o: sg.optim.lr_scheduler.ExponentialLR("not an optimizer", 0.5), "Optimizer"),
    ],
)
def test_bad_scheduler_arguments_raise_config_errors(make, match):
    ours, _ = _optimizers()
    with pytest.raises(ConfigError, match=match):
        make(ours)
