"""DataParallel, the arithmetic: N ranks with batch b take the steps of one process with N*b.

Why it holds: the loss of one step is a *mean* over the batch. Split the global batch of
N*b samples into N shards of b; the mean over all N*b is the mean of the N shard means,
and gradients are linear, so the average of the N shard gradients IS the full-batch
gradient. Every rank then applies the same optimizer update to the same weights.

The independent truth is a plain single-process run on the global batch; the ranks are
threads joined by the ``threads`` transport. Each rank starts from *different* weights, so
the test also proves that construction broadcasts rank 0's parameters.
"""

from __future__ import annotations

import numpy as np
import pytest

import sparkgrad as sg
import sparkgrad.distributed as dist
from sparkgrad.autodiff import functional as F
from sparkgrad.dataset import DataLoader, DistributedSampler, TensorDataset
from sparkgrad.parallel import DataParallel

STEPS = 5
PER_RANK_BATCH = 4


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)).astype(np.float32), rng.integers(0, 3, n)


def make_model() -> sg.nn.Module:
    return sg.nn.Sequential(
        sg.nn.Linear(6, 16), sg.nn.ReLU(), sg.nn.Linear(16, 16), sg.nn.ReLU(), sg.nn.Linear(16, 3)
    )


def make_optimizer(name: str, params: object) -> sg.optim.Optimizer:
    if name == "sgd":
        return sg.optim.SGD(params, lr=0.1, momentum=0.9)
    return sg.optim.Adam(params, lr=0.01)


def initial_state() -> dict[str, np.ndarray]:
    sg.manual_seed(0)
    return {k: v.array.copy() for k, v in make_model().state_dict().items()}


def train_single(init: dict, x: np.ndarray, y: np.ndarray, batch: int, opt_name: str) -> dict:
    """The truth: one process, global batch, plain model."""
    model = make_model()
    model.load_state_dict(init)
    opt = make_optimizer(opt_name, model.parameters())
    loader = DataLoader(TensorDataset(x, y), batch_size=batch)
    for _, (xb, yb) in zip(range(STEPS), loader):
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.array.copy() for k, v in model.state_dict().items()}


def train_rank(
    rank: int, world: int, init: dict, x: np.ndarray, y: np.ndarray, opt_name: str, backend: str
):
    """One rank: its own shard through a DistributedSampler, gradients averaged by DDP."""
    dist.init_process_group(backend)
    try:
        model = make_model()
        # every rank but 0 starts elsewhere: DataParallel must broadcast rank 0's weights
        model.load_state_dict({k: v + rank for k, v in init.items()})
        # tiny buckets, so the model's 6 parameters travel in several all_reduce calls
        ddp = DataParallel(model, bucket_cap_mb=512 / 2**20, first_bucket_mb=64 / 2**20)
        opt = make_optimizer(opt_name, ddp.parameters())
        data = TensorDataset(x, y)
        sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=False)
        loader = DataLoader(data, batch_size=PER_RANK_BATCH, sampler=sampler)
        for _, (xb, yb) in zip(range(STEPS), loader):
            loss = F.cross_entropy(ddp(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return len(ddp.buckets), {k: v.array.copy() for k, v in ddp.state_dict().items()}
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_n_ranks_with_batch_b_equal_one_process_with_batch_nb(world: int, opt_name: str):
    x, y = make_data(world * PER_RANK_BATCH * STEPS)
    init = initial_state()
    expected = train_single(init, x, y, world * PER_RANK_BATCH, opt_name)
    results = dist.spawn(train_rank, world, args=(init, x, y, opt_name, "threads"))
    for rank, (num_buckets, state) in enumerate(results):
        assert num_buckets > 2, "the test should exercise several buckets"
        assert state.keys() == expected.keys()
        for key in expected:
            np.testing.assert_allclose(
                state[key], expected[key], rtol=0, atol=1e-6, err_msg=f"rank {rank}, {key}"
            )
    # and the weights really moved: the check above is not comparing initial weights
    assert max(np.abs(expected[k] - init[k]).max() for k in init) > 1e-2


@pytest.mark.slow
def test_the_same_holds_with_ranks_in_separate_processes_over_tcp():
    world = 2
    x, y = make_data(world * PER_RANK_BATCH * STEPS)
    init = initial_state()
    expected = train_single(init, x, y, world * PER_RANK_BATCH, "adam")
    results = dist.spawn(train_rank, world, backend="tcp", args=(init, x, y, "adam", "tcp"))
    for rank, (_, state) in enumerate(results):
        for key in expected:
            np.testing.assert_allclose(
                state[key], expected[key], rtol=0, atol=1e-6, err_msg=f"rank {rank}, {key}"
            )


def train_in_pairs(rank: int, world: int, init: dict, data: list, opt_name: str):
    """Ranks {0,1} and {2,3} form two groups; each pair trains its own copy on its data."""
    dist.init_process_group("threads")
    try:
        groups = [dist.new_group([0, 1]), dist.new_group([2, 3])]  # every rank calls both
        pair = rank // 2
        model = make_model()
        model.load_state_dict({k: v + np.float32(0.01 * rank) for k, v in init.items()})
        ddp = DataParallel(model, process_group=groups[pair])
        opt = make_optimizer(opt_name, ddp.parameters())
        x, y = data[pair]
        for step in range(STEPS):
            rows = slice(
                (2 * step + rank % 2) * PER_RANK_BATCH, (2 * step + rank % 2 + 1) * PER_RANK_BATCH
            )
            loss = F.cross_entropy(ddp(sg.tensor(x[rows])), sg.tensor(y[rows]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {k: v.array.copy() for k, v in ddp.state_dict().items()}
    finally:
        dist.destroy_process_group()


def test_a_sub_group_starts_from_its_own_first_rank_and_averages_only_inside():
    data = [make_data(2 * PER_RANK_BATCH * STEPS, seed=s) for s in (1, 2)]
    init = initial_state()
    results = dist.spawn(train_in_pairs, 4, args=(init, data, "sgd"))
    for rank, state in enumerate(results):
        pair = rank // 2
        first = 2 * pair  # the group's first rank: 0 or 2
        start = {k: v + np.float32(0.01 * first) for k, v in init.items()}
        expected = train_single(start, *data[pair], 2 * PER_RANK_BATCH, "sgd")
        for key in expected:
            np.testing.assert_allclose(state[key], expected[key], rtol=0, atol=1e-6, err_msg=key)
