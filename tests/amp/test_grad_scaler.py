"""``sg.amp.GradScaler`` against ``torch.amp.GradScaler`` with injected overflows.

The same model, data and script of finite / inf / NaN steps go through both: the scale
after every ``update()``, which steps were skipped and the final parameters must agree.
Then the distributed part: on the threads transport, one rank's overflow makes every rank
skip (the found-inf flag is all-reduced through the group).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sparkgrad as sg
import sparkgrad.distributed as dist
import sparkgrad.nn.functional as F
from sparkgrad.distributed.state import default_group

# f: finite, i: an inf injected into one gradient, n: a NaN injected
SCRIPT = "ffiffnffffiifffffffff"
W0 = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
XS = np.random.default_rng(2).standard_normal((len(SCRIPT), 5, 4)).astype(np.float32)
YS = np.random.default_rng(3).integers(0, 3, (len(SCRIPT), 5))


def _inject(grad: np.ndarray, mark: str) -> None:
    if mark == "i":
        grad[0, 1] = np.inf
    elif mark == "n":
        grad[2, 0] = np.nan


def run_torch(kwargs: dict, optimizer: str) -> tuple[list, list, np.ndarray, dict]:
    w = torch.tensor(W0, requires_grad=True)
    opt = (
        torch.optim.SGD([w], lr=0.1, momentum=0.9)
        if optimizer == "sgd"
        else torch.optim.Adam([w], lr=0.01)
    )
    scaler = torch.amp.GradScaler("cpu", **kwargs)
    scales, stepped = [], []
    for mark, x, y in zip(SCRIPT, XS, YS):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(torch.tensor(x) @ w.T, torch.tensor(y))
        scaler.scale(loss).backward()
        _inject(w.grad.numpy(), mark)
        before = w.detach().clone()
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        stepped.append(not torch.equal(before, w.detach()))
    return scales, stepped, w.detach().numpy(), scaler.state_dict()


def run_sg(kwargs: dict, optimizer: str) -> tuple[list, list, np.ndarray, dict, int]:
    w = sg.tensor(W0, requires_grad=True)
    opt = (
        sg.optim.SGD([w], lr=0.1, momentum=0.9)
        if optimizer == "sgd"
        else sg.optim.Adam([w], lr=0.01)
    )
    scaler = sg.amp.GradScaler("cpu", **kwargs)
    scales, stepped = [], []
    for mark, x, y in zip(SCRIPT, XS, YS):
        opt.zero_grad()
        loss = F.cross_entropy(sg.tensor(x) @ w.T, sg.tensor(y))
        scaler.scale(loss).backward()
        _inject(w.grad.array, mark)
        before = w.detach().numpy().copy()
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        stepped.append(not np.array_equal(before, w.detach().numpy()))
    return scales, stepped, w.detach().numpy(), scaler.state_dict(), scaler.skipped_steps


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"init_scale": 1024.0, "growth_interval": 3},
        {"init_scale": 2.0**20, "growth_factor": 4.0, "backoff_factor": 0.25, "growth_interval": 2},
    ],
    ids=["defaults", "grow_every_3", "factor_4"],
)
def test_scale_sequence_skips_and_parameters_match_torch(kwargs, optimizer) -> None:
    t_scales, t_stepped, t_w, t_state = run_torch(kwargs, optimizer)
    s_scales, s_stepped, s_w, s_state, skipped = run_sg(kwargs, optimizer)
    assert s_scales == t_scales
    assert s_stepped == t_stepped == [m == "f" for m in SCRIPT]
    assert skipped == SCRIPT.count("i") + SCRIPT.count("n")
    np.testing.assert_allclose(s_w, t_w, rtol=1e-5, atol=1e-6)
    assert s_state == t_state


def test_state_dict_round_trip_and_errors() -> None:
    a = sg.amp.GradScaler(init_scale=8.0, growth_interval=2)
    w = sg.tensor([1.0], requires_grad=True)
    opt = sg.optim.SGD([w], lr=0.1)
    for _ in range(3):
        a.scale((w * 2).sum()).backward()
        a.step(opt)
        a.update()
        opt.zero_grad()
    b = sg.amp.GradScaler()
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == a.state_dict() == {
        "scale": 16.0, "growth_factor": 2.0, "backoff_factor": 0.5,
        "growth_interval": 2, "_growth_tracker": 1,
    }  # fmt: skip
    with pytest.raises(RuntimeError, match="state dict is empty"):
        b.load_state_dict(sg.amp.GradScaler(enabled=False).state_dict())
    with pytest.raises(AssertionError, match="did not use scaler.scale"):
        sg.amp.GradScaler().step(opt)
    a.scale((w * 2).sum()).backward()
    a.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called on this optimizer"):
        a.unscale_(opt)
    a.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        a.step(opt)
    with pytest.raises(AssertionError, match="growth factor must be > 1.0"):
        sg.amp.GradScaler(growth_factor=1.0)
    off = sg.amp.GradScaler(enabled=False)
    assert off.scale(w) is w and off.get_scale() == 1.0 and off.state_dict() == {}


def test_one_rank_overflowing_makes_every_rank_skip() -> None:
    """Each rank owns a different parameter (as a ZeRO shard): rank 1 overflows at step 2."""

    def rank_fn(rank: int, world: int) -> dict:
        dist.init_process_group("threads", rank=rank, world_size=world)
        try:
            w = sg.tensor([1.0, 2.0], requires_grad=True)
            opt = sg.optim.SGD([w], lr=0.5)
            scaler = sg.amp.GradScaler(init_scale=4.0, process_group=default_group())
            local = sg.amp.GradScaler(init_scale=4.0)  # no group: decides alone
            w2 = sg.tensor([1.0, 2.0], requires_grad=True)
            opt2 = sg.optim.SGD([w2], lr=0.5)
            history = []
            for step in range(4):
                for s, p, o in ((scaler, w, opt), (local, w2, opt2)):
                    o.zero_grad()
                    s.scale((p * p).sum()).backward()
                    if rank == 1 and step == 2:
                        p.grad.array[0] = np.inf
                    s.step(o)
                    s.update()
                history.append((scaler.get_scale(), w.detach().numpy().tolist(), local.get_scale()))
            return {"history": history, "skipped": (scaler.skipped_steps, local.skipped_steps)}
        finally:
            dist.destroy_process_group()

    r0, r1 = dist.spawn(rank_fn, 2)
    assert r0["history"] == [(h[0], h[1], r0["history"][i][2]) for i, h in enumerate(r1["history"])]
    assert r0["skipped"] == (1, 0) and r1["skipped"] == (1, 1)  # the group skips together
    assert [h[0] for h in r0["history"]] == [4.0, 4.0, 2.0, 2.0]
    assert [h[2] for h in r0["history"]] == [4.0, 4.0, 4.0, 4.0]  # rank 0 alone never saw it
    assert r0["history"][1][1] == r0["history"][2][1]  # step 2 left the weights as they were
