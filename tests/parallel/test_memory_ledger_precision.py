"""MemoryLedger in the ZeRO paper's own precision: 2Ψ fp16 params + 2Ψ fp16 grads + 12Ψ
(fp32 master + Adam's two moments), counted by dtype.

The formulas are checked in closed form (the paper's table: 16Ψ, 4Ψ + 12Ψ/N, 2Ψ + 14Ψ/N,
16Ψ/N). The measured side is built from real arrays in the paper's layout — a float16 copy
of a real MLP and the float16 gradients of a real backward through it, flattened and cut
into ``N`` padded shards as ZeRO does, and one real Adam step on the fp32 master shard — so
the ledger's by-dtype counting of each stage's share is what is tested.
"""

from __future__ import annotations

import numpy as np
import pytest

import sparkgrad as sg
import sparkgrad.nn.functional as F
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.memory_ledger import MemoryLedger, held_bytes_by_dtype


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("N", [1, 2, 4, 7])
def test_expected_totals_are_the_paper_formulas(N: int, precision: str) -> None:  # noqa: N803
    psi = 1200
    want = [16 * psi, 4 * psi + 12 * psi / N, 2 * psi + 14 * psi / N, 16 * psi / N]
    got = [MemoryLedger.expected(s, psi, N, "adam", precision)["total"] for s in range(4)]
    np.testing.assert_allclose(got, want)
    one = MemoryLedger.expected(2, psi, N, "adam", precision)
    assert one["parameters"] == 2 * psi and one["gradients"] == 2 * psi / N
    assert one["optimizer"] == 12 * psi / N
    # fp32 stays the old table
    assert MemoryLedger.expected(2, psi, N)["total"] == 4 * psi + 12 * psi / N
    with pytest.raises(ConfigError, match="precision must be fp32, fp16 or bf16, found 'fp8'"):
        MemoryLedger.expected(1, psi, N, "adam", "fp8")


def _paper_layout(stage: int, n: int, rank: int) -> tuple[list, list, list, int]:
    """This rank's arrays in the paper's mixed-precision layout, from a real model and step."""
    sg.manual_seed(0)
    model = sg.nn.Sequential(sg.nn.Linear(12, 16), sg.nn.ReLU(), sg.nn.Linear(16, 5))
    master = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
    psi = master.size
    padded = -(-psi // n) * n
    half = model.to(sg.float16)  # the compute copy
    x, y = sg.randn(8, 12).half(), sg.tensor(np.arange(8) % 5)
    F.cross_entropy(half(x).float(), y).backward()
    flat16 = np.zeros(padded, np.float16)
    flat16[:psi] = np.concatenate([p.detach().numpy().ravel() for p in half.parameters()])
    grad16 = np.zeros(padded, np.float16)
    grad16[:psi] = np.concatenate([p.grad.numpy().ravel() for p in half.parameters()])
    shard = slice(rank * padded // n, (rank + 1) * padded // n)
    master_shard = sg.tensor(np.pad(master, (0, padded - psi))[shard].copy(), requires_grad=True)
    master_shard.grad = sg.tensor(grad16[shard].astype(np.float32))
    adam = sg.optim.Adam([master_shard], lr=1e-3)
    adam.step()
    params = [flat16[shard].copy()] if stage >= 3 else [flat16]
    grads = [grad16[shard].copy()] if stage >= 2 else [grad16]
    moments = [v for v in adam.state[master_shard].values() if hasattr(v, "shape")]
    return params, grads, [master_shard, *moments], padded


@pytest.mark.parametrize("N", [2, 4])
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_measured_by_dtype_matches_the_paper_table(stage: int, N: int) -> None:  # noqa: N803
    for rank in range(N):
        params, grads, opt, padded = _paper_layout(stage, N, rank)
        ledger = MemoryLedger(params, grads, opt, stage, N, padded, "adam", "fp16")
        d = ledger.as_dict()
        want = d["expected_bytes"]
        step_bytes = 4  # Adam's step counter (a float32 scalar), as in the fp32 ledger test
        assert d["measured_by_dtype"]["parameters"] == {"float16": want["parameters"]}
        assert d["measured_by_dtype"]["gradients"] == {"float16": want["gradients"]}
        assert d["measured_by_dtype"]["optimizer"] == {"float32": want["optimizer"] + step_bytes}
        assert d["measured_bytes"]["total"] == want["total"] + step_bytes
        total = {1: 4 * padded + 12 * padded / N, 2: 2 * padded + 14 * padded / N}
        assert want["total"] == total.get(stage, 16 * padded / N)
        assert "fp16" in ledger.table()


def test_held_bytes_by_dtype_counts_each_owner_once() -> None:
    a = np.zeros(10, np.float16)
    assert held_bytes_by_dtype([a[:5], a[5:], np.zeros(3, np.float32), None]) == {
        "float16": 20,
        "float32": 12,
    }
