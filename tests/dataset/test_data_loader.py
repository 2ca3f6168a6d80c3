"""DataLoader and TensorDataset: batch shapes, dtypes, devices, order and determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sparkgrad as sg
from sparkgrad.dataset import DataLoader, DistributedSampler, TensorDataset
from sparkgrad.errors import ConfigError, ShapeError


def _data(n=10):
    x = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
    y = np.arange(n, dtype=np.int64) % 3
    return x, y


@pytest.mark.parametrize("n, batch, drop_last", [(10, 3, False), (10, 3, True), (10, 5, True)])
def test_batches_equal_torch_dataloader_without_shuffle(n, batch, drop_last, device):
    x, y = _data(n)
    ours = DataLoader(TensorDataset(x, y), batch_size=batch, drop_last=drop_last, device=device)
    theirs = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y)),
        batch_size=batch,
        drop_last=drop_last,
    )
    assert len(ours) == len(theirs)
    got = list(ours)
    assert len(got) == len(theirs)
    for (xb, yb), (tx, ty) in zip(got, theirs):
        assert isinstance(xb, sg.Tensor) and xb.device == device
        assert xb.dtype == np.float32 and yb.dtype == np.int64
        np.testing.assert_array_equal(xb.to("cpu").numpy(), tx.numpy())
        np.testing.assert_array_equal(yb.to("cpu").numpy(), ty.numpy())


def test_shuffle_is_deterministic_covers_everything_and_changes_per_epoch():
    x, y = _data(10)
    a = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True, seed=3)
    b = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True, seed=3)
    first = [yb.numpy().tolist() for _, yb in a]
    assert first == [yb.numpy().tolist() for _, yb in b]
    order = (
        np.concatenate(
            [
                xb.numpy()[:, 0]
                for xb, _ in DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True, seed=3)
            ]
        )
        / 4
    )
    assert sorted(order.tolist()) == list(range(10))
    assert order.tolist() == np.random.default_rng(3).permutation(10).tolist()
    second = np.concatenate([xb.numpy()[:, 0] for xb, _ in a]) / 4  # epoch 1 now
    assert second.tolist() == np.random.default_rng(4).permutation(10).tolist()
    a.set_epoch(0)
    assert [yb.numpy().tolist() for _, yb in a] == first


def test_with_distributed_sampler_like_torch():
    x, y = _data(11)
    for rank in range(3):
        sampler = DistributedSampler(range(11), 3, rank, shuffle=False)
        t_sampler = torch.utils.data.DistributedSampler(range(11), 3, rank, shuffle=False)
        ours = [xb.numpy() for xb, _ in DataLoader(TensorDataset(x, y), 2, sampler=sampler)]
        theirs = [
            tx.numpy()
            for tx, _ in torch.utils.data.DataLoader(
                torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y)),
                2,
                sampler=t_sampler,
            )
        ]
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)


def test_any_indexable_dataset_is_stacked():
    class Squares:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full((2,), i * i, dtype=np.float32), i

    batches = list(DataLoader(Squares(), batch_size=2))
    assert [b[0].shape for b in batches] == [(2, 2), (2, 2), (1, 2)]
    assert batches[2][0].numpy().tolist() == [[16.0, 16.0]] and batches[2][1].dtype == np.int64


def test_tensor_dataset_accepts_tensors_and_checks_lengths():
    ds = TensorDataset(sg.tensor([[1.0], [2.0]]), np.array([0, 1]))
    assert len(ds) == 2 and ds[1][0].tolist() == [2.0]
    with pytest.raises(ShapeError, match=r"\[2, 3\]"):
        TensorDataset(np.zeros(2), np.zeros(3))


def test_bad_arguments():
    ds = TensorDataset(np.zeros(4))
    with pytest.raises(ConfigError, match="mutually exclusive"):
        DataLoader(ds, shuffle=True, sampler=[0, 1])
    with pytest.raises(ConfigError, match="batch_size"):
        DataLoader(ds, batch_size=0)
