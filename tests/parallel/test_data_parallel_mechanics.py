"""DataParallel, the mechanics: buckets, overlap, no_sync, unused parameters, buffers, state dicts.

Truths used: PyTorch's own bucket assignment function, a bucket layout worked out by hand,
single-process gradients on the global batch, and each rank's local gradient.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparkgrad as sg
import sparkgrad.distributed as dist
from sparkgrad.autodiff import functional as F
from sparkgrad.errors import CommError, ConfigError, GradError
from sparkgrad.parallel import DataParallel, compute_bucket_assignment_by_size

KB = 1 / 1024  # in megabytes


def mlp(*widths: int) -> sg.nn.Sequential:
    layers: list = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [sg.nn.Linear(a, b), sg.nn.ReLU()]
    return sg.nn.Sequential(*layers[:-1])


def grads_of(model: sg.nn.Module) -> dict[str, np.ndarray]:
    return {n: p.grad.array.copy() for n, p in model.named_parameters() if p.grad is not None}


def global_batch(world: int, b: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((world * b, 10)).astype(np.float32), rng.integers(0, 5, world * b)


def single_grads(model: sg.nn.Module, xs: list, ys: list) -> dict[str, np.ndarray]:
    """Truth: gradient of the sum of mean losses over the given global micro-batches."""
    for x, y in zip(xs, ys):
        F.cross_entropy(model(sg.tensor(x)), sg.tensor(y)).backward()
    return grads_of(model)


# ---- bucket assignment ---------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(
        st.tuples(st.integers(1, 400), st.sampled_from(["float32", "float64"])),
        min_size=1,
        max_size=12,
    ),
    first=st.integers(1, 2000),
    cap=st.integers(1, 4000),
)
def test_bucket_assignment_matches_pytorch(sizes, first, cap):
    torch = pytest.importorskip("torch")
    import torch.distributed as tdist

    ours = compute_bucket_assignment_by_size([np.zeros(n, dt) for n, dt in sizes], [first, cap])
    dtypes = {"float32": torch.float32, "float64": torch.float64}
    theirs = tdist._compute_bucket_assignment_by_size(
        [torch.zeros(n, dtype=dtypes[dt]) for n, dt in sizes], [first, cap]
    )
    assert ours == (theirs[0], theirs[1])


def bucket_layout(rank: int, world: int) -> list[list[str]]:
    dist.init_process_group("threads")
    try:
        model = mlp(10, 20, 30, 5)  # weights 200, 600, 150 floats; biases 20, 30, 5
        ddp = DataParallel(model, bucket_cap_mb=2000 / 2**20, first_bucket_mb=600 / 2**20)
        names = {id(p): n for n, p in model.named_parameters()}
        return [[names[id(p)] for p in bucket.params] for bucket in ddp.buckets]
    finally:
        dist.destroy_process_group()


def test_buckets_take_parameters_in_reverse_order_with_a_small_first_bucket():
    # By hand, in bytes, last parameter first: 2.bias 20 + 2.weight 600 = 620 >= 600 closes
    # the small first bucket; 1.bias 120 + 1.weight 2400 >= 2000 closes the second; the
    # first layer (80 + 800 bytes) is what is left.
    layout = dist.spawn(bucket_layout, 2)
    expected = [["4.bias", "4.weight"], ["2.bias", "2.weight"], ["0.bias", "0.weight"]]
    assert layout == [expected, expected]


# ---- overlap and averaged gradients ----------------------------------------------------------
def overlap_rank(rank: int, world: int, x: np.ndarray, y: np.ndarray, init: dict):
    dist.init_process_group("threads")
    try:
        model = mlp(10, 32, 32, 32, 5)
        model.load_state_dict(init)
        ddp = DataParallel(model, bucket_cap_mb=4 * KB, first_bucket_mb=1 * KB)
        shard = slice(rank * 8, (rank + 1) * 8)
        F.cross_entropy(ddp(sg.tensor(x[shard])), sg.tensor(y[shard])).backward()
        return ddp.stats, grads_of(model)
    finally:
        dist.destroy_process_group()


def test_first_bucket_is_launched_before_backward_ends_and_grads_are_averaged_after():
    x, y = global_batch(2, 8)
    sg.manual_seed(1)
    truth_model = mlp(10, 32, 32, 32, 5)
    init = {k: v.array.copy() for k, v in truth_model.state_dict().items()}
    truth = single_grads(truth_model, [x], [y])
    results = dist.spawn(overlap_rank, 2, args=(x, y, init))
    for stats, grads in results:
        kinds = [kind for kind, _ in stats.events]
        assert kinds.count("launch") == len(stats.buckets) >= 3
        # overlap: bucket 0 (the last layer) starts its all_reduce while earlier layers'
        # gradients are still being computed
        first_launch = stats.events.index(("launch", 0))
        assert first_launch < stats.events.index(("grad", "0.weight"))
        assert 0 in stats.launched_before_last_grad()
        assert all(b.launch_s >= 0 and b.wait_s >= 0 for b in stats.buckets)
        assert "bucket" in str(stats)
        # when loss.backward() returned, p.grad already held the global-batch gradient
        for name in truth:
            np.testing.assert_allclose(grads[name], truth[name], rtol=1e-5, atol=1e-7)


# ---- no_sync --------------------------------------------------------------------------------
def accumulate_rank(rank: int, world: int, xs: list, ys: list, init: dict):
    dist.init_process_group("threads")
    try:
        model = mlp(10, 16, 5)
        model.load_state_dict(init)
        ddp = DataParallel(model)
        b = len(xs[0]) // world
        shard = slice(rank * b, (rank + 1) * b)
        with ddp.no_sync():
            for x, y in zip(xs[:-1], ys[:-1]):
                F.cross_entropy(ddp(sg.tensor(x[shard])), sg.tensor(y[shard])).backward()
        local = grads_of(model)  # nothing travelled yet: this rank's own gradients
        F.cross_entropy(ddp(sg.tensor(xs[-1][shard])), sg.tensor(ys[-1][shard])).backward()
        return local, grads_of(model)
    finally:
        dist.destroy_process_group()


def test_no_sync_accumulates_locally_and_the_next_synced_backward_averages_the_sum():
    world, micro = 2, 3
    batches = [global_batch(world, 4, seed=s) for s in range(micro)]
    xs, ys = [x for x, _ in batches], [y for _, y in batches]
    sg.manual_seed(2)
    model = mlp(10, 16, 5)
    init = {k: v.array.copy() for k, v in model.state_dict().items()}
    truth = single_grads(model, xs, ys)
    results = dist.spawn(accumulate_rank, world, args=(xs, ys, init))
    for rank, (local, synced) in enumerate(results):
        model.load_state_dict(init)
        model.zero_grad()
        shard = slice(rank * 4, (rank + 1) * 4)
        own = single_grads(model, [x[shard] for x in xs[:-1]], [y[shard] for y in ys[:-1]])
        for name in truth:
            np.testing.assert_allclose(local[name], own[name], rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(synced[name], truth[name], rtol=1e-5, atol=1e-7)
    assert not np.allclose(results[0][0]["0.weight"], results[1][0]["0.weight"])


# ---- unused parameters ----------------------------------------------------------------------
class WithSpareHead(sg.nn.Module):
    """A body and two heads; ``forward`` uses the spare head only when asked."""

    def __init__(self) -> None:
        super().__init__()
        self.body = sg.nn.Linear(4, 8)
        self.head = sg.nn.Linear(8, 2)
        self.spare = sg.nn.Linear(8, 2)
        self.use_spare = False

    def forward(self, x: sg.Tensor) -> sg.Tensor:
        h = F.relu(self.body(x))
        return self.head(h) + self.spare(h) if self.use_spare else self.head(h)


def unused_rank(rank: int, world: int, find_unused: bool, init: dict):
    dist.init_process_group("threads")
    try:
        model = WithSpareHead()
        model.load_state_dict(init)
        model.use_spare = rank == 0  # only rank 0 touches the spare head
        ddp = DataParallel(model, find_unused_parameters=find_unused, bucket_cap_mb=64 * KB)
        x = sg.tensor(np.full((2, 4), rank + 1.0, np.float32))
        ddp(x).sum().backward()
        return {n: p.grad.array.copy() for n, p in model.named_parameters()}
    finally:
        dist.destroy_process_group()


def spare_head_init() -> dict:
    sg.manual_seed(3)  # in the main thread: rank threads share one generator
    return {k: v.array.copy() for k, v in WithSpareHead().state_dict().items()}


def test_a_parameter_without_gradient_raises_an_error_naming_it():
    with pytest.raises(GradError, match=r"spare\.weight.*find_unused_parameters=True"):
        dist.spawn(unused_rank, 2, args=(False, spare_head_init()))


def test_find_unused_parameters_counts_a_missing_gradient_as_zeros():
    init = spare_head_init()
    grads = dist.spawn(unused_rank, 2, args=(True, init))
    # the truth: rank 0's spare-head gradient, averaged with rank 1's zeros
    model = WithSpareHead()
    model.load_state_dict(init)
    model.use_spare = True
    model(sg.tensor(np.full((2, 4), 1.0, np.float32))).sum().backward()
    for name in ("spare.weight", "spare.bias"):
        expected = dict(model.named_parameters())[name].grad.array / 2
        for rank_grads in grads:
            np.testing.assert_allclose(rank_grads[name], expected, rtol=1e-6)


# ---- misuse, buffers, state dicts --------------------------------------------------------
def misuse_rank(rank: int, world: int):
    dist.init_process_group("threads")
    try:
        model = mlp(3, 2)
        ddp = DataParallel(model)
        loss = ddp(sg.ones(1, 3)).sum()
        loss.backward(retain_graph=True)
        loss.backward()
    finally:
        dist.destroy_process_group()


def test_two_backwards_after_one_forward_are_refused():
    with pytest.raises(GradError, match="forward again"):
        dist.spawn(misuse_rank, 2)


class WithBuffer(sg.nn.Module):
    def __init__(self, fill: float) -> None:
        super().__init__()
        self.lin = sg.nn.Linear(2, 2)
        self.register_buffer("running", sg.tensor(np.full(3, fill, np.float32)))

    def forward(self, x: sg.Tensor) -> sg.Tensor:
        return self.lin(x)


def buffers_rank(rank: int, world: int):
    dist.init_process_group("threads")
    try:
        model = WithBuffer(fill=10.0 + rank)
        ddp = DataParallel(model)
        model.running.array[...] = 20.0 + rank  # drifts apart again after construction
        ddp(sg.ones(1, 2))
        state = ddp.state_dict()
        ddp.load_state_dict({"module." + k: v for k, v in state.items()})  # PyTorch DDP keys
        return list(state), model.running.array.copy(), model.lin.weight.array.copy()
    finally:
        dist.destroy_process_group()


def test_buffers_follow_rank_0_and_state_dict_keys_are_plain():
    (keys0, buf0, w0), (keys1, buf1, w1) = dist.spawn(buffers_rank, 2)
    assert keys0 == keys1 == list(WithBuffer(0.0).state_dict())  # the plain module's keys
    assert not any(k.startswith("module.") for k in keys0)
    np.testing.assert_array_equal(buf0, np.full(3, 20.0, np.float32))
    np.testing.assert_array_equal(buf1, buf0)
    np.testing.assert_array_equal(w1, w0)


def test_bad_arguments_say_what_was_expected():
    with pytest.raises(ConfigError, match="positive bucket sizes"):
        DataParallel(mlp(2, 2), bucket_cap_mb=0)
    with pytest.raises(ConfigError, match="wraps a Module"):
        DataParallel(lambda x: x)
    with pytest.raises(ConfigError, match="process_group: expected"):
        DataParallel(mlp(2, 2), process_group=3)
    with pytest.raises(CommError, match="init_process_group"):
        DataParallel(mlp(2, 2))  # this thread never joined a process group


def rewrap_rank(rank: int, world: int):
    dist.init_process_group("threads")
    try:
        model = mlp(3, 2)
        x = sg.tensor(np.full((1, 3), rank + 1.0, np.float32))
        DataParallel(model)(x).sum().backward()  # a first wrapper, used once
        model.zero_grad()
        DataParallel(model)(x).sum().backward()  # the new wrapper owns the hooks now
        return grads_of(model)
    finally:
        dist.destroy_process_group()


def test_wrapping_a_module_again_replaces_the_old_wrapper():
    g0, g1 = dist.spawn(rewrap_rank, 2)
    # d(sum(W x + b))/dW = x for each output row; the ranks' x are 1s and 2s: average 1.5
    np.testing.assert_allclose(g0["0.weight"], np.full((2, 3), 1.5, np.float32))
    np.testing.assert_array_equal(g0["0.weight"], g1["0.weight"])
