# "Getting Started with Distributed Data Parallel": ToyModel wrapped in DDP, trained by two
# processes started with mp.spawn (gloo over loopback, CPU: device_ids=None), then the
# checkpoint demo: rank 0 saves, every rank waits at a barrier and loads with map_location.
# The batches and rank 0's start come from NumPy, so both libraries compute the same numbers;
# rank 1 starts elsewhere on purpose: DDP's constructor broadcasts rank 0's weights.
import os
import socket
import sys
import tempfile

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.optim as optim
from torch.nn.parallel import DistributedDataParallel as DDP


def setup(rank, world_size):
    os.environ["MASTER_ADDR"] = "127.0.0.1"  # MASTER_PORT: a free port, set by the parent
    dist.init_process_group("gloo", rank=rank, world_size=world_size)


def cleanup():
    dist.destroy_process_group()


class ToyModel(nn.Module):
    def __init__(self):
        super(ToyModel, self).__init__()
        self.net1 = nn.Linear(10, 10)
        self.relu = nn.ReLU()
        self.net2 = nn.Linear(10, 5)

    def forward(self, x):
        return self.net2(self.relu(self.net1(x)))


def make_model(rank):
    model = ToyModel()
    if rank == 0:  # rank 0's weights from NumPy; the other ranks keep their random init
        rng = np.random.default_rng(0)
        state = {k: torch.tensor(rng.uniform(-0.3, 0.3, v.shape), dtype=torch.float32)
                 for k, v in model.state_dict().items()}  # fmt: skip
        model.load_state_dict(state)
    return model


def batches(rank, world_size, steps=3):
    """Each rank its 20 rows of every global batch of 20 * world_size."""
    rng = np.random.default_rng(1)
    for _ in range(steps):
        x = rng.standard_normal((20 * world_size, 10)).astype(np.float32)
        y = rng.standard_normal((20 * world_size, 5)).astype(np.float32)
        rows = slice(20 * rank, 20 * (rank + 1))
        yield torch.tensor(x[rows]), torch.tensor(y[rows])


def say(line):
    print(line + "\n", end="", flush=True)  # one write: the ranks share this stdout


def demo_basic(rank, world_size):
    setup(rank, world_size)
    torch.manual_seed(rank)
    model = make_model(rank)
    ddp_model = DDP(model, device_ids=None)

    loss_fn = nn.MSELoss()
    optimizer = optim.SGD(ddp_model.parameters(), lr=0.1)
    for inputs, labels in batches(rank, world_size):
        optimizer.zero_grad()
        outputs = ddp_model(inputs)
        loss = loss_fn(outputs, labels)
        loss.backward()
        optimizer.step()
        say(f"basic rank {rank} loss {loss.item()!r}")
    total = sum(p.double().sum().item() for p in ddp_model.parameters())
    say(f"basic rank {rank} weights {total!r}")
    cleanup()


def demo_checkpoint(rank, world_size):
    setup(rank, world_size)
    torch.manual_seed(rank)
    model = make_model(rank)
    ddp_model = DDP(model, device_ids=None)

    CHECKPOINT_PATH = tempfile.gettempdir() + "/model.checkpoint"
    if rank == 0:
        # All processes have the same parameters: saving in one of them is enough
        torch.save(ddp_model.state_dict(), CHECKPOINT_PATH)

    # A barrier, so that process 1 loads the model after process 0 saved it
    dist.barrier()
    # the checkpoint's tensors, moved from rank 0's device to this rank's
    map_location = {"cuda:%d" % 0: "cuda:%d" % rank}
    ddp_model.load_state_dict(
        torch.load(CHECKPOINT_PATH, map_location=map_location, weights_only=True)
    )

    loss_fn = nn.MSELoss()
    optimizer = optim.SGD(ddp_model.parameters(), lr=0.1)
    for inputs, labels in batches(rank, world_size, steps=1):
        optimizer.zero_grad()
        loss_fn(ddp_model(inputs), labels).backward()
        optimizer.step()
    keys = ",".join(ddp_model.state_dict())
    total = sum(p.double().sum().item() for p in ddp_model.parameters())
    say(f"checkpoint rank {rank} keys {keys} weights {total!r}")

    # Not necessary to use a dist.barrier() to guard the file deletion below,
    # as the AllReduce ops in the backward pass of DDP already served as a synchronization.
    if rank == 0:
        os.remove(CHECKPOINT_PATH)
    cleanup()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def run_demo(demo_fn, world_size):
    os.environ["MASTER_PORT"] = free_port()
    mp.spawn(demo_fn, args=(world_size,), nprocs=world_size, join=True)


if __name__ == "__main__":
    tempfile.tempdir = os.getcwd()  # this run's own directory for the checkpoint
    world_size = 2
    print(f"{sys.argv[0]}: {world_size} processes")
    run_demo(demo_basic, world_size)
    run_demo(demo_checkpoint, world_size)
