"""The "no hidden host syncs" rule, enforced: a training step on ``device="cuda"`` keeps its
data on the GPU and never makes the host wait, except where the user (or a listed input
check) asks for it.

A GPU runs ahead of Python: the host queues kernels and returns. Anything that reads a
device value on the host (``float(x)``, ``bool(x.any())``, ``x.get()``) or copies host data
over (a NumPy index, a 0-d ``asarray``) stalls that queue and costs a PCIe round trip, and
it is invisible in the code. The CuPy stand-in (``SPARKGRAD_FAKE_CUDA=1``) writes every such
event to its ledger with the line that caused it; these tests read the ledger around one
step of the MLP, the GPT and the ViT (forward, loss, backward, Adam step).

What a step may do, and nothing else:

- input checks, one scalar each, named here (targets in range for the loss, token ids
  inside the vocabulary): an out-of-range id on the GPU would be wrapped around silently;
- the ViT's random shift: its 2·N offsets come from sparkgrad's seeded generator on the
  host (the same numbers on every device), one host→device copy per step;
- what the user asks for: ``loss.item()`` is one device→host copy.

They need the stand-in (on a real GPU the ledger does not exist: they skip there, and the
GPU runs the cuda-marked numerics instead).
"""

import os

import numpy as np
import pytest

import sparkgrad as sg
from sparkgrad.autodiff import cuda_is_available
from sparkgrad.models.gpt import build_gpt
from sparkgrad.models.mlp import build_mlp
from sparkgrad.models.vit import build_vit

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not cuda_is_available(), reason="no CUDA GPU/CuPy on this machine"),
]

CHECKS = {  # (file, function) of each allowed input check: one 1-byte bool each
    "targets": ("neural.py", "_check_targets"),
    "token_ids": ("sequence_parts.py", "check_token_ids"),
    "embedding": ("neural.py", "forward"),  # ops.neural.Embedding.forward: ids < rows
}


def _fake():
    import cupy

    if not getattr(cupy, "IS_SPARKGRAD_FAKE", False):
        pytest.skip("the transfer ledger is the CuPy stand-in's (SPARKGRAD_FAKE_CUDA=1)")
    return cupy.fake


def _origin(event):
    path, _, function = event.where.rpartition(" in ")
    return os.path.basename(path.rsplit(":", 1)[0]), function


def _case(name):
    rng = np.random.default_rng(0)
    if name == "mlp":
        model = build_mlp((64, 64))
        x, y = rng.random((32, 784), dtype=np.float32), rng.integers(0, 10, 32)
    elif name == "gpt":
        model = build_gpt(50, context=16, d_model=32, num_layers=1)
        x, y = rng.integers(0, 50, (4, 16)), rng.integers(0, 50, (4, 16))
    else:
        model = build_vit(d_model=32, num_layers=1)
        x, y = rng.random((8, 28, 28), dtype=np.float32), rng.integers(0, 10, 8)
    model = model.to("cuda")
    x, y = sg.tensor(x, device="cuda"), sg.tensor(y, device="cuda")  # the user's copies
    return model, x, y


def _step(model, opt, x, y):
    opt.zero_grad()
    logits = model(x)
    loss = sg.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    opt.step()
    return loss


ALLOWED = {
    "mlp": (["targets"], 0),
    "gpt": (["token_ids", "embedding", "embedding", "targets"], 0),  # tokens, positions
    "vit": (["targets"], 8 * 2 * 8),  # 2·N int64 shift offsets, N = 8
}


@pytest.mark.parametrize("name", ["mlp", "gpt", "vit"])
def test_a_training_step_keeps_to_the_device(name):
    fake = _fake()
    model, x, y = _case(name)
    opt = sg.optim.Adam(model.parameters(), lr=1e-3)
    _step(model, opt, x, y)  # the first step creates Adam's state
    with fake.watch() as events:
        loss = _step(model, opt, x, y)
    checks, copied = ALLOWED[name]
    to_host = [e for e in events if e.kind != "to_device"]
    assert [_origin(e) for e in to_host] == [CHECKS[c] for c in checks], [str(e) for e in events]
    assert all(e.kind == "to_host" and e.nbytes == 1 for e in to_host), [str(e) for e in to_host]
    to_device = [e for e in events if e.kind == "to_device"]
    assert sum(e.nbytes for e in to_device) == copied, [str(e) for e in to_device]
    assert len(to_device) == (1 if copied else 0)
    with fake.watch() as asked:
        value = loss.item()
    assert [(e.kind, e.what) for e in asked] == [("to_host", "item()")]
    assert np.isfinite(value)


def test_the_ledger_sees_a_hidden_sync_where_there_is_one():
    """The test above can fail: a host-side ``if`` on device data is caught, with its line."""
    fake = _fake()
    a = sg.ones(3, device="cuda").array
    with fake.watch() as events:
        if (a > 0).all():  # a hidden sync: the host needs the answer
            a = a * 2
        a[np.array([0, 1])]  # a hidden copy: a NumPy index into device data
    assert [e.kind for e in events] == ["to_host", "to_device"]
    assert all(e.where.startswith(__file__) for e in events), [str(e) for e in events]
