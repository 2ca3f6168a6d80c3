"""``sparkgrad.nn.parallel.DistributedDataParallel``: the DDP tutorial, and PyTorch's arguments.

The tutorial's ToyModel trained by 2 processes (``sparkgrad.multiprocessing.spawn``, gloo
over loopback) ends with the weights one process gets on the full batch, and with the
weights PyTorch gets from the same start. The argument tests run the ranks as threads.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import ddp_workers
import numpy as np
import pytest
import torch

import sparkgrad as sg
import sparkgrad.distributed as dist
import sparkgrad.multiprocessing as mp
from sparkgrad.comms.spawn import free_port
from sparkgrad.nn.parallel import DistributedDataParallel as DDP
from sparkgrad.parallel import DataParallel


def single_process_truth() -> tuple[dict, dict]:
    """rank 0's start, trained on the full batch: by sparkgrad, and by PyTorch."""
    sg.manual_seed(0)
    model = ddp_workers.ToyModel()
    init = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    optimizer = sg.optim.SGD(model.parameters(), lr=0.001)
    twin = torch.nn.Sequential()
    twin.net1, twin.relu, twin.net2 = (
        torch.nn.Linear(10, 10),
        torch.nn.ReLU(),
        torch.nn.Linear(10, 5),
    )
    twin.load_state_dict({k: torch.tensor(v) for k, v in init.items()})
    t_optimizer = torch.optim.SGD(twin.parameters(), lr=0.001)
    x, y = ddp_workers.make_data()
    for step in range(ddp_workers.STEPS):
        rows = slice(step * ddp_workers.GLOBAL_BATCH, (step + 1) * ddp_workers.GLOBAL_BATCH)
        optimizer.zero_grad()
        sg.nn.MSELoss()(model(sg.tensor(x[rows])), sg.tensor(y[rows])).backward()
        optimizer.step()
        t_optimizer.zero_grad()
        torch.nn.MSELoss()(twin(torch.tensor(x[rows])), torch.tensor(y[rows])).backward()
        t_optimizer.step()
    ours = {k: v.numpy() for k, v in model.state_dict().items()}
    theirs = {k: v.detach().numpy() for k, v in twin.state_dict().items()}
    return init, ours, theirs


def test_the_ddp_tutorial_under_spawn_equals_one_process_on_the_full_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    mp.spawn(ddp_workers.demo_basic, args=(2, str(tmp_path)), nprocs=2, join=True)
    init, ours, theirs = single_process_truth()
    results = [sg.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert [r["samples"] for r in results] == [40, 40]  # each rank half of the 80 samples
    for key in init:
        a, b = (r["state"][key].numpy() for r in results)
        np.testing.assert_array_equal(a, b, err_msg=f"ranks differ on {key}")
        np.testing.assert_allclose(a, ours[key], rtol=1e-6, atol=1e-7, err_msg=key)
        np.testing.assert_allclose(a, theirs[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert max(np.abs(ours[k] - init[k]).max() for k in init) > 1e-4  # the weights moved


def _in_threads(fn, world=2):
    def run(rank, size):
        dist.init_process_group("threads")
        try:
            return fn(rank)
        finally:
            dist.destroy_process_group()

    return dist.spawn(run, world)


class Counted(sg.nn.Module):
    """An identity layer with a buffer (as BatchNorm's running statistics)."""

    def __init__(self, n):
        super().__init__()
        self.register_buffer("running_mean", sg.zeros(n))

    def forward(self, x):
        return x


def _model(seed):
    sg.manual_seed(seed)
    return sg.nn.Sequential(sg.nn.Linear(4, 300), Counted(300), sg.nn.Linear(300, 2))


def test_torch_arguments_map_onto_data_parallel():
    def check(rank):
        ddp = DDP(_model(rank), None, None, 0, None, True, None, 0.001, True)  # torch's order
        assert isinstance(ddp, DataParallel) and ddp.find_unused_parameters
        assert ddp.device_ids is None and ddp.output_device is None and ddp.dim == 0
        small = [len(b.params) for b in ddp.buckets]
        default = DDP(_model(rank), bucket_cap_mb=None)
        return small, len(default.buckets), ddp.broadcast_buffers

    # PyTorch's assignment of the same tensors (reverse order) to 0.001 MB buckets
    shapes = [(2,), (2, 300), (300,), (300, 4)]
    cap = int(0.001 * 2**20)
    want, _ = torch.distributed._compute_bucket_assignment_by_size(
        [torch.zeros(s) for s in shapes], [cap, cap]
    )
    for small, n_default, sync in _in_threads(check):
        assert small == [len(b) for b in want] and len(small) > 1
        assert n_default == 1 and sync  # 8.4 KB of parameters fit PyTorch's 1 MB first bucket


@pytest.mark.parametrize(
    "kwargs, buffers_equal",
    [({}, True), ({"broadcast_buffers": False}, False), ({"forward_sync_buffers": False}, True)],
)
def test_buffer_and_init_sync_like_torch_2_13(kwargs, buffers_equal):
    def check(rank):
        model = _model(rank)
        model[1].running_mean.array[:] = rank  # rank-local buffer values
        DDP(model, **kwargs)
        return model[0].weight.detach().numpy().copy(), model[1].running_mean.numpy().copy()

    (w0, b0), (w1, b1) = _in_threads(check)
    np.testing.assert_array_equal(w0, w1)  # parameters always come from rank 0
    assert np.array_equal(b0, b1) == buffers_equal


def test_init_sync_false_leaves_the_replicas_alone():
    def check(rank):
        model = _model(rank)
        DDP(model, init_sync=False)
        return model[0].weight.detach().numpy().copy()

    w0, w1 = _in_threads(check)
    assert not np.array_equal(w0, w1)


def test_no_sync_accumulates_without_communication():
    x = np.random.default_rng(1).standard_normal((4, 4)).astype(np.float32)

    def check(rank):
        ddp = DDP(_model(0))
        with ddp.no_sync():
            ddp(sg.tensor(x[rank::2])).sum().backward()
        local = ddp.module[0].weight.grad.numpy().copy()
        return local

    g0, g1 = _in_threads(check)
    assert not np.allclose(g0, g1)  # each rank kept its own gradient


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"device_ids": [0]}, ValueError, "device_ids and output_device arguments only work"),
        ({"output_device": 0}, ValueError, "device_ids and output_device arguments only work"),
        ({"device_ids": [0, 1]}, ValueError, "can only be None or contain a single element"),
    ],
)
def test_device_id_errors_like_torch(kwargs, error, match):
    def check(rank):
        with pytest.raises(error, match=match):
            DDP(_model(0), **kwargs)
        DDP(_model(0), device_ids=[])  # [] is accepted for CPU modules, as in PyTorch
        return True

    assert _in_threads(check) == [True, True]


def test_a_module_without_trainable_parameters_is_refused_like_torch():
    def check(rank):
        model = _model(0)
        for p in model.parameters():
            p.requires_grad_(False)
        with pytest.raises(RuntimeError, match="DistributedDataParallel is not needed"):
            DDP(model)
        return True

    assert _in_threads(check) == [True, True]


def test_nn_parallel_is_lazy_and_reduce_op_is_the_deprecated_alias():
    code = (
        "import sys, sparkgrad as sg; "
        "above = ('sparkgrad.parallel', 'sparkgrad.comms', 'sparkgrad.distributed'); "
        "assert not any(m.startswith(above) for m in sys.modules), sorted(sys.modules); "
        "assert sg.nn.parallel.DistributedDataParallel.__name__ == 'DistributedDataParallel'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert importlib.import_module("sparkgrad.nn.parallel").DistributedDataParallel is DDP
    with pytest.warns(FutureWarning, match="reduce_op"):
        assert dist.reduce_op.SUM is dist.ReduceOp.SUM


def test_state_dict_has_torch_ddps_module_prefix_and_loads_back(tmp_path):
    """``ddp_model.state_dict()`` keys as PyTorch's DDP gives them (``module.0.weight``...)."""
    import torch.distributed as tdist

    store = tdist.FileStore(str(tmp_path / "store"), 1)
    tdist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        twin = torch.nn.Sequential(torch.nn.Linear(4, 300), torch.nn.BatchNorm1d(300))
        theirs = list(torch.nn.parallel.DistributedDataParallel(twin).state_dict())
    finally:
        tdist.destroy_process_group()

    def check(rank):
        ddp = DDP(sg.nn.Sequential(sg.nn.Linear(4, 300), sg.nn.BatchNorm1d(300)))
        state = ddp.state_dict()
        for v in state.values():
            v.zero_()  # values share memory with the model, as in PyTorch
        assert float(ddp.module[0].weight.abs().sum()) == 0.0
        ddp.load_state_dict({k: sg.ones(v.shape) for k, v in state.items()})  # prefixed keys
        ddp.load_state_dict(ddp.module.state_dict())  # plain keys are accepted too
        return list(state), float(ddp.module[0].weight.sum())

    for keys, total in _in_threads(check):
        assert keys == theirs and total == 4 * 300
