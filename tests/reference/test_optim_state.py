"""Optimizer bookkeeping: state dicts, zero_grad, groups, validation, in-place steps.

A training run that stops and resumes must land on the same weights as one that never
stopped; a state dict written by PyTorch must load here and continue like PyTorch. The
truth for every check is torch.optim or an uninterrupted sparkgrad run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sparkgrad as sg
from sparkgrad.errors import ConfigError


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The reference runs are tiny: one torch thread saves thread start-up and contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SHAPES = [(4, 3), (3,)]
OPTIMIZERS = [
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
    ("AdamW", dict(lr=0.01)),
]


def _grad(p):
    """Gradient field of the test problem: depends on the current weights."""
    return 1.5 * (p - 0.3) + np.sin(p) / 4


def _params(lib, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in SHAPES]  # float64: round trips must be exact
    if lib == "torch":
        return [torch.tensor(a, requires_grad=True) for a in arrays]
    return [sg.tensor(a, requires_grad=True) for a in arrays]


def _steps(opt, params, n):
    for _ in range(n):
        for p in params:
            if isinstance(p, torch.Tensor):
                p.grad = torch.from_numpy(_grad(p.detach().numpy()))
            else:
                p.grad = sg.tensor(_grad(p.array))
        opt.step()


def _values(params):
    return [np.array(p.detach().numpy()) for p in params]


@pytest.mark.parametrize("name,kw", OPTIMIZERS)
def test_resume_from_state_dict_equals_uninterrupted_run(name, kw):
    straight = _params("sg")
    opt = getattr(sg.optim, name)(straight, **kw)
    _steps(opt, straight, 20)

    first = _params("sg")
    opt1 = getattr(sg.optim, name)(first, **kw)
    _steps(opt1, first, 10)
    saved = opt1.state_dict()
    resumed = [sg.tensor(v, requires_grad=True) for v in _values(first)]
    opt2 = getattr(sg.optim, name)(resumed, lr=123.0)  # hyper-parameters come from the state
    opt2.load_state_dict(saved)
    _steps(opt1, first, 10)  # the original keeps going: the copy must not share its buffers
    _steps(opt2, resumed, 10)
    for a, b, c in zip(_values(straight), _values(resumed), _values(first)):
        np.testing.assert_array_equal(b, a)
        np.testing.assert_array_equal(c, a)


@pytest.mark.parametrize("name,kw", OPTIMIZERS)
def test_state_dict_has_torchs_layout_and_values(name, kw):
    ours, theirs = _params("sg"), _params("torch")
    opt = getattr(sg.optim, name)(ours, **kw)
    ref = getattr(torch.optim, name)(theirs, foreach=False, **kw)
    _steps(opt, ours, 3)
    _steps(ref, theirs, 3)
    mine, torchs = opt.state_dict(), ref.state_dict()
    assert mine["state"].keys() == torchs["state"].keys()
    for index, buffers in torchs["state"].items():
        assert mine["state"][index].keys() == buffers.keys()
        for key, value in buffers.items():
            np.testing.assert_allclose(
                mine["state"][index][key].numpy(), value.numpy(), rtol=1e-12, err_msg=key
            )
    for group, torch_group in zip(mine["param_groups"], torchs["param_groups"]):
        assert group["params"] == torch_group["params"]
        for key, value in group.items():
            assert torch_group[key] == value, key


@pytest.mark.parametrize("name,kw", OPTIMIZERS)
def test_torch_state_dict_loads_and_continues_like_torch(name, kw):
    """A checkpoint from PyTorch (tensors, int keys) resumes here exactly as in PyTorch."""
    theirs = _params("torch")
    ref = getattr(torch.optim, name)(theirs, foreach=False, **kw)
    _steps(ref, theirs, 5)
    ours = [sg.tensor(v, requires_grad=True) for v in _values(theirs)]
    opt = getattr(sg.optim, name)(ours)
    opt.load_state_dict(ref.state_dict())
    _steps(ref, theirs, 5)
    _steps(opt, ours, 5)
    for a, b in zip(_values(ours), _values(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_state_dict_survives_json_and_plain_arrays():
    """Groups through JSON (string keys, lists), buffers as NumPy arrays (as safetensors)."""
    params = _params("sg")
    opt = sg.optim.Adam(params, lr=0.01)
    _steps(opt, params, 4)
    sd = opt.state_dict()
    groups = json.loads(json.dumps(sd["param_groups"]))
    state = {str(i): {k: v.numpy() for k, v in s.items()} for i, s in sd["state"].items()}
    copy = [sg.tensor(v, requires_grad=True) for v in _values(params)]
    opt2 = sg.optim.Adam(copy)
    opt2.load_state_dict({"state": state, "param_groups": groups})
    assert opt2.state[copy[0]]["step"].dtype == np.float32
    _steps(opt, params, 3)
    _steps(opt2, copy, 3)
    for a, b in zip(_values(params), _values(copy)):
        np.testing.assert_array_equal(a, b)


def test_load_state_dict_rejects_a_mismatch():
    params = _params("sg")
    opt = sg.optim.SGD(params, lr=0.1, momentum=0.9)
    _steps(opt, params, 1)
    sd = opt.state_dict()
    with pytest.raises(ConfigError, match="2 parameters in the loaded state dict and 1"):
        sg.optim.SGD(params[:1], lr=0.1).load_state_dict(
            {"state": {}, "param_groups": [dict(sd["param_groups"][0], params=[0, 1])]}
        )
    swapped = [sg.tensor(v.T.copy(), requires_grad=True) for v in _values(params)]
    with pytest.raises(ConfigError, match="shape"):
        sg.optim.SGD(swapped, lr=0.1).load_state_dict(sd)
    with pytest.raises(ConfigError, match="parameter groups"):
        sg.optim.SGD(params, lr=0.1).load_state_dict({"state": {}, "param_groups": []})


def test_step_updates_in_place_and_leaves_grad_alone():
    params = _params("sg")
    opt = sg.optim.Adam(params, lr=0.01, weight_decay=0.1, maximize=True)
    arrays = [p.array for p in params]
    _steps(opt, params, 1)
    buffers = {k: v.array for k, v in opt.state[params[0]].items()}
    grads = [p.grad.array.copy() for p in params]
    opt.step()
    assert all(p.array is a for p, a in zip(params, arrays)), "weights must change in place"
    assert all(opt.state[params[0]][k].array is v for k, v in buffers.items())
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad.array, g)


def test_zero_grad_like_torch():
    params = _params("sg")
    opt = sg.optim.SGD(params, lr=0.1)
    _steps(opt, params, 1)
    grad_array = params[0].grad.array
    opt.zero_grad(set_to_none=False)
    assert params[0].grad.array is grad_array and not grad_array.any()
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    opt.step()  # parameters without a gradient are skipped


def test_closure_is_evaluated_with_grad_enabled():
    w = sg.tensor([1.0, -2.0], requires_grad=True)
    opt = sg.optim.SGD([w], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with sg.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 5.0
    np.testing.assert_array_equal(w.detach().numpy(), np.zeros(2, np.float32))


def test_add_param_group_fills_defaults():
    a, b = _params("sg")
    opt = sg.optim.Adam([a], lr=0.01, betas=(0.8, 0.9))
    opt.add_param_group({"params": b, "lr": 0.1})
    assert opt.param_groups[1]["params"] == [b]
    assert opt.param_groups[1]["lr"] == 0.1 and opt.param_groups[1]["betas"] == (0.8, 0.9)
    with pytest.raises(ConfigError, match="more than one|twice"):
        opt.add_param_group({"params": [a]})


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: sg.optim.SGD(p, lr=-0.1), "lr >= 0"),
        (lambda p: sg.optim.SGD(p, momentum=-1), "momentum >= 0"),
        (lambda p: sg.optim.SGD(p, weight_decay=-1), "weight_decay >= 0"),
        (lambda p: sg.optim.SGD(p, nesterov=True), "Nesterov"),
        (lambda p: sg.optim.SGD(p, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
        (lambda p: sg.optim.Adam(p, lr=-1e-3), "lr >= 0"),
        (lambda p: sg.optim.Adam(p, eps=-1.0), "eps >= 0"),
        (lambda p: sg.optim.Adam(p, betas=(1.0, 0.999)), r"betas\[0\]"),
        (lambda p: sg.optim.AdamW(p, betas=(0.9, -0.1)), r"betas\[1\]"),
        (lambda p: sg.optim.SGD([{"params": p, "lr": -1.0}]), "lr >= 0"),
        (lambda p: sg.optim.SGD([], lr=0.1), "empty"),
        (lambda p: sg.optim.SGD(p[0], lr=0.1), "single Tensor"),
        (lambda p: sg.optim.SGD([np.zeros(3)], lr=0.1), "only optimize Tensors"),
        (lambda p: sg.optim.SGD([p[0] * 2], lr=0.1), "non-leaf"),
    ],
)
def test_bad_arguments_raise_clear_errors(make, match):
    """Each bad value torch rejects is rejected here too, as a ValueError (ConfigError)."""
    with pytest.raises(ValueError, match=match) as info:
        make(_params("sg"))
    assert isinstance(info.value, ConfigError)
