"""Reference check: the 784-256-256-10 MLP trains exactly like PyTorch's.

The model every later part of sparkgrad trains (Linear-ReLU-Linear-ReLU-Linear on 28x28
images) is built twice — once in PyTorch, once in sparkgrad — and PyTorch's initial
weights are copied into sparkgrad through ``load_state_dict`` (the state-dict names are
the same). Both then see the same 50 seeded float32 batches of 64 MNIST-sized inputs
and take 50 optimizer steps. The independent truth is PyTorch itself:

* the loss at every step agrees to a relative error of at most 1e-5;
* the gradients of the very first step agree element by element;
* the final weights agree closely (float32 rounding differences, nothing more; see
  the comment in the test for Adam's near-zero gradients).

PyTorch runs on one thread so its float reduction order is fixed from run to run, and so
does NumPy's BLAS when ``threadpoolctl`` is available (on a busy 2-core machine a
multi-threaded OpenBLAS is also many times slower for these small matrices).
"""

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import sparkgrad as sg

SIZES = (784, 256, 256, 10)
BATCH, STEPS = 64, 50


def _one_blas_thread() -> contextlib.AbstractContextManager:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # only speed and summation order depend on it, not correctness
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Pin PyTorch and NumPy's BLAS to one thread for the test, then restore them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with _one_blas_thread():
        yield
    torch.set_num_threads(before)


def batches(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``STEPS`` batches of standardised inputs (as normalised MNIST) with learnable labels.

    The labels 0..9 come from a fixed random linear "teacher" (the argmax of 10 random
    projections), so there is something to learn and the loss goes down — slowly enough
    that it stays O(1), where a relative error is a fair measure.
    """
    rng = np.random.default_rng(seed)
    teacher = rng.standard_normal((SIZES[0], SIZES[-1])).astype(np.float32)
    out = []
    for _ in range(STEPS):
        x = rng.standard_normal((BATCH, SIZES[0]), dtype=np.float32)
        out.append((x, (x @ teacher).argmax(axis=1)))
    return out


def build_pair() -> tuple[sg.nn.Sequential, torch.nn.Sequential]:
    """The same MLP in both libraries, holding PyTorch's freshly initialised weights."""
    torch.manual_seed(0)
    tmodel = torch.nn.Sequential(
        torch.nn.Linear(SIZES[0], SIZES[1]),
        torch.nn.ReLU(),
        torch.nn.Linear(SIZES[1], SIZES[2]),
        torch.nn.ReLU(),
        torch.nn.Linear(SIZES[2], SIZES[3]),
    )
    model = sg.nn.Sequential(
        sg.nn.Linear(SIZES[0], SIZES[1]),
        sg.nn.ReLU(),
        sg.nn.Linear(SIZES[1], SIZES[2]),
        sg.nn.ReLU(),
        sg.nn.Linear(SIZES[2], SIZES[3]),
    )
    model.load_state_dict(tmodel.state_dict())
    for name, tparam in tmodel.state_dict().items():  # the copy really happened
        np.testing.assert_array_equal(model.state_dict()[name].numpy(), tparam.numpy())
    return model, tmodel


OPTIMIZERS = {
    "sgd-momentum": ("SGD", {"lr": 0.1, "momentum": 0.9}),
    "adam": ("Adam", {"lr": 1e-3}),
}


@pytest.mark.parametrize("case", list(OPTIMIZERS))
def test_mlp_training_matches_torch(case: str):
    """50 steps side by side: losses within 1e-5, equal first gradients, close final weights."""
    name, kwargs = OPTIMIZERS[case]
    model, tmodel = build_pair()
    opt = getattr(sg.optim, name)(model.parameters(), **kwargs)
    topt = getattr(torch.optim, name)(tmodel.parameters(), **kwargs)
    loss_fn, tloss_fn = sg.nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()

    losses, tlosses = [], []
    for step, (x, y) in enumerate(batches()):
        opt.zero_grad()
        loss = loss_fn(model(sg.tensor(x)), sg.tensor(y))
        loss.backward()
        topt.zero_grad()
        tloss = tloss_fn(tmodel(torch.from_numpy(x)), torch.from_numpy(y))
        tloss.backward()
        if step == 0:  # before any update the two computations are identical maths
            for (pname, p), tp in zip(model.named_parameters(), tmodel.parameters()):
                assert p.grad.dtype == np.float32
                np.testing.assert_allclose(
                    p.grad.numpy(), tp.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=pname
                )
        opt.step()
        topt.step()
        losses.append(loss.item())
        tlosses.append(tloss.item())

    losses, tlosses = np.array(losses), np.array(tlosses)
    rel_err = np.abs(losses - tlosses) / np.abs(tlosses)
    assert rel_err.max() <= 1e-5, f"worst step {rel_err.argmax()}: rel. err. {rel_err.max():.2e}"
    assert losses[-5:].mean() < 0.95 * losses[:5].mean()  # and it did learn

    # Final weights. As a whole, every tensor agrees to a relative (Frobenius) error of 1e-5.
    # Element by element, SGD agrees to float32 noise. Adam divides by √v, so a weight whose
    # gradient is ~0 (a dead ReLU's input) takes an lr-sized step whose size depends on the
    # rounding of that ~0: there we only ask for agreement within a tenth of one step (lr/10).
    atol = kwargs["lr"] / 10 if name == "Adam" else 1e-6
    tstate = tmodel.state_dict()
    for pname, value in model.state_dict().items():
        ours, theirs = value.numpy(), tstate[pname].numpy()
        assert np.linalg.norm(ours - theirs) <= 1e-5 * np.linalg.norm(theirs), pname
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=atol, err_msg=pname)
