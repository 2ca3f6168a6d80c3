"""Where PyTorch runs beside sparkgrad's ``--device``: the same device, but for one case.

Under the CuPy stand-in (``SPARKGRAD_FAKE_CUDA=1``, tests/fake_cupy: a CPU imitation of
CuPy used to rehearse the GPU path without a GPU) sparkgrad's ``"cuda"`` is really the CPU
and PyTorch has no GPU to go to, so PyTorch runs on the CPU. The report still runs end to
end (that is what the rehearsal checks); its numbers are then not a GPU's, and the
environment section says ``cupy_stand_in: true``.
"""

from __future__ import annotations


def cupy_is_stand_in() -> bool:
    """True when the CuPy that sparkgrad loads is the test stand-in, not CuPy."""
    from sparkgrad.autodiff.backend import cuda_is_available, get_array_module

    return cuda_is_available() and bool(
        getattr(get_array_module("cuda"), "IS_SPARKGRAD_FAKE", False)
    )


def torch_device(device: str) -> str:
    """PyTorch's device for sparkgrad's ``device``: the same, or "cpu" under the stand-in."""
    return "cpu" if device == "cuda" and cupy_is_stand_in() else device


def torch_synchronize(device: str) -> None:
    """``torch.cuda.synchronize()`` where PyTorch really runs on a GPU."""
    if torch_device(device) == "cuda":
        import torch

        torch.cuda.synchronize()
