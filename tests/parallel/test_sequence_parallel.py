"""Sequence parallelism: the all-gather / reduce-scatter pair on exact inputs, the activation
memory it saves (measured by ActivationTracker), and its errors.

The GPT-level equality with one process (tp 2, 4, 8 with ``sequence_parallel=True``) lives
in test_tensor_parallel_gpt.py; here are the parts.
"""

from __future__ import annotations

import numpy as np
import pytest

import sparkgrad as sg
from sparkgrad.autodiff.saved_memory import ActivationTracker
from sparkgrad.distributed.state import default_group
from sparkgrad.errors import ConfigError
from sparkgrad.models.sequence_parts import TokenCrossEntropy
from sparkgrad.parallel.tensor.comm_ops import (
    gather_from_sequence_parallel_region,
    reduce_scatter_to_sequence_parallel_region,
)
from sparkgrad.parallel.tensor.layers import ColumnParallelDense
from sparkgrad.parallel.tensor.strategy import TensorParallel
from sparkgrad.parallel.tensor.transformer import TensorParallelAttention
from tests.parallel.tp_gpt_helpers import (
    build,
    make_batches,
    on_ranks,
    optimizer_factory,
    run_ranks,
    train_single,
)

N, T, D = 2, 8, 3


def per_rank(seed: int, shape: tuple) -> np.ndarray:
    """A different exact array on every rank (small integers: sums are exact in float32)."""
    return np.random.default_rng(seed).integers(-5, 5, shape).astype(np.float32)


@pytest.mark.parametrize("world", [2, 4])
def test_all_gather_forward_is_reduce_scatter_backward(world: int) -> None:
    shard = T // world

    def rank() -> tuple:
        g = default_group()
        x = sg.tensor(per_rank(g.rank(), (N, shard, D)), requires_grad=True)
        y = gather_from_sequence_parallel_region(x, g)
        (y * sg.tensor(per_rank(100 + g.rank(), (N, T, D)))).sum().backward()
        return y.detach().numpy(), x.grad.numpy()

    got = on_ranks(world, rank)
    whole = np.concatenate([per_rank(r, (N, shard, D)) for r in range(world)], axis=1)
    # dL/dx_r: every rank's weights at rank r's positions, summed (a reduce-scatter)
    weights = sum(per_rank(100 + r, (N, T, D)) for r in range(world))
    for r, (y, grad) in enumerate(got):
        np.testing.assert_array_equal(y, whole)
        np.testing.assert_array_equal(grad, weights[:, r * shard : (r + 1) * shard])


@pytest.mark.parametrize("world", [2, 4])
def test_reduce_scatter_forward_is_all_gather_backward(world: int) -> None:
    shard = T // world

    def rank() -> tuple:
        g = default_group()
        x = sg.tensor(per_rank(g.rank(), (N, T, D)), requires_grad=True)
        y = reduce_scatter_to_sequence_parallel_region(x, g)
        (y * sg.tensor(per_rank(100 + g.rank(), (N, shard, D)))).sum().backward()
        return y.detach().numpy(), x.grad.numpy()

    got = on_ranks(world, rank)
    total = sum(per_rank(r, (N, T, D)) for r in range(world))
    # dL/dx: the whole sequence's gradient, every rank's shard glued (an all-gather)
    glued = np.concatenate([per_rank(100 + r, (N, shard, D)) for r in range(world)], axis=1)
    for r, (y, grad) in enumerate(got):
        np.testing.assert_array_equal(y, total[:, r * shard : (r + 1) * shard])
        np.testing.assert_array_equal(grad, glued)


# -- activation memory ---------------------------------------------------------------------
BIG = {"context": 32, "d_model": 64, "nhead": 8, "num_layers": 2}


def peak_saved_bytes(world: int, sp: bool, regather: bool = True) -> int:
    """Rank 0's peak bytes saved for backward over one training step of the bigger GPT."""
    ids, target = make_batches(1, batch=4, length=32)[0]

    def rank() -> int:
        s = TensorParallel(
            build(**BIG), optimizer_factory("sgd"), TokenCrossEntropy(), sequence_parallel=sp
        )
        for m in s.model.modules():
            if isinstance(m, (ColumnParallelDense, TensorParallelAttention)):
                m.regather_input = regather
        with ActivationTracker() as mem:
            loss = s.loss_fn(s.model(sg.tensor(ids)), sg.tensor(target))
            mem.mark_forward(loss)
            loss.backward()
        return mem.peak_bytes

    return on_ranks(world, rank)[0]


def test_sequence_parallelism_divides_activation_memory_by_tp() -> None:
    """Megatron's accounting: per rank, tensor parallelism alone holds ``R + S/t`` (``S``:
    what the split layers keep; ``R``: the LayerNorm/dropout/residual region every rank
    repeats), sequence parallelism ``(R + S)/t`` -- one process's activations over ``t``."""
    ids, target = make_batches(1, batch=4, length=32)[0]
    model = build(**BIG)
    with ActivationTracker() as mem:
        mem.mark_forward(TokenCrossEntropy()(model(sg.tensor(ids)), sg.tensor(target)))
    single = mem.peak_bytes

    tp2, tp4 = peak_saved_bytes(2, False), peak_saved_bytes(4, False)
    sp2, sp4 = peak_saved_bytes(2, True), peak_saved_bytes(4, True)
    replicated = 2 * tp2 - single  # R, from R + S/2 and R + S
    assert 0.15 * single < replicated < 0.35 * single  # the LN/dropout share is sizable
    np.testing.assert_allclose(tp4, replicated + (single - replicated) / 4, rtol=0.02)
    for t, sp in ((2, sp2), (4, sp4)):
        np.testing.assert_allclose(sp, single / t, rtol=0.02)  # everything split t ways
    # the saving is the replicated region's (1 - 1/t)
    np.testing.assert_allclose(tp4 - sp4, replicated * 3 / 4, rtol=0.05)


def test_column_layers_keep_the_shard_not_the_gathered_sequence() -> None:
    fused, plain = peak_saved_bytes(2, True), peak_saved_bytes(2, True, regather=False)
    # per layer the QKV and linear1 inputs, plus the head's: (2 layers x 2 + 1) x (N, T, d)
    # float32 arrays, of which the fused op keeps half (this rank's positions)
    gathered = (2 * 2 + 1) * 4 * 32 * 64 * 4
    assert plain - fused == gathered // 2


def test_plain_gather_path_trains_the_same() -> None:
    batches = make_batches(steps=2)
    truth = train_single(batches, "sgd")

    def make() -> TensorParallel:
        s = TensorParallel(build(), optimizer_factory("sgd"), TokenCrossEntropy(), None, True)
        for m in s.model.modules():
            if isinstance(m, (ColumnParallelDense, TensorParallelAttention)):
                m.regather_input = False
        return s

    for r in run_ranks(2, make, batches):
        for k, want in truth["state"].items():
            np.testing.assert_allclose(r["state"][k], want, rtol=1e-5, atol=1e-6, err_msg=k)


# -- errors --------------------------------------------------------------------------------
def test_context_not_divisible_by_tp_is_a_clear_error() -> None:
    def make() -> TensorParallel:
        return TensorParallel(build(), optimizer_factory("sgd"), TokenCrossEntropy(), None, True)

    with pytest.raises(ConfigError, match="expected a length divisible by 3, found 8"):
        run_ranks(3, make, [])


def test_a_batch_whose_length_does_not_divide_is_a_clear_error() -> None:
    def make() -> TensorParallel:
        return TensorParallel(build(), optimizer_factory("sgd"), TokenCrossEntropy(), None, True)

    with pytest.raises(ConfigError, match="expected a length divisible by 2, found 7"):
        run_ranks(2, make, make_batches(1, length=7))


def test_sequence_parallelism_on_an_mlp_is_a_clear_error() -> None:
    def make() -> TensorParallel:
        model = sg.nn.Sequential(sg.nn.Linear(4, 8), sg.nn.ReLU(), sg.nn.Linear(8, 2))
        return TensorParallel(model, optimizer_factory("sgd"), TokenCrossEntropy(), None, True)

    with pytest.raises(ConfigError, match="expected a GPT, found Sequential"):
        run_ranks(2, make, [])
