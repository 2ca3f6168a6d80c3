"""Ring attention against full attention on one rank: same outputs, same gradients.

Every rank takes its piece of the *same* full Q, K, V (contiguous, or the balanced causal
layout), runs ring attention over the threads transport, and backpropagates its piece of
one fixed probe ``sum(O * probe)``. Gathered back into the full sequence, the outputs and
the gradients of q, k, v must equal ``F.scaled_dot_product_attention`` on the whole
sequence (itself checked once against PyTorch). The forward must send exactly cp-1
packed K/V blocks per rank, and no score block may be larger than one chunk pair.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import sparkgrad as sg
import sparkgrad.distributed as dist
import sparkgrad.nn.functional as F
from sparkgrad.distributed.state import resolve
from sparkgrad.errors import ShapeError
from sparkgrad.parallel.context import (
    block_mask,
    gather_sequence,
    positions,
    ring_attention,
    split_sequence,
)

# the module (the package re-exports the function under the same name)
ring_module = importlib.import_module("sparkgrad.parallel.context.ring_attention")


def make(shape_q, ev, dtype, seed):
    rng = np.random.default_rng(seed)
    *lead, length, e = shape_q
    q = rng.standard_normal(shape_q)
    k = rng.standard_normal((*lead, length, e))
    v = rng.standard_normal((*lead, length, ev))
    probe = rng.standard_normal((*lead, length, ev))
    return [a.astype(dtype) for a in (q, k, v, probe)]


def full_truth(q, k, v, probe, causal):
    """Output and gradients of unsplit attention for the loss ``sum(O * probe)``."""
    ts = [sg.tensor(a, requires_grad=True) for a in (q, k, v)]
    out = F.scaled_dot_product_attention(*ts, is_causal=causal)
    (out * sg.tensor(probe)).sum().backward()
    return {"out": out.detach().numpy(), **{n: t.grad.numpy() for n, t in zip("qkv", ts)}}


def ring_run(q, k, v, probe, cp, causal):
    """Every rank's output and gradients, gathered back into the full sequence, plus the
    send records of forward and backward per rank."""

    def rank_fn(rank, world):
        dist.init_process_group("threads", rank=rank, world_size=world)
        try:
            group = resolve(None)
            piece = [split_sequence(a, rank, cp, causal) for a in (q, k, v, probe)]
            ts = [sg.tensor(a, requires_grad=True) for a in piece[:3]]
            group.pg.reset_history()
            out = ring_attention(*ts, group, is_causal=causal)
            fwd = [h for h in group.pg.history if h["collective"] in ("send", "recv")]
            group.pg.reset_history()
            (out * sg.tensor(piece[3])).sum().backward()
            bwd = [h for h in group.pg.history if h["collective"] in ("send", "recv")]
            res = {"out": out.detach().numpy(), **{n: t.grad.numpy() for n, t in zip("qkv", ts)}}
            return res, fwd, bwd
        finally:
            dist.destroy_process_group()

    results = dist.spawn(rank_fn, cp)
    parts = [r[0] for r in results]
    full = {n: gather_sequence([p[n] for p in parts], causal) for n in parts[0]}
    return full, [r[1] for r in results], [r[2] for r in results]


CASES = [  # (cp, causal, (batch, heads, L, E), Ev)
    (1, False, (2, 3, 6, 4), 4),
    (2, False, (2, 3, 8, 4), 5),
    (3, False, (1, 2, 9, 3), 2),
    (1, True, (2, 1, 6, 4), 4),
    (2, True, (3, 2, 8, 4), 3),
    (4, True, (2, 3, 16, 5), 4),
]


@pytest.mark.parametrize("cp,causal,shape,ev", CASES)
def test_ring_equals_full_attention_float64(cp, causal, shape, ev) -> None:
    q, k, v, probe = make(shape, ev, np.float64, seed=cp + 10 * causal)
    truth = full_truth(q, k, v, probe, causal)
    got, fwd, bwd = ring_run(q, k, v, probe, cp, causal)
    for name in ("out", "q", "k", "v"):
        np.testing.assert_allclose(got[name], truth[name], rtol=1e-10, atol=1e-12, err_msg=name)
    kv_bytes = (k.nbytes + v.nbytes) // cp
    for rank in range(cp):  # forward: cp-1 hops, each one send of the packed K, V block
        sends = [h for h in fwd[rank] if h["collective"] == "send"]
        assert len(sends) == cp - 1 and len(fwd[rank]) == 2 * (cp - 1)
        assert all(h["nbytes"] == kv_bytes for h in sends)
        # backward: cp-1 hops of (K, V, dK, dV), then one of (dK, dV) home
        sizes = [h["nbytes"] for h in bwd[rank] if h["collective"] == "send"]
        assert sizes == ([2 * kv_bytes] * (cp - 1) + [kv_bytes] if cp > 1 else [])


@pytest.mark.parametrize("cp,causal", [(2, False), (2, True)])
def test_ring_equals_full_attention_float32(cp, causal) -> None:
    q, k, v, probe = make((2, 2, 8, 4), 4, np.float32, seed=7)
    truth = full_truth(q, k, v, probe, causal)
    got, _, _ = ring_run(q, k, v, probe, cp, causal)
    for name in ("out", "q", "k", "v"):
        assert got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], truth[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_truth_is_pytorch() -> None:
    torch = pytest.importorskip("torch")
    q, k, v, probe = make((2, 3, 8, 4), 5, np.float64, seed=3)
    for causal in (False, True):
        truth = full_truth(q, k, v, probe, causal)
        ts = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
        out = torch.nn.functional.scaled_dot_product_attention(*ts, is_causal=causal)
        (out * torch.tensor(probe)).sum().backward()
        np.testing.assert_allclose(truth["out"], out.detach().numpy(), rtol=1e-10, atol=1e-12)
        for name, t in zip("qkv", ts):
            np.testing.assert_allclose(truth[name], t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_finite_differences_tiny_causal_cp2() -> None:
    """d(sum(O*probe))/dx by central differences equals the ring's gradients (cp=2, causal)."""
    q, k, v, probe = make((1, 1, 4, 2), 2, np.float64, seed=5)
    got, _, _ = ring_run(q, k, v, probe, 2, True)

    def loss(q, k, v):
        return float((full_truth(q, k, v, probe, True)["out"] * probe).sum())

    eps = 1e-6
    arrays = {"q": q, "k": k, "v": v}
    for name, a in arrays.items():
        fd = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            plus, minus = a.copy(), a.copy()
            plus[i] += eps
            minus[i] -= eps
            lp = loss(**{**arrays, name: plus})
            lm = loss(**{**arrays, name: minus})
            fd[i] = (lp - lm) / (2 * eps)
        np.testing.assert_allclose(got[name], fd, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("cp,causal,chunk", [(3, False, 3), (4, True, 2)])
def test_no_score_block_larger_than_a_chunk_pair(monkeypatch, cp, causal, chunk) -> None:
    """Every score block is (L/cp)² or (L/2cp)², never L×L; causal skips invisible blocks."""
    seen = []
    real = ring_module.block_scores

    def spy(q, k, scale, kind):
        s = real(q, k, scale, kind)
        seen.append((s.shape[-2:], kind))
        return s

    monkeypatch.setattr(ring_module, "block_scores", spy)
    length = chunk * (2 * cp if causal else cp)
    q, k, v, probe = make((1, 2, length, 3), 3, np.float64, seed=1)
    ring_run(q, k, v, probe, cp, causal)
    assert {shape for shape, _ in seen} == {(chunk, chunk)}
    if causal:  # of the (2cp)² chunk pairs, the visible ones: full below, causal on the diagonal
        n = 2 * cp
        per_pass = n * (n - 1) // 2 + n  # forward and backward each compute them once
        assert len(seen) == 2 * per_pass
        assert sum(kind == "causal" for _, kind in seen) == 2 * n
    else:
        assert len(seen) == 2 * cp * cp


def test_chunks_layout_and_masks() -> None:
    assert positions(0, 2, 8, balanced=True).tolist() == [0, 1, 6, 7]
    assert positions(1, 2, 8, balanced=True).tolist() == [2, 3, 4, 5]
    assert positions(2, 3, 9, balanced=False).tolist() == [6, 7, 8]
    x = np.arange(2 * 12 * 3).reshape(2, 12, 3)
    for balanced in (False, True):
        parts = [split_sequence(x, r, 3, balanced, dim=1) for r in range(3)]
        np.testing.assert_array_equal(gather_sequence(parts, balanced, dim=1), x)
    assert [block_mask(1, j) for j in range(3)] == ["full", "causal", "none"]


def test_errors_name_expected_and_found() -> None:
    x = np.zeros((1, 1, 10, 2))
    with pytest.raises(ShapeError, match="divisible by cp = 3.*found 10"):
        split_sequence(x, 0, 3, balanced=False)
    with pytest.raises(ShapeError, match=r"divisible by 2·cp = 4.*found 10"):
        split_sequence(x, 0, 2, balanced=True)
    t = sg.tensor(np.zeros((1, 1, 3, 2)))
    with pytest.raises(ShapeError, match=r"divisible by 2·cp = 2.*found 3"):
        ring_attention(t, t, t, None, is_causal=True)
    with pytest.raises(ShapeError, match="same leading dims"):
        ring_attention(t, sg.tensor(np.zeros((1, 2, 3, 2))), t)
    with pytest.raises(ShapeError, match="same head dim"):
        ring_attention(t, sg.tensor(np.zeros((1, 1, 3, 4))), sg.tensor(np.zeros((1, 1, 3, 4))))
