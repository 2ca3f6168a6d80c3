"""More optimizers: Adadelta, RMSprop, Adagrad against ``torch.optim``, step by step.

Every optimizer (SGD, Adam and AdamW too) runs 20 steps on 0-dim, ``(1,)``-shaped, 2-D
and longer parameters, and its weights are compared with torch's after *every* step: a
0-dim parameter is where NumPy likes to hand back a scalar instead of an array, and an
update that lands on a copy is silently lost (SGD's momentum once dropped gradients so).

Three levels of agreement:

- **order of operations**, bit for bit. PyTorch's CPU ``sqrt`` (MKL's vector maths) is
  not correctly rounded: one float32 result in six is one ulp away from NumPy's (which
  is). With ``torch.sqrt`` swapped into our updates, every optimizer here gives torch's
  weights exactly, so every other operation is PyTorch's, in PyTorch's order and rounding
  (``axpy``, ``lerp``, ``addcmul`` fused as in :mod:`sparkgrad.autodiff.optim.fused`).
- **as shipped**, with NumPy's sqrt: float32 within rtol 1e-6 / atol 1e-7 after every step
  (SGD is bit-identical: it has no square root), float64 within 1e-12.
- **bookkeeping**: state dicts in torch's layout that load both ways, torch's validation
  messages, and the lr schedulers driving the new optimizers as torch's drive torch's.
"""

from __future__ import annotations

import types

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


# (optimizer name, keyword arguments): each option of each optimizer, with weight decay
# and maximize variants
CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.5, dampening=0.3, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True, maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1)),
    ("Adadelta", dict(weight_decay=0.05, maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(momentum=0.9)),
    ("RMSprop", dict(centered=True)),
    ("RMSprop", dict(lr=0.005, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.5, centered=True)),
    ("RMSprop", dict(weight_decay=0.1, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.1)),
    ("Adagrad", dict(lr=0.1, eps=1e-6, maximize=True)),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, kw in CONFIGS]
NEW = [(n, kw) for n, kw in CONFIGS if n in ("Adadelta", "RMSprop", "Adagrad")]
NEW_IDS = [i for i, (n, _) in zip(IDS, CONFIGS) if n in ("Adadelta", "RMSprop", "Adagrad")]
# 0-dim, one element, 2-D, and 153 elements: past the SIMD width and a BLAS block of 64
SHAPES = [(), (1,), (4, 3), (17, 9)]
SQRT_USERS = ["adam", "adadelta", "rmsprop", "adagrad"]


def _problem(dtype, seed=0):
    """Initial weights, and a gradient field g(p) = c (p - t) + sin(p) / 4 for each weight."""
    rng = np.random.default_rng(seed)
    init = [np.asarray(rng.standard_normal(s), dtype) for s in SHAPES]
    curv = [np.asarray(rng.uniform(0.5, 2.0, s), dtype) for s in SHAPES]
    target = [np.asarray(rng.standard_normal(s), dtype) for s in SHAPES]

    def grad(i, p):
        return np.asarray(curv[i] * (p - target[i]) + np.sin(p) / 4, dtype)  # 0-d stays 0-d

    return init, grad


def trajectories(name, kw, dtype=np.float32, device="cpu", steps=20, seed=0):
    """Yield (step, our weights, torch's weights) after every step of both optimizers.

    With ``maximize`` the gradient field is negated (we climb -f), so that both runs
    still converge instead of racing apart, where any rounding difference would grow.
    """
    init, field = _problem(dtype, seed)
    sign = -1 if kw.get("maximize") else 1
    ours = [sg.tensor(a, device=device, requires_grad=True) for a in init]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]
    opt = getattr(sg.optim, name)(ours, **kw)
    ref = getattr(torch.optim, name)(theirs, foreach=False, **kw)
    for step in range(1, steps + 1):
        for i, (p, t) in enumerate(zip(ours, theirs)):
            p.grad = sg.tensor(np.asarray(sign * field(i, p.detach().cpu().numpy())), device=device)
            t.grad = torch.from_numpy(np.asarray(sign * field(i, t.detach().numpy())))
        opt.step()
        ref.step()
        yield step, ours, theirs


def _torch_sqrt(x, out=None):
    """torch's CPU sqrt (MKL, within 1 ulp but not correctly rounded), NumPy's signature."""
    result = torch.sqrt(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    if out is None:
        return result
    out[...] = result
    return out


@pytest.fixture
def torchs_sqrt(monkeypatch):
    """Every optimizer module sees NumPy with torch's sqrt in it."""
    numpy_with_torchs_sqrt = types.SimpleNamespace(
        **{k: getattr(np, k) for k in dir(np) if not k.startswith("__")}
    )
    numpy_with_torchs_sqrt.sqrt = _torch_sqrt
    for module in SQRT_USERS:
        monkeypatch.setattr(
            f"sparkgrad.autodiff.optim.{module}.array_module", lambda a: numpy_with_torchs_sqrt
        )


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_every_step_is_bit_identical_with_torchs_sqrt(name, kw, torchs_sqrt):
    """Same operations, same order, same rounding as ``_single_tensor_*`` in torch.optim."""
    for step, ours, theirs in trajectories(name, kw):
        for p, t, shape in zip(ours, theirs, SHAPES):
            assert p.array.shape == shape and isinstance(p.array, np.ndarray)
            np.testing.assert_array_equal(
                p.detach().numpy(), t.detach().numpy(), err_msg=f"shape {shape}, step {step}"
            )


def test_torchs_sqrt_is_not_numpys():
    """Why the test above swaps sqrt: torch's rounds differently, NumPy's is correct."""
    x = np.random.default_rng(0).uniform(0.1, 10.0, 4096).astype(np.float32)
    exact = np.sqrt(x.astype(np.float64))
    theirs, ours = _torch_sqrt(x), np.sqrt(x)
    np.testing.assert_array_equal(ours, exact.astype(np.float32))  # correctly rounded
    assert (theirs != ours).mean() > 0.01  # measured: about 1 in 6
    np.testing.assert_allclose(theirs, exact, rtol=1.2e-7)  # within one ulp


# RMSprop with momentum 0.9 reaches 2.4e-7 at a weight near 0.1 (2 ulps of its largest
# values): torch's 1-ulp sqrt differences, carried by the momentum. Both float32 runs are
# then 6.4e-7 from the float64 trajectory, so 2 ulps between them is float32's own noise.
LOOSER_ATOL = {("RMSprop", (("momentum", 0.9),)): 3e-7}


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_step_matches_torch(name, kw, dtype, device, assert_close):
    """rtol 1e-6 / atol 1e-7 in float32 (one exception, above), 1e-12 in float64."""
    if dtype == np.float32:
        tol = dict(rtol=1e-6, atol=LOOSER_ATOL.get((name, tuple(kw.items())), 1e-7))
    else:
        tol = dict(rtol=1e-12, atol=1e-12)
    for step, ours, theirs in trajectories(name, kw, dtype, device):
        for p, t, shape in zip(ours, theirs, SHAPES):
            assert p.shape == shape
            assert_close(p, t, what=f"shape {shape}, step {step}", **tol)


@pytest.mark.parametrize("name,kw", [c for c in CONFIGS if c[0] == "SGD"])
def test_sgd_every_step_is_bit_identical_on_0dim_and_1_element(name, kw):
    """SGD has no square root: bit for bit as shipped, 0-dim and (1,) parameters included."""
    for step, ours, theirs in trajectories(name, kw):
        for p, t in zip(ours, theirs):
            np.testing.assert_array_equal(p.detach().numpy(), t.detach().numpy(), f"step {step}")


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_fallback_updates_match_torch(name, kw, monkeypatch, assert_close):
    """Without SciPy's axpy or the float64 addcmul (as on CuPy): two array ops per fused one.

    Each rounds once more than torch, which float32 shows (a weight near 0 that is a
    difference of two larger numbers moves by ulps of the larger ones); float64 checks
    that the maths of the fallback is the same.
    """
    monkeypatch.setattr("sparkgrad.autodiff.optim.fused._AXPY", {})
    monkeypatch.setattr("sparkgrad.autodiff.optim.fused._flat_views", lambda *a: None)
    for step, ours, theirs in trajectories(name, kw, np.float64):
        for p, t in zip(ours, theirs):
            assert_close(p, t, rtol=1e-12, atol=1e-12, what=f"step {step}")


@pytest.mark.parametrize("name,kw", NEW, ids=NEW_IDS)
def test_param_groups_with_their_own_settings_match_torch(name, kw, assert_close):
    """Two groups, the second with its own lr and weight decay."""
    init, field = _problem(np.float64)
    sign = -1 if kw.get("maximize") else 1
    ours = [sg.tensor(a, requires_grad=True) for a in init]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]

    def groups(ps):
        return [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.02, "weight_decay": 0.2}]

    opt = getattr(sg.optim, name)(groups(ours), **kw)
    ref = getattr(torch.optim, name)(groups(theirs), foreach=False, **kw)
    for _ in range(10):
        for i, (p, t) in enumerate(zip(ours, theirs)):
            p.grad = sg.tensor(np.asarray(sign * field(i, p.detach().numpy())))
            t.grad = torch.from_numpy(np.asarray(sign * field(i, t.detach().numpy())))
        opt.step()
        ref.step()
    for p, t in zip(ours, theirs):
        assert_close(p, t, rtol=1e-12, atol=1e-12)


def test_parameters_without_gradient_are_left_alone():
    """A parameter whose grad is None keeps its value and gets no state (torch's rule)."""
    for name in ("Adadelta", "RMSprop"):
        a, b = sg.tensor([1.0, 2.0], requires_grad=True), sg.tensor(3.0, requires_grad=True)
        opt = getattr(sg.optim, name)([a, b])
        a.grad = sg.tensor([0.5, -0.5])
        opt.step()
        assert b.item() == 3.0 and b not in opt.state and a in opt.state


FAST = settings(max_examples=15, deadline=None)


@FAST
@given(
    lr=st.floats(1e-3, 1.0),
    rho=st.floats(0.0, 1.0),
    eps=st.sampled_from([1e-6, 1e-3]),
    weight_decay=st.sampled_from([0.0, 0.1]),
    maximize=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_adadelta_random_hyperparameters(lr, rho, eps, weight_decay, maximize, seed):
    kw = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
    *_, (_, ours, theirs) = trajectories("Adadelta", kw, np.float64, steps=10, seed=seed)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-12, atol=1e-12)


@FAST
@given(
    lr=st.floats(1e-4, 0.05),
    alpha=st.floats(0.5, 0.999),
    eps=st.sampled_from([1e-8, 1e-4]),
    weight_decay=st.sampled_from([0.0, 0.1]),
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
    centered=st.booleans(),
    maximize=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_rmsprop_random_hyperparameters(
    lr, alpha, eps, weight_decay, momentum, centered, maximize, seed
):
    kw = dict(
        lr=lr,
        alpha=alpha,
        eps=eps,
        weight_decay=weight_decay,
        momentum=momentum,
        centered=centered,
        maximize=maximize,
    )
    *_, (_, ours, theirs) = trajectories("RMSprop", kw, np.float64, steps=10, seed=seed)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-12)


@FAST
@given(
    lr=st.floats(1e-3, 0.5),
    lr_decay=st.sampled_from([0.0, 0.01, 0.5]),
    weight_decay=st.sampled_from([0.0, 0.1]),
    initial=st.sampled_from([0.0, 0.1, 2.0]),
    eps=st.sampled_from([1e-10, 1e-4]),
    maximize=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_adagrad_random_hyperparameters(lr, lr_decay, weight_decay, initial, eps, maximize, seed):
    kw = dict(
        lr=lr,
        lr_decay=lr_decay,
        weight_decay=weight_decay,
        initial_accumulator_value=initial,
        eps=eps,
        maximize=maximize,
    )
    *_, (_, ours, theirs) = trajectories("Adagrad", kw, np.float64, steps=10, seed=seed)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-12, atol=1e-12)


# ---- state dicts ----------------------------------------------------------------------
def _fresh(lib, dtype=np.float64, seed=0):
    init, _ = _problem(dtype, seed)
    if lib == "torch":
        return [torch.tensor(a, requires_grad=True) for a in init]
    return [sg.tensor(a, requires_grad=True) for a in init]


def _run(opt, params, n, seed=0):
    _, field = _problem(np.float64, seed)
    for _ in range(n):
        for i, p in enumerate(params):
            if isinstance(p, torch.Tensor):
                p.grad = torch.from_numpy(field(i, p.detach().numpy()))
            else:
                p.grad = sg.tensor(field(i, p.detach().numpy()))
        opt.step()


def _values(params):
    return [np.array(p.detach().numpy()) for p in params]


STATEFUL = [
    ("Adadelta", dict(lr=0.5, weight_decay=0.01)),
    ("RMSprop", dict()),
    ("RMSprop", dict(momentum=0.9, centered=True, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
]


@pytest.mark.parametrize("name,kw", STATEFUL)
def test_state_dict_has_torchs_layout_names_and_values(name, kw):
    """Same buffer names (square_avg, acc_delta, momentum_buffer, grad_avg, sum, step)."""
    ours, theirs = _fresh("sg"), _fresh("torch")
    opt = getattr(sg.optim, name)(ours, **kw)
    ref = getattr(torch.optim, name)(theirs, foreach=False, **kw)
    _run(opt, ours, 3)
    _run(ref, theirs, 3)
    mine, torchs = opt.state_dict(), ref.state_dict()
    assert mine["state"].keys() == torchs["state"].keys()
    for index, buffers in torchs["state"].items():
        assert mine["state"][index].keys() == buffers.keys()
        for key, value in buffers.items():
            assert mine["state"][index][key].dtype == value.numpy().dtype, key
            np.testing.assert_allclose(
                mine["state"][index][key].numpy(), value.numpy(), rtol=1e-12, err_msg=key
            )
    for group, torch_group in zip(mine["param_groups"], torchs["param_groups"]):
        for key, value in group.items():
            assert torch_group[key] == value, key


def test_adagrad_state_exists_before_the_first_step_as_in_torch():
    """torch creates Adagrad's state in the constructor: ``sum`` filled with the initial value."""
    ours = sg.optim.Adagrad(_fresh("sg"), initial_accumulator_value=0.3).state_dict()["state"]
    theirs = torch.optim.Adagrad(_fresh("torch"), initial_accumulator_value=0.3).state_dict()
    assert ours.keys() == theirs["state"].keys()
    for index, buffers in theirs["state"].items():
        assert ours[index].keys() == buffers.keys()
        for key, value in buffers.items():
            np.testing.assert_array_equal(ours[index][key].numpy(), value.numpy())


def test_adagrad_group_added_later_gets_state_at_its_first_step():
    a, b = sg.tensor([1.0], requires_grad=True), sg.tensor([2.0], requires_grad=True)
    opt = sg.optim.Adagrad([a], initial_accumulator_value=0.5)
    opt.add_param_group({"params": [b], "lr": 0.1})
    b.grad = sg.tensor([1.0])
    opt.step()
    np.testing.assert_allclose(opt.state[b]["sum"].numpy(), [1.5])
    assert a.item() == 1.0


@pytest.mark.parametrize("name,kw", STATEFUL)
def test_torch_state_dict_loads_here_and_continues_like_torch(name, kw):
    theirs = _fresh("torch")
    ref = getattr(torch.optim, name)(theirs, foreach=False, **kw)
    _run(ref, theirs, 5)
    ours = [sg.tensor(v, requires_grad=True) for v in _values(theirs)]
    opt = getattr(sg.optim, name)(ours)  # every setting comes from the state dict
    opt.load_state_dict(ref.state_dict())
    _run(ref, theirs, 5)
    _run(opt, ours, 5)
    for a, b in zip(_values(ours), _values(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,kw", STATEFUL)
def test_our_state_dict_loads_into_torch_and_continues_like_ours(name, kw):
    """The other way: buffers handed to torch as tensors (as after a safetensors round trip)."""
    ours = _fresh("sg")
    opt = getattr(sg.optim, name)(ours, **kw)
    _run(opt, ours, 5)
    saved = opt.state_dict()
    as_torch = {
        "state": {
            i: {k: torch.from_numpy(np.array(v.numpy())) for k, v in s.items()}
            for i, s in saved["state"].items()
        },
        "param_groups": [dict(g) for g in saved["param_groups"]],
    }
    theirs = [torch.tensor(v, requires_grad=True) for v in _values(ours)]
    ref = getattr(torch.optim, name)(theirs, foreach=False)
    ref.load_state_dict(as_torch)
    _run(opt, ours, 5)
    _run(ref, theirs, 5)
    for a, b in zip(_values(ours), _values(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,kw", STATEFUL)
def test_resume_from_state_dict_equals_uninterrupted_run(name, kw):
    straight = _fresh("sg")
    _run(getattr(sg.optim, name)(straight, **kw), straight, 10)
    first = _fresh("sg")
    opt = getattr(sg.optim, name)(first, **kw)
    _run(opt, first, 5)
    resumed = [sg.tensor(v, requires_grad=True) for v in _values(first)]
    opt2 = getattr(sg.optim, name)(resumed, lr=123.0)
    opt2.load_state_dict(opt.state_dict())
    _run(opt, first, 5)  # the original keeps going: the copy must not share its buffers
    _run(opt2, resumed, 5)
    for a, b, c in zip(_values(straight), _values(resumed), _values(first)):
        np.testing.assert_array_equal(b, a)
        np.testing.assert_array_equal(c, a)


def test_step_updates_in_place_and_leaves_grad_alone():
    for name, kw in STATEFUL:
        params = _fresh("sg")
        opt = getattr(sg.optim, name)(params, **kw, maximize=True)
        arrays = [p.array for p in params]
        _run(opt, params, 1)
        buffers = {k: v.array for k, v in opt.state[params[0]].items()}
        grads = [p.grad.array.copy() for p in params]
        opt.step()
        assert all(p.array is a for p, a in zip(params, arrays)), name
        assert all(opt.state[params[0]][k].array is v for k, v in buffers.items()), name
        for p, g in zip(params, grads):
            np.testing.assert_array_equal(p.grad.array, g)


# ---- validation -----------------------------------------------------------------------
BAD = [
    ("Adadelta", dict(lr=-1.0)),
    ("Adadelta", dict(rho=1.5)),
    ("Adadelta", dict(rho=-0.1)),
    ("Adadelta", dict(eps=-1e-6)),
    ("Adadelta", dict(weight_decay=-0.1)),
    ("RMSprop", dict(lr=-0.01)),
    ("RMSprop", dict(lr=float("nan"))),
    ("RMSprop", dict(eps=-1.0)),
    ("RMSprop", dict(momentum=-0.9)),
    ("RMSprop", dict(weight_decay=-1.0)),
    ("RMSprop", dict(alpha=-0.5)),
    ("Adagrad", dict(lr=-0.01)),
    ("Adagrad", dict(lr_decay=-0.1)),
    ("Adagrad", dict(weight_decay=-0.1)),
    ("Adagrad", dict(initial_accumulator_value=-1.0)),
    ("Adagrad", dict(eps=-1e-10)),
]


@pytest.mark.parametrize("name,kw", BAD)
def test_bad_hyperparameters_raise_torchs_message(name, kw):
    """The same ValueError text as torch ("Invalid learning rate: -1.0"), as a ConfigError."""
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kw)
    with pytest.raises(ValueError) as ours:
        getattr(sg.optim, name)([sg.zeros(2, requires_grad=True)], **kw)
    assert isinstance(ours.value, ConfigError)
    assert str(ours.value) == str(theirs.value)


def test_bad_group_setting_is_rejected_too():
    with pytest.raises(ConfigError, match="Invalid learning rate: -0.5"):
        sg.optim.RMSprop([{"params": [sg.zeros(1, requires_grad=True)], "lr": -0.5}])


# ---- schedulers -----------------------------------------------------------------------
SCHEDULED = [
    ("Adadelta", dict(), lambda m, o: m.StepLR(o, step_size=3, gamma=0.5)),
    ("RMSprop", dict(momentum=0.5), lambda m, o: m.ExponentialLR(o, gamma=0.8)),
    ("Adagrad", dict(lr=0.1), lambda m, o: m.CosineAnnealingLR(o, T_max=4, eta_min=0.01)),
    ("Adadelta", dict(lr=0.5), lambda m, o: m.MultiStepLR(o, milestones=[2, 5], gamma=0.3)),
]


@pytest.mark.parametrize("name,kw,schedule", SCHEDULED, ids=[s[0] for s in SCHEDULED])
def test_lr_schedulers_drive_the_new_optimizers_like_torch(name, kw, schedule, assert_close):
    """One step per epoch for 10 epochs: same lrs (exactly), same weights."""
    ours, theirs = _fresh("sg"), _fresh("torch")
    opt = getattr(sg.optim, name)(ours, **kw)
    ref = getattr(torch.optim, name)(theirs, foreach=False, **kw)
    sched = schedule(sg.optim.lr_scheduler, opt)
    ref_sched = schedule(torch.optim.lr_scheduler, ref)
    for epoch in range(10):
        _run(opt, ours, 1)
        _run(ref, theirs, 1)
        sched.step()
        ref_sched.step()
        assert sched.get_last_lr() == ref_sched.get_last_lr(), f"epoch {epoch}"
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in ref.param_groups]
    for p, t in zip(ours, theirs):
        assert_close(p, t, rtol=1e-12, atol=1e-12)
