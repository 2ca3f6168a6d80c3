"""Activation memory, measured: checkpointing takes it from O(layers) to O(sqrt(layers)).

The measurement is :class:`sparkgrad.autodiff.saved_memory.ActivationTracker`: the bytes of
the arrays that the live graph keeps for backward (parameters left out), at the end of
forward and again each time backward recomputes a segment. The formula is
:meth:`sparkgrad.parallel.memory_ledger.MemoryLedger.expected_activations`, fed with what ONE
layer saves; for 16 layers the measured bytes must equal it exactly, for every mode.
"""

from __future__ import annotations

import gc
import math
import weakref

import numpy as np
import pytest

import sparkgrad as sg
from sparkgrad import nn
from sparkgrad.autodiff.saved_memory import ActivationTracker, saved_bytes
from sparkgrad.parallel.memory_ledger import MemoryLedger
from sparkgrad.utils.checkpoint import checkpoint, checkpoint_sequential

N, S, D, HEADS = 2, 8, 16, 4


def _measure(mode: str, layers: int, dropout: float = 0.1) -> tuple[int, int]:
    """(bytes at the end of forward, peak bytes over the step) of an encoder stack."""
    sg.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        D, HEADS, 2 * D, dropout, activation="gelu", batch_first=True, norm_first=True
    )
    enc = nn.TransformerEncoder(layer, layers)
    for m in enc.modules():
        if isinstance(m, nn.MultiheadAttention):
            m.selective_recompute = mode == "selective"
    x = sg.randn(N, S, D, requires_grad=True)
    with ActivationTracker() as mem:
        if mode == "blocks":
            enc.checkpoint_layers = True
            y = enc(x)
        elif mode == "sequential":
            y = checkpoint_sequential(enc.layers, math.isqrt(layers), x)
        else:
            y = enc(x)
        loss = y.sum()  # a sum saves nothing: only the layers are measured
        mem.mark_forward(loss)
        loss.backward()
    return mem.forward_bytes, mem.peak_bytes


@pytest.fixture(scope="module")
def one_layer():
    """What one layer saves (A), its input (c), and the s²-sized part of A (S)."""
    a, _ = _measure("none", 1)
    selective, _ = _measure("selective", 1)
    return {"layer_bytes": a, "input_bytes": N * S * D * 4, "score_bytes": a - selective}


def test_the_selective_share_is_the_attention_probabilities_and_dropout_mask(one_layer):
    """S = N·H·s² float32 probabilities + N·H·s² boolean dropout mask, nothing else."""
    assert one_layer["score_bytes"] == N * HEADS * S * S * (4 + 1)
    without_dropout = _measure("none", 1, 0.0)[0] - _measure("selective", 1, 0.0)[0]
    assert without_dropout == N * HEADS * S * S * 4  # no mask to keep


@pytest.mark.parametrize("mode", ["none", "blocks", "selective", "sequential"])
def test_sixteen_layers_hold_what_the_formula_says(one_layer, mode):
    forward, peak = _measure(mode, 16)
    expected = MemoryLedger.expected_activations(mode, 16, segments=4, **one_layer)
    assert (forward, peak) == (expected["forward"], expected["peak"])


def test_the_peak_falls_from_o_of_layers_to_o_of_sqrt_layers(one_layer):
    """none ~ L·A; checkpoint_sequential(sqrt L) ~ sqrt(L)·(A + c); blocks ~ A + L·c."""
    peaks = {m: _measure(m, 16)[1] for m in ("none", "sequential", "blocks")}
    a, c = one_layer["layer_bytes"], one_layer["input_bytes"]
    assert peaks["none"] == 16 * a
    assert peaks["sequential"] == 4 * a + 3 * c  # sqrt(16) layers of A, 3 kept inputs
    assert peaks["blocks"] == a + 16 * c
    assert peaks["sequential"] / peaks["none"] < 0.3 and peaks["blocks"] / peaks["none"] < 0.15


def test_the_formulas_own_numbers():
    f = MemoryLedger.expected_activations
    assert f("none", 16, 100, 10) == {"forward": 1600, "peak": 1600}
    assert f("blocks", 16, 100, 10) == {"forward": 160, "peak": 260}
    assert f("selective", 16, 100, 10, score_bytes=30) == {"forward": 1120, "peak": 1120}
    assert f("sequential", 16, 100, 10, segments=4) == {"forward": 430, "peak": 430}
    assert f("sequential", 10, 100, 10, segments=3)["peak"] == 2 * 10 + 4 * 100  # 3+3, last 4
    with pytest.raises(ValueError, match="recompute must be one of"):
        f("all", 16, 100, 10)


def test_saved_bytes_counts_activations_once_and_leaves_parameters_out():
    lin = nn.Linear(4, 3)
    x = sg.randn(2, 4)
    h = lin(x)  # saves x (32 bytes) and the weight (a parameter: not counted)
    y = h.tanh()  # saves its output (24 bytes)
    assert saved_bytes(y) == 2 * 4 * 4 + 2 * 3 * 4
    z = y[:, :2] * y[:, 1:]  # two views of the same (2, 3) block: counted once
    assert saved_bytes(z) == saved_bytes(y)


def test_after_a_checkpointed_forward_nothing_inside_is_alive():
    """The function's own graph and what it saved are freed by plain reference counting."""
    lin1, lin2 = nn.Linear(4, 8), nn.Linear(8, 4)
    x = sg.randn(5, 4, requires_grad=True)
    inner = []

    def f(t):
        h = lin1(t).tanh()
        inner.append(weakref.ref(h.grad_fn))
        inner.extend(weakref.ref(a) for a in h.grad_fn.ctx.saved_tensors)
        return lin2(h).tanh()

    gc.collect()
    gc.disable()
    try:
        y = checkpoint(f, x)
        assert all(r() is None for r in inner)
        assert saved_bytes(y) == x.array.nbytes
    finally:
        gc.enable()
    y.sum().backward()
    assert x.grad is not None and lin1.weight.grad is not None
    np.testing.assert_array_equal(y.detach().numpy(), lin2(lin1(x).tanh()).tanh().detach().numpy())


def test_a_ledger_reports_measured_activations_beside_the_zero_kinds():
    ledger = MemoryLedger([np.zeros(4, np.float32)], [], [], numel=4, optimizer="none",
                          activations=1234, recompute="blocks")  # fmt: skip
    d = ledger.as_dict()
    assert d["activation_bytes"] == 1234 and d["recompute"] == "blocks"
    assert d["measured_bytes"]["total"] == 16  # activations are not sharded, not in the total
    assert "activations" in ledger.table() and "--recompute blocks" in ledger.table()
    assert "activation_bytes" not in MemoryLedger([], [], [], numel=0).as_dict()


def test_the_benchmark_table_shows_the_memory_falling_and_the_same_gradients():
    from sparkgrad.benchmark.recompute import main

    text = main(["--layers", "4", "--context", "16", "--d-model", "16", "--steps", "1"])
    rows = {line.split()[0]: line.split() for line in text.splitlines()[2:]}
    assert set(rows) == {"none", "blocks", "selective", "sqrt"}
    assert all(row[-1] == "yes" for row in rows.values())
    assert all(row[4] == "1.000" for row in rows.values())  # predicted / measured peak
    share = {mode: float(row[5]) for mode, row in rows.items()}  # peak / none's peak
    assert share["blocks"] < share["selective"] < share["none"] == 1.0
    assert share["blocks"] < share["sqrt"] < share["none"]  # 2 segments of 2 blocks
