"""The vocabulary split over thread ranks against PyTorch: cross-entropy from the slices of
the logits, embedding from the slices of the table, and the Split bookkeeping.

Truth: ``torch.nn.functional.cross_entropy`` / ``F.embedding`` on the whole tensors, their
values and their gradients (each rank must hold its slice of PyTorch's gradient). The
vocabulary sizes (11, 13) are divisible by none of the group sizes, so slices are uneven.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sparkgrad as sg
from sparkgrad.autodiff import nn
from sparkgrad.distributed.state import default_group
from sparkgrad.errors import CheckpointError, ConfigError
from sparkgrad.models.sequence_parts import TokenCrossEntropy
from sparkgrad.parallel.tensor.splits import Split, cut_full, gather_full
from sparkgrad.parallel.tensor.vocab import (
    VocabParallelCrossEntropy,
    VocabParallelEmbedding,
    vocab_parallel_loss,
    vocab_sizes,
)
from tests.parallel.tp_gpt_helpers import on_ranks

RNG = np.random.default_rng(0)


def my_slice(full: np.ndarray, axis: int = -1) -> np.ndarray:
    """This thread rank's vocabulary slice of ``full`` (along ``axis``)."""
    g = default_group()
    sizes = vocab_sizes(full.shape[axis], g.size())
    lo = sum(sizes[: g.rank()])
    return np.take(full, np.arange(lo, lo + sizes[g.rank()]), axis=axis)


def test_vocab_sizes_are_as_even_as_possible() -> None:
    assert vocab_sizes(11, 2) == (6, 5)
    assert vocab_sizes(11, 4) == (3, 3, 3, 2)
    assert vocab_sizes(12, 4) == (3, 3, 3, 3)
    with pytest.raises(ConfigError, match="expected at least 4 tokens, found a vocabulary of 3"):
        vocab_sizes(3, 4)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("world", "vocab", "ignore"), [(2, 11, -100), (3, 13, 0), (4, 11, 5)])
def test_cross_entropy_from_slices_equals_torch(
    world: int, vocab: int, ignore: int, reduction: str
) -> None:
    logits = (RNG.standard_normal((3, 5, vocab)) * 3).astype(np.float32)
    target = RNG.integers(0, vocab, (3, 5))
    target[0, :2] = ignore
    upstream = RNG.standard_normal((3, 5)).astype(np.float32)

    t_logits = torch.tensor(logits, requires_grad=True)
    want = torch.nn.functional.cross_entropy(
        t_logits.reshape(-1, vocab), torch.tensor(target).reshape(-1),
        ignore_index=ignore, reduction=reduction,
    )  # fmt: skip
    want_out = want.reshape(3, 5) if reduction == "none" else want
    want_out.backward(torch.tensor(upstream) if reduction == "none" else None)

    def rank() -> tuple:
        loss_fn = VocabParallelCrossEntropy(
            default_group(), ignore_index=ignore, reduction=reduction
        )
        z = sg.tensor(my_slice(logits), requires_grad=True)
        loss = loss_fn(z, sg.tensor(target))
        loss.backward(sg.tensor(upstream) if reduction == "none" else None)
        return loss.detach().numpy(), z.grad.numpy(), my_slice(t_logits.grad.numpy())

    for loss, grad, want_grad in on_ranks(world, rank):
        np.testing.assert_allclose(loss, want_out.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-7)


def test_cross_entropy_matches_on_huge_logits_and_all_ignored_rows() -> None:
    logits = np.array([[1000.0, -1000.0, 999.0], [5.0, 5.0, 5.0]], dtype=np.float32)
    target = np.array([2, 0])
    want = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(target))

    def rank() -> tuple:
        loss_fn = VocabParallelCrossEntropy(default_group())
        value = loss_fn(sg.tensor(my_slice(logits)), sg.tensor(target)).item()
        nothing = loss_fn(sg.tensor(my_slice(logits)), sg.tensor(np.array([-100, -100]))).item()
        return value, nothing

    for value, nothing in on_ranks(2, rank):
        assert value == pytest.approx(want.item(), rel=1e-6)  # the max is reduced first
        assert np.isnan(nothing)  # PyTorch: a mean over no counted target is NaN


def test_cross_entropy_target_out_of_range_is_a_clear_error() -> None:
    def rank() -> None:
        z = sg.tensor(my_slice(np.zeros((2, 11), np.float32)))
        VocabParallelCrossEntropy(default_group())(z, sg.tensor(np.array([3, 11])))

    with pytest.raises(IndexError, match="target 11 is out of bounds for 11 classes"):
        on_ranks(2, rank)


@pytest.mark.parametrize("sequence_parallel", [False, True])
@pytest.mark.parametrize("world", [2, 4])
def test_embedding_from_slices_equals_torch(world: int, sequence_parallel: bool) -> None:
    table = RNG.standard_normal((11, 6)).astype(np.float32)
    ids = RNG.integers(0, 11, (3, 8))
    upstream = RNG.standard_normal((3, 8, 6)).astype(np.float32)
    t_table = torch.tensor(table, requires_grad=True)
    want = torch.nn.functional.embedding(torch.tensor(ids), t_table)
    want.backward(torch.tensor(upstream))
    shard = 8 // world

    def rank() -> tuple:
        g = default_group()
        full = nn.Embedding(11, 6)
        full.weight.array[...] = table
        layer = VocabParallelEmbedding.from_embedding(full, g, sequence_parallel)
        out = layer(sg.tensor(ids))
        if sequence_parallel:  # this rank's positions only: its shard of the upstream grad
            lo = g.rank() * shard
            out.backward(sg.tensor(upstream[:, lo : lo + shard]))
            want_out = want.detach().numpy()[:, lo : lo + shard]
        else:
            out.backward(sg.tensor(upstream))
            want_out = want.detach().numpy()
        return (
            out.detach().numpy(),
            want_out,
            layer.weight.grad.numpy(),
            my_slice(t_table.grad.numpy(), 0),
        )

    for out, want_out, grad, want_grad in on_ranks(world, rank):
        np.testing.assert_allclose(out, want_out, rtol=1e-6)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-6)


def test_loss_stand_in_keeps_ignore_index_and_refuses_what_it_cannot_split() -> None:
    group = object()
    assert vocab_parallel_loss(TokenCrossEntropy(ignore_index=0), group).ignore_index == 0
    plain = vocab_parallel_loss(nn.CrossEntropyLoss(reduction="sum"), group)
    assert plain.reduction == "sum"
    with pytest.raises(ConfigError, match="expected a TokenCrossEntropy"):
        vocab_parallel_loss(nn.CrossEntropyLoss(label_smoothing=0.1), group)
    with pytest.raises(ConfigError, match="found MSELoss"):
        vocab_parallel_loss(nn.MSELoss(), group)


# -- Split: what full_state_dict and load_full_state do with every cut ----------------------
@pytest.mark.parametrize(
    ("split", "full_shape"),
    [
        (Split(0), (8, 3)),
        (Split(1), (3, 8)),
        (Split(0, blocks=3), (24, 5)),  # packed Q, K, V
        (Split(0, blocks=3), (24,)),
        (Split(0, sizes=(3, 3, 3, 2)), (11, 4)),  # uneven vocabulary rows
        (Split(-1, sizes=(3, 3, 3, 2)), (2, 5, 11)),  # logits
    ],
)
def test_split_cut_and_glue_round_trip(split: Split, full_shape: tuple) -> None:
    full = np.arange(np.prod(full_shape), dtype=np.float32).reshape(full_shape)

    def rank() -> tuple:
        g = default_group()
        dim = split.dim % full.ndim
        width = split.sizes[g.rank()] if split.sizes else full.shape[dim] // (4 * split.blocks)
        local_shape = tuple(
            split.blocks * width if d == dim else s for d, s in enumerate(full_shape)
        )
        mine = cut_full(full, split, g, "w", local_shape)
        return mine, gather_full(mine, split, g)

    pieces = on_ranks(4, rank)
    for _, glued in pieces:
        np.testing.assert_array_equal(glued, full)
    if split.blocks == 3:  # rank r holds its quarter of Q, of K and of V, in that order
        q, k, v = np.split(full, 3, axis=0)
        want = np.concatenate([np.split(b, 4, axis=0)[1] for b in (q, k, v)], axis=0)
        np.testing.assert_array_equal(pieces[1][0], want)


def test_cut_checks_the_full_shape() -> None:
    def rank() -> None:
        cut_full(np.zeros((10, 4)), Split(0, sizes=(6, 5)), default_group(), "token.weight", (6, 4))

    with pytest.raises(
        CheckpointError, match=r"token.weight: expected .* \(11, 4\), found \(10, 4\)"
    ):
        on_ranks(2, rank)
