"""``F.dropout2d`` / ``nn.Dropout2d``: whole channels dropped, the rest scaled, eval untouched.

The masks come from sparkgrad's generator, not torch's, so the numbers cannot be compared
one for one; what is checked is the *law*: every (sample, channel) plane is either all
zeros or all ``x/(1-p)``, the dropped fraction is p (a binomial test with 4-sigma
margin), the gradient uses the same mask, and evaluation is the identity.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import sparkgrad as sg
import sparkgrad.autodiff.functional as F


def test_whole_channels_are_dropped_at_rate_p(device):
    """N·C = 10,000 coins; with p = 0.3 the dropped fraction has std 0.0046: 0.02 is > 4σ."""
    sg.manual_seed(0)
    p = 0.3
    x = sg.tensor(
        np.random.default_rng(0).uniform(1, 2, (200, 50, 4, 5)).astype(np.float32),
        device=device,
        requires_grad=True,
    )
    out = F.dropout2d(x, p=p, training=True)
    values, xv = out.detach().to("cpu").numpy(), x.detach().to("cpu").numpy()
    dropped = (values == 0).all(axis=(2, 3))
    kept = np.isclose(values, xv / (1 - p), rtol=1e-6).all(axis=(2, 3))
    assert (dropped ^ kept).all()  # every plane is one or the other, never mixed
    assert abs(dropped.mean() - p) < 0.02
    # the dropped planes are scattered over samples and channels, not a fixed pattern
    assert 0 < dropped.mean(axis=0).min() and dropped.mean(axis=0).max() < 1
    upstream = np.ones(values.shape, dtype=np.float32)
    out.backward(sg.tensor(upstream, device=device))
    np.testing.assert_allclose(x.grad.to("cpu").numpy(), values / xv, rtol=1e-6)


def test_eval_identity_and_edge_probabilities(device):
    """Eval and p=0 return the input itself; p=1 zeroes everything; p outside [0, 1] refused."""
    x = sg.randn(2, 3, 4, 4, device=device, requires_grad=True)
    assert F.dropout2d(x, 0.5, training=False) is x
    assert F.dropout2d(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout2d(x, 1.0).detach().to("cpu").numpy(), 0)
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        F.dropout2d(x, 1.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        sg.nn.Dropout2d(-0.1)


def test_same_seed_same_channels(device):
    """Reseeding repeats the mask (reproducible runs on every rank)."""
    x = sg.ones(4, 8, 2, 2, device=device)
    sg.manual_seed(5)
    first = F.dropout2d(x).to("cpu").numpy()
    second = F.dropout2d(x).to("cpu").numpy()
    sg.manual_seed(5)
    np.testing.assert_array_equal(F.dropout2d(x).to("cpu").numpy(), first)
    assert not np.array_equal(first, second)


def test_three_d_input_is_read_as_n_c_l_with_torchs_warning():
    """As PyTorch 2.13: a 3-D input is (N, C, L), one coin per (N, C), and a warning says so."""
    sg.manual_seed(1)
    x = sg.ones(40, 30, 6)
    with pytest.warns(UserWarning, match="interpreted as shape \\(N, C, L\\)"):
        out = F.dropout2d(x, 0.5).numpy()
    assert ((out == 0).all(axis=2) | (out == 2).all(axis=2)).all()
    with warnings.catch_warnings(record=True) as caught:  # torch warns the same way
        warnings.simplefilter("always")
        torch.nn.functional.dropout2d(torch.ones(40, 30, 6))
    assert any("(N, C, L)" in str(w.message) for w in caught)


def test_module_repr_and_modes():
    """``Dropout2d`` prints like torch's, drops in train mode, is the identity in eval."""
    layer = sg.nn.Dropout2d(0.25)
    assert repr(layer) == repr(torch.nn.Dropout2d(0.25))
    x = sg.ones(8, 16, 3, 3)
    assert (layer(x).numpy() == 0).any()
    layer.eval()
    assert layer(x) is x
