"""The DDP tutorial's ``demo_basic`` as a child of ``sparkgrad.multiprocessing.spawn``.

PyTorch's "Getting Started with Distributed Data Parallel": a ToyModel (Linear 10->10, ReLU,
Linear 10->5), MSELoss, SGD lr 0.001, ``init_process_group("gloo", rank, world_size)``
with ``MASTER_ADDR``/``MASTER_PORT`` in the environment, ``DistributedDataParallel(model)``.
Each rank reads its share through a ``DistributedSampler`` whose rank and world size come
from the process group, and saves the final weights with ``sg.save``.
"""

from __future__ import annotations

import os

import numpy as np

import sparkgrad as sg
import sparkgrad.distributed as dist
import sparkgrad.nn as nn
import sparkgrad.optim as optim
from sparkgrad.nn.parallel import DistributedDataParallel as DDP
from sparkgrad.utils.data import DataLoader, DistributedSampler, TensorDataset

STEPS, GLOBAL_BATCH = 4, 20


class ToyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.net1 = nn.Linear(10, 10)
        self.relu = nn.ReLU()
        self.net2 = nn.Linear(10, 5)

    def forward(self, x):
        return self.net2(self.relu(self.net1(x)))


def make_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = STEPS * GLOBAL_BATCH
    return (
        rng.standard_normal((n, 10)).astype(np.float32),
        rng.standard_normal((n, 5)).astype(np.float32),
    )


def demo_basic(rank: int, world_size: int, out_dir: str) -> None:
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    sg.manual_seed(rank)  # different weights per rank: DDP must broadcast rank 0's
    model = ToyModel()
    ddp_model = DDP(model)
    assert ddp_model.module is model
    loss_fn = nn.MSELoss()
    optimizer = optim.SGD(ddp_model.parameters(), lr=0.001)

    data = TensorDataset(*make_data())
    sampler = DistributedSampler(data, shuffle=False)
    loader = DataLoader(data, batch_size=GLOBAL_BATCH // world_size, sampler=sampler)
    for inputs, labels in loader:
        optimizer.zero_grad()
        outputs = ddp_model(inputs)
        loss_fn(outputs, labels).backward()
        optimizer.step()
    sg.save(
        {"state": ddp_model.module.state_dict(), "rank": rank, "samples": len(sampler)},
        os.path.join(out_dir, f"rank{rank}.pt"),
    )
    dist.destroy_process_group()
