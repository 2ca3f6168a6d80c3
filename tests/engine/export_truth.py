"""The check every "strategy on Spark equals one process" test ends with: its export against
the single process's, tensor by tensor, under the plain model's keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sparkgrad.export import load_safetensors


def assert_export_equals_single(
    folder: Path, name: str, strategy: str, world: int | None = None
) -> dict[str, np.ndarray]:
    """``folder/name`` (written by ``--strategy strategy``) holds the tensors of
    ``folder/1.st`` (``--strategy single``), whole, rtol 1e-5; returns the single's tensors."""
    ours, meta = load_safetensors(folder / name)
    truth, _ = load_safetensors(folder / "1.st")
    assert meta["strategy"] == strategy
    if world is not None:
        assert meta["world_size"] == str(world)
    assert sorted(ours) == sorted(truth)
    for key, want in truth.items():
        assert ours[key].shape == want.shape, key  # the whole tensors, glued from the pieces
        np.testing.assert_allclose(ours[key], want, rtol=1e-5, atol=1e-6, err_msg=key)
    return truth
