"""``sg.Generator`` against ``torch.Generator``: the same interface, seeds and errors.

The numbers differ (PCG64 versus torch's Philox/MT), so the checks are about what the
interface promises: seeding, replaying a saved state, defaults and error types.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import sparkgrad as sg


def test_defaults_and_seeding_like_torch():
    g, t = sg.Generator(), torch.Generator()
    assert g.initial_seed() == t.initial_seed() == 67280421310721
    assert g.manual_seed(7) is g and g.initial_seed() == t.manual_seed(7).initial_seed() == 7
    assert g.manual_seed(-1).initial_seed() == t.manual_seed(-1).initial_seed()
    assert g.device == "cpu"


def test_a_seed_gives_numpys_default_rng_stream():
    assert (
        sg.Generator().manual_seed(3).permutation(20).tolist()
        == np.random.default_rng(3).permutation(20).tolist()
    )


def test_seed_draws_a_fresh_seed_and_reports_it():
    g = sg.Generator()
    s = g.seed()
    assert isinstance(s, int) and g.initial_seed() == s
    assert g.random() == sg.Generator().manual_seed(s).random()


def test_get_state_set_state_replays_the_stream():
    g = sg.Generator().manual_seed(1)
    g.random(5)
    state = g.get_state()
    a = g.random(4).tolist()
    g.random(3)
    assert g.set_state(state) is g and g.random(4).tolist() == a
    h = sg.Generator().set_state(state)  # another generator continues from the same point
    assert h.random(4).tolist() == a


def test_pickling_keeps_class_and_stream():
    g = sg.Generator().manual_seed(9)
    g.random(2)
    h = pickle.loads(pickle.dumps(g))
    assert isinstance(h, sg.Generator) and h.initial_seed() == 9
    assert h.random(3).tolist() == g.random(3).tolist()


def test_manual_seed_returns_the_global_generator():
    g = sg.manual_seed(4)
    assert isinstance(g, sg.Generator) and g.initial_seed() == 4
    a = sg.rand(3).tolist()
    sg.manual_seed(4)
    assert sg.rand(3).tolist() == a


def test_usable_where_numpy_generators_are():
    w = sg.zeros(3, 4)
    sg.nn.init.uniform_(w, generator=sg.Generator().manual_seed(2))
    v = sg.zeros(3, 4)
    sg.nn.init.uniform_(v, generator=sg.Generator().manual_seed(2))
    assert w.tolist() == v.tolist() and np.abs(w.numpy()).sum() > 0


@pytest.mark.parametrize("bad", [1.5, 2**64])
def test_seed_errors_have_torchs_types(bad):
    with pytest.raises((RuntimeError, ValueError, TypeError)) as want:
        torch.Generator().manual_seed(bad)
    with pytest.raises(type(want.value)):
        sg.Generator().manual_seed(bad)


def test_bad_state_and_device():
    with pytest.raises(TypeError, match="get_state"):
        sg.Generator().set_state({"nope": 1})
    with pytest.raises(RuntimeError, match="CPU"):
        sg.Generator(device="cuda")
