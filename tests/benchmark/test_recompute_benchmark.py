"""``python -m sparkgrad.benchmark.recompute --sweep``: peak activations O(L) against O(sqrt(L)).

The measurement is the benchmark's (one step under an ActivationTracker); the truths are the
plans' formula (:mod:`sparkgrad.parallel.activation_memory`, predicted == measured for every
mode and depth), ``none``'s gradients (every mode must give them bit for bit) and a hand
evaluation from ``none``'s own measurements: ``none`` = ``L·A + E`` gives one layer's ``A``
and the rest ``E``; ``checkpoint_sequential`` with ``S = sqrt(L)`` segments must then hold
``(S − 1)·c + S·A + E`` (``c = 4·b·s·h``, one kept block input), and ``blocks`` one more
``c`` per layer.
"""

from __future__ import annotations

import argparse

from sparkgrad.benchmark.recompute import MODES, main, same_grads, sweep, sweep_table

SIZE = {"d_model": 8, "context": 8, "heads": 2, "batch": 2, "steps": 0}


def test_sqrt_segments_grow_as_sqrt_layers_and_the_formula_predicts_every_peak():
    results = sweep([4, 16], argparse.Namespace(layers=0, **SIZE))
    for by_mode in results.values():
        assert set(by_mode) == set(MODES)
        for r in by_mode.values():
            assert r["predicted"] == r["peak"]  # the plans' formula, to the byte
            assert same_grads(r, by_mode["none"])
    none = {n: results[n]["none"]["peak"] for n in results}
    layer = (none[16] - none[4]) // 12  # A: one layer's bytes
    rest = none[4] - 4 * layer  # E: embedding, head, loss
    c = 4 * SIZE["batch"] * SIZE["context"] * SIZE["d_model"]  # a kept block input
    for n, s in ((4, 2), (16, 4)):
        assert results[n]["sqrt"]["peak"] == (s - 1) * c + s * layer + rest
    assert results[16]["blocks"]["peak"] - results[4]["blocks"]["peak"] == 12 * c
    growth = {m: results[16][m]["peak"] / results[4][m]["peak"] for m in MODES}
    assert growth["none"] > 3.5  # 4x the layers: ~4x the bytes, O(L)
    assert 1.5 < growth["sqrt"] < 2.1  # sqrt(4) = 2: O(sqrt(L))
    text = sweep_table(results)
    assert "peak growth from 4 to 16 layers (4x the layers, sqrt 2.00x)" in text
    assert " NO" not in text


def test_the_default_table_has_the_sqrt_mode_and_its_prediction():
    text = main(["--layers", "4", "--context", "8", "--d-model", "8", "--heads", "2",
                 "--batch", "1", "--steps", "0"])  # fmt: skip
    rows = {line.split()[0]: line.split() for line in text.splitlines()[2:]}
    assert set(rows) == set(MODES)
    for cells in rows.values():
        assert cells[4] == "1.000" and cells[-1] == "yes"  # pred/meas, same grads
