# "Writing Distributed Applications with PyTorch": send/recv, isend/irecv, all_reduce in a
# new group (ranks started by mp.Process), then synchronous SGD on a hand-partitioned dataset
# with average_gradients (ranks started by torch.multiprocessing.spawn). Loopback only.
import math
import os
import socket
from random import Random

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from digits import load_digits  # stands in for torchvision's MNIST download


def say(line):
    """print, as one write: both ranks share this stdout (unbuffered in a spawned child)."""
    print(line + "\n", end="", flush=True)


def run_p2p(rank, size):
    tensor = torch.zeros(1)
    if rank == 0:
        tensor += 1
        dist.send(tensor=tensor, dst=1)  # send the tensor to process 1
    else:
        dist.recv(tensor=tensor, src=0)  # receive the tensor from process 0
    say(f"p2p Rank {rank} has data {tensor[0]}")


def run_nonblocking(rank, size):
    tensor = torch.zeros(1)
    if rank == 0:
        tensor += 2
        req = dist.isend(tensor=tensor, dst=1)
    else:
        req = dist.irecv(tensor=tensor, src=0)
    req.wait()  # only now is tensor safe to use (or to reuse)
    say(f"isend Rank {rank} has data {tensor[0]}")


def run_allreduce(rank, size):
    group = dist.new_group([0, 1])
    tensor = torch.ones(1)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)
    say(f"all_reduce Rank {rank} has data {tensor[0]}")


def run_communication(rank, size):
    run_p2p(rank, size)
    run_nonblocking(rank, size)
    run_allreduce(rank, size)


class Partition(object):
    def __init__(self, data, index):
        self.data, self.index = data, index

    def __len__(self):
        return len(self.index)

    def __getitem__(self, index):
        return self.data[self.index[index]]


class DataPartitioner(object):
    def __init__(self, data, sizes=[0.7, 0.2, 0.1], seed=1234):
        self.data, self.partitions = data, []
        indexes = [x for x in range(0, len(data))]
        Random(seed).shuffle(indexes)
        for frac in sizes:
            part_len = int(frac * len(data))
            self.partitions.append(indexes[0:part_len])
            indexes = indexes[part_len:]

    def use(self, partition):
        return Partition(self.data, self.partitions[partition])


def partition_dataset():
    """Each rank its own share of the digits, 128 samples a step in all."""
    x, y = load_digits("train")
    dataset = torch.utils.data.TensorDataset(torch.tensor(x[:2048]), torch.tensor(y[:2048]))
    size = dist.get_world_size()
    bsz = 128 // size
    partition = DataPartitioner(dataset, [1.0 / size for _ in range(size)]).use(dist.get_rank())
    return torch.utils.data.DataLoader(partition, batch_size=bsz, shuffle=True), bsz


def average_gradients(model):
    size = float(dist.get_world_size())
    for param in model.parameters():
        dist.all_reduce(param.grad.data, op=dist.ReduceOp.SUM)
        param.grad.data /= size


def run_sgd(rank, size):
    """Distributed synchronous SGD: every rank ends with the same weights."""
    torch.manual_seed(1234)
    train_set, bsz = partition_dataset()
    model = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10), nn.LogSoftmax(dim=1))
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    num_batches = math.ceil(len(train_set.dataset) / float(bsz))
    for epoch in range(3):
        epoch_loss = 0.0
        for data, target in train_set:
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            epoch_loss += loss.item()
            loss.backward()
            average_gradients(model)
            optimizer.step()
        say(f"sgd Rank {dist.get_rank()}, epoch {epoch}: {epoch_loss / num_batches}")
    weights = sum(p.double().abs().sum().item() for p in model.parameters())
    say(f"weights Rank {rank}: {weights!r}")


def init_process(rank, size, fn, backend="gloo"):
    """Initialize the distributed environment (MASTER_PORT: the parent's free port)."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    dist.init_process_group(backend, rank=rank, world_size=size)
    fn(rank, size)
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


if __name__ == "__main__":
    world_size = 2
    processes = []
    mp.set_start_method("spawn")
    os.environ["MASTER_PORT"] = free_port()
    for rank in range(world_size):
        p = mp.Process(target=init_process, args=(rank, world_size, run_communication))
        p.start()
        processes.append(p)
    for p in processes:
        p.join()
    assert all(p.exitcode == 0 for p in processes)

    os.environ["MASTER_PORT"] = free_port()
    mp.spawn(init_process, args=(world_size, run_sgd), nprocs=world_size, join=True)
