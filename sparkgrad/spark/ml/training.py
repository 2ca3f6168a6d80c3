"""What every rank runs inside ``fit``: its rows, the engine's strategy, the engine's Trainer.

:func:`fit_rank` is the rank function :class:`~sparkgrad.engine.spark_runner.SparkRunner`
launches over the sharded DataFrame (``ctx.records`` is this rank's Arrow table). Nothing
here is a second training loop: the model comes from the spec and the seed (the same on
every rank), the strategy from :func:`~sparkgrad.parallel.registry.make_strategy`, the
optimizer from the engine's table, and :class:`~sparkgrad.engine.trainer.Trainer` runs
the epochs.

**Which rows form a step.** Rank ``r`` holds the ``m`` rows ``i`` with ``i % D == d``
(its data-parallel coordinate ``d``, see :mod:`.shards`), in row order; call them local
rows ``0..m-1`` (local row ``j`` is row ``j·D + d``). Every epoch ``e`` all ranks draw the
same permutation ``π`` of ``0..m-1`` (``DistributedSampler(m rows, 1 replica,
shuffle=True, seed)`` at epoch ``e - 1``, as PyTorch), and step ``k`` takes local rows
``π[k·b : (k+1)·b]`` with ``b = batchSize / D``. So global step ``k`` trains on the rows
``{π[j]·D + d : j in that slice, d < D}``: exactly ``batchSize`` rows, each once per
epoch, ``m // b`` steps an epoch. The averaged gradient is the gradient of the mean loss
over those rows, which is what one process training on the same rows would compute
(the tests do that and compare the weights).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import to_numpy
from sparkgrad.dataset import DataLoader, DistributedSampler, TensorDataset
from sparkgrad.engine.config import RunConfig
from sparkgrad.engine.model import build_optimizer
from sparkgrad.engine.trainer import Trainer
from sparkgrad.parallel.registry import make_strategy
from sparkgrad.spark.ml import spec as specs
from sparkgrad.spark.ml.shards import rank_arrays


def config_from_dict(fields: dict) -> RunConfig:
    """A RunConfig back from ``to_dict()`` (tuples travel as lists)."""
    fields = dict(fields)
    fields["hidden"] = tuple(fields["hidden"])
    if fields.get("split") is not None:
        fields["split"] = tuple(fields["split"])
    return RunConfig(**fields)


def train_arrays(
    config: RunConfig,
    x: np.ndarray,
    y: np.ndarray,
    rank_info: tuple[int, int] = (0, 1),
    ctx: Any = None,
) -> tuple[Any, Trainer, DataLoader]:
    """``(strategy, trainer, loader)`` ready to train on this rank's rows ``x, y`` (see the
    module docstring): call ``trainer.fit()``. ``rank_info``: ``(rank, world size)``; with
    one rank the strategy is ``single``. With an asynchronous mode the "strategy" is a
    worker of the parameter server at ``ctx.service_address``.
    """
    extra = config.extra
    spec, regression = extra["model_spec"], extra["task"] == "regression"
    model = specs.build(spec, config.seed)
    loss_fn = specs.loss(spec, regression)
    optimizer = lambda params: build_optimizer(  # noqa: E731
        config.optimizer, params, config.lr, config.momentum
    )
    if ctx is not None and config.uses_parameter_server:  # async, hogwild, ssp (issue 20)
        from sparkgrad.parallel.asynchronous.worker import AsyncWorker

        strategy = AsyncWorker.connect(
            ctx.service_address, ctx.secret, ctx.rank, ctx.world_size, model, optimizer, loss_fn
        )
    else:
        strategy = make_strategy(
            config.strategy if rank_info[1] > 1 else "single",
            model,
            optimizer,
            loss_fn,
            **config.strategy_options(),
        )
    targets = y.astype(np.float32).reshape(-1, 1) if regression else y.astype(np.int64)
    dataset = TensorDataset(x, targets)
    sampler = DistributedSampler(dataset, 1, 0, shuffle=True, seed=config.seed, drop_last=True)
    per_rank = config.batch_size // strategy.data_parallel_size
    loader = DataLoader(dataset, per_rank, sampler=sampler, drop_last=True, device=config.device)
    trainer = Trainer(strategy, loss_fn, loader, None, config.epochs, progress=False)
    return strategy, trainer, loader


def fit_rank(ctx: Any, config_dict: dict) -> dict | None:
    """One rank of ``fit``: its Arrow table -> arrays -> Trainer; rank 0 returns the weights."""
    config = config_from_dict(config_dict)
    extra = config.extra
    coord = extra["coords"][ctx.rank]
    x, y = rank_arrays(
        ctx.records,
        ctx.rank,
        coord,
        extra["dp_size"],
        extra["rows_per_coord"],
        extra["model_spec"]["in"],
    )
    strategy, trainer, loader = train_arrays(config, x, y, (ctx.rank, ctx.world_size), ctx)

    def on_epoch(tr: Trainer, m: Any) -> None:
        if ctx.rank == 0:
            ctx.log.info(f"epoch {m.epoch}: train loss {m.train_loss:.4f}, {len(loader)} steps")

    trainer.callbacks.append(on_epoch)
    history = trainer.fit()
    if config.uses_parameter_server:  # the weights live on the server (merged on the driver)
        strategy.finish()
        state = {}
    else:
        state = strategy.full_state_dict()  # a collective: every rank takes part
    if ctx.rank != 0:
        return None
    return {
        "state_dict": {k: np.ascontiguousarray(to_numpy(v)) for k, v in state.items()},
        "train_loss": [float(m.train_loss) for m in history],
        "steps": int(trainer.global_step),
    }
