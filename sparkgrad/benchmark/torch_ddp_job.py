"""The PyTorch side of the Spark benchmark: one rank of DDP training, run by TorchDistributor.

:func:`train_ddp` is the function ``pyspark.ml.torch.distributor.TorchDistributor`` runs on
every rank. With ``local_mode=False`` the distributor starts one barrier Spark task per
process; each task sets ``MASTER_ADDR``/``MASTER_PORT``/``RANK``/``WORLD_SIZE`` and launches
``torchrun`` (one node per task, one process per node), which calls this function. So each
PyTorch rank, like each sparkgrad rank, belongs to one Spark task (one task slot, one core).

It mirrors :func:`sparkgrad.engine.job.train_rank` step for step, so the two engines do the
same work:

- the same weights: the sparkgrad MLP built from the seed
  (:func:`sparkgrad.engine.model.build_mlp`) is copied into ``torch.nn.Sequential`` (the
  keys ``0.weight``, ``0.bias``, ``2.weight``... are the same in both);
- the same data (:func:`sparkgrad.dataset.load_mnist`), sharded by torch's own
  ``DistributedSampler(shuffle=True, seed=seed, drop_last=True)``, per-rank batch =
  global batch / world size, each batch gathered with one fancy index (as sparkgrad's
  ``DataLoader`` does) rather than sample by sample;
- the same optimizer and loss; one thread per rank (``torch.set_num_threads(1)``);
- per epoch: ``sampler.set_epoch``, time the training loop on rank 0 (the clock starts
  after the shuffle and stops before evaluation, as in sparkgrad's ``Trainer``), then
  rank 0 evaluates on the test set while the other ranks go on to the next epoch.

Rank 0 returns plain numbers (metrics per epoch); the distributor carries them back.
"""

from __future__ import annotations

import os
import time
from typing import Any


def torch_mlp(hidden: tuple[int, ...], seed: int) -> Any:
    """``torch.nn.Sequential`` MLP holding exactly the weights sparkgrad builds from ``seed``."""
    import torch

    from sparkgrad.autodiff.backend import to_numpy
    from sparkgrad.engine.model import build_mlp

    reference = build_mlp(tuple(hidden), seed)
    sizes = (784, *hidden, 10)
    layers: list[Any] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    state = {
        k: torch.from_numpy(to_numpy(v.array).copy()) for k, v in reference.state_dict().items()
    }
    model.load_state_dict(state)  # strict: fails loudly if a key or shape differs
    return model


def torch_optimizer(name: str, params: Any, lr: float, momentum: float) -> Any:
    """The counterpart of :func:`sparkgrad.engine.model.build_optimizer`."""
    import torch

    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.AdamW(params, lr=lr)


def _evaluate(model: Any, images: Any, labels: Any, batch: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the test set, in batches of 1000 (as sparkgrad)."""
    import torch

    model.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(labels), batch):
            x, y = images[start : start + batch], labels[start : start + batch]
            logits = model(x)
            total += float(torch.nn.functional.cross_entropy(logits, y)) * len(y)
            correct += int((logits.argmax(dim=1) == y).sum())
    model.train()
    n = max(len(labels), 1)
    return total / n, correct / n


def _loopback_gloo() -> None:
    """Keep gloo's sockets on loopback when the rendezvous address is a loopback one."""
    if os.environ.get("MASTER_ADDR", "127.0.0.1").startswith("127."):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")


def train_ddp(cfg: dict) -> dict | None:
    """One DDP rank (called by TorchDistributor); rank 0 returns its metrics per epoch.

    ``cfg`` holds ``hidden, seed, data, batch_size, lr, optimizer, momentum, epochs``
    (the fields of :class:`sparkgrad.engine.config.RunConfig` with the same names).
    """
    entered = time.perf_counter()
    import torch
    import torch.distributed as dist
    from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, TensorDataset

    from sparkgrad.dataset import load_mnist

    torch.set_num_threads(1)  # one core per rank, like a sparkgrad rank in its Spark task
    _loopback_gloo()
    dist.init_process_group("gloo")  # env:// — torchrun set RANK, WORLD_SIZE, MASTER_*
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        model = torch_mlp(tuple(cfg["hidden"]), cfg["seed"])
        if world > 1:  # sparkgrad wraps in DataParallel only then, too
            model = torch.nn.parallel.DistributedDataParallel(model)
        optimizer = torch_optimizer(
            cfg["optimizer"], model.parameters(), cfg["lr"], cfg["momentum"]
        )
        images, labels = load_mnist(cfg["data"], "train", seed=cfg["seed"])
        train = TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))
        sampler = DistributedSampler(
            train, world, rank, shuffle=True, seed=cfg["seed"], drop_last=True
        )
        # batch_size=None + a BatchSampler: the dataset is indexed once per batch with the
        # list of indices (one gather, like sparkgrad's DataLoader), not once per sample.
        per_rank = cfg["batch_size"] // world
        batches = BatchSampler(sampler, per_rank, drop_last=True)
        loader = DataLoader(train, sampler=batches, batch_size=None)
        if rank == 0:
            test_x, test_y = (
                torch.from_numpy(a) for a in load_mnist(cfg["data"], "test", seed=cfg["seed"])
            )
        loss_fn = torch.nn.CrossEntropyLoss()
        history = []
        train_start = time.perf_counter()
        for epoch in range(1, cfg["epochs"] + 1):
            sampler.set_epoch(epoch - 1)
            start = time.perf_counter()
            total, seen = 0.0, 0
            for x, y in loader:
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
                total += float(loss.item()) * len(y)  # sparkgrad's Trainer reads it every step
                seen += len(y)
            seconds = time.perf_counter() - start
            if rank == 0:
                test_loss, accuracy = _evaluate(model, test_x, test_y)
                history.append(
                    {
                        "epoch": epoch,
                        "train_loss": total / max(seen, 1),
                        "test_loss": test_loss,
                        "test_accuracy": accuracy,
                        "samples_per_second": seen / seconds,
                        "seconds": seconds,
                    }
                )
        train_seconds = time.perf_counter() - train_start
    finally:
        dist.destroy_process_group()
    if rank != 0:
        return None
    return {
        "history": history,
        "train_seconds": train_seconds,
        "rank_seconds": time.perf_counter() - entered,
        "threads": torch.get_num_threads(),
        "master_addr": os.environ.get("MASTER_ADDR", ""),
        "gloo_ifname": os.environ.get("GLOO_SOCKET_IFNAME", ""),
    }
