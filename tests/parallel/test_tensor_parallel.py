"""The split layers against the unsplit ``Linear``: same outputs, same gradients.

Every rank slices the *same* full layer (built once here, read-only on every thread), runs
its piece, and must reproduce the full layer's output and its slice of every gradient.
The column -> ReLU -> row block must do exactly one all_reduce in forward (and one in
backward), counted in the process group's history.
"""

from __future__ import annotations

import numpy as np
import pytest

import sparkgrad as sg
import sparkgrad.distributed as dist
from sparkgrad.distributed.state import resolve
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.tensor.layers import ColumnParallelDense, RowParallelDense

RTOL, ATOL = 1e-5, 1e-6


def full_run(layer: sg.nn.Module, x: np.ndarray, probe: np.ndarray) -> dict:
    """Output and gradients of the unsplit layer for the loss ``sum(layer(x) * probe)``."""
    xt = sg.tensor(x, requires_grad=True)
    out = layer(xt)
    (out * sg.tensor(probe)).sum().backward()
    grads = {"x": xt.grad.numpy(), "weight": layer.weight.grad.numpy()}
    grads["bias"] = layer.bias.grad.numpy()
    layer.zero_grad()
    return {"out": out.detach().numpy(), **grads}


def spawn_on_default_group(fn, world: int) -> list:
    def rank_fn(rank: int, world_size: int):
        dist.init_process_group("threads", rank=rank, world_size=world_size)
        try:
            return fn(rank, resolve(None))
        finally:
            dist.destroy_process_group()

    return dist.spawn(rank_fn, world)


@pytest.mark.parametrize("gather_output", [False, True])
@pytest.mark.parametrize("world", [2, 3, 4])
def test_column_parallel_matches_linear(world: int, gather_output: bool) -> None:
    sg.manual_seed(3)
    full = sg.nn.Linear(5, 12)
    rng = np.random.default_rng(0)
    x, probe = rng.standard_normal((6, 5)), rng.standard_normal((6, 12))
    x, probe = x.astype(np.float32), probe.astype(np.float32)
    truth = full_run(full, x, probe)

    def fn(rank: int, group):
        layer = ColumnParallelDense.from_dense(full, group, gather_output=gather_output)
        lo, hi = rank * 12 // world, (rank + 1) * 12 // world
        xt = sg.tensor(x, requires_grad=True)
        out = layer(xt)
        p = probe if gather_output else probe[:, lo:hi]
        (out * sg.tensor(p)).sum().backward()
        return (
            lo,
            hi,
            out.detach().numpy(),
            xt.grad.numpy(),
            layer.weight.grad.numpy(),
            layer.bias.grad,
        )

    for lo, hi, out, gx, gw, gb in spawn_on_default_group(fn, world):
        want = truth["out"] if gather_output else truth["out"][:, lo:hi]
        np.testing.assert_allclose(out, want, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(gx, truth["x"], rtol=RTOL, atol=ATOL)  # f's all_reduce
        np.testing.assert_allclose(gw, truth["weight"][lo:hi], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(gb.numpy(), truth["bias"][lo:hi], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("world", [2, 4])
def test_row_parallel_matches_linear(world: int) -> None:
    sg.manual_seed(4)
    full = sg.nn.Linear(8, 3)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 8)).astype(np.float32)
    probe = rng.standard_normal((5, 3)).astype(np.float32)
    truth = full_run(full, x, probe)

    def fn(rank: int, group):
        layer = RowParallelDense.from_dense(full, group)
        lo, hi = rank * 8 // world, (rank + 1) * 8 // world
        xt = sg.tensor(x[:, lo:hi], requires_grad=True)
        out = layer(xt)
        (out * sg.tensor(probe)).sum().backward()
        return (
            lo,
            hi,
            out.detach().numpy(),
            xt.grad.numpy(),
            layer.weight.grad.numpy(),
            layer.bias.grad,
        )

    for lo, hi, out, gx, gw, gb in spawn_on_default_group(fn, world):
        np.testing.assert_allclose(out, truth["out"], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(gx, truth["x"][:, lo:hi], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(gw, truth["weight"][:, lo:hi], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(gb.numpy(), truth["bias"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("world", [2, 4])
def test_column_row_block_does_one_all_reduce_each_way(world: int) -> None:
    sg.manual_seed(5)
    block = sg.nn.Sequential(sg.nn.Linear(6, 8), sg.nn.ReLU(), sg.nn.Linear(8, 6))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    xt = sg.tensor(x, requires_grad=True)
    want = block(xt)
    want.sum().backward()

    def fn(rank: int, group):
        split = sg.nn.Sequential(
            ColumnParallelDense.from_dense(block[0], group),
            sg.nn.ReLU(),
            RowParallelDense.from_dense(block[2], group),
        )

        def all_reduces() -> int:
            return sum(h["collective"] == "all_reduce" for h in group.pg.history)

        before = all_reduces()
        xr = sg.tensor(x, requires_grad=True)
        out = split(xr)
        forward = all_reduces() - before
        out.sum().backward()
        backward = all_reduces() - before - forward
        return forward, backward, out.detach().numpy(), xr.grad.numpy()

    for forward, backward, out, gx in spawn_on_default_group(fn, world):
        assert (forward, backward) == (1, 1)
        np.testing.assert_allclose(out, want.detach().numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_width_not_divisible_is_a_clear_error() -> None:
    sg.manual_seed(0)
    full = sg.nn.Linear(4, 10)

    def fn(rank: int, group):
        with pytest.raises(ConfigError, match="divisible by 4, found 10"):
            ColumnParallelDense.from_dense(full, group)
        with pytest.raises(ConfigError, match="divisible by 4, found 10"):
            RowParallelDense.from_dense(sg.nn.Linear(10, 4), group)
        return True

    assert all(spawn_on_default_group(fn, 4))
