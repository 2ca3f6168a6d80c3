"""One rank's training run: the function every strategy runs, once per rank.

``--strategy single`` calls :func:`train_rank` in the driver process with no ``ctx``;
``--strategy data`` has :class:`~sparkgrad.engine.spark_runner.SparkRunner` call it on
every Spark task with a :class:`~sparkgrad.engine.spark_runner.RankContext`. The steps:

1. Build the model (``--model``) from the seed (identical on every rank) and hand it to the strategy
   (``--strategy``: :func:`~sparkgrad.parallel.registry.make_strategy`), which keeps this
   rank's share of it: a full copy (data), some layers (model, pipeline), slices of every
   layer (tensor), a shard of the optimizer state, gradients or weights (ZeRO).
2. Each rank reads its piece of the training data through ``DistributedSampler``: with
   ``d`` data-parallel ranks, piece ``r`` takes every ``d``-th sample of the epoch's
   permutation, in batches of ``batch_size / d`` (``d = 1`` for model, pipeline and
   tensor parallelism: every rank sees the whole batch). Step ``i`` over all ranks
   therefore sees exactly the samples one process would see in its step ``i``.
3. Resume from the newest checkpoint when asked (``--resume``) or when Spark reruns a
   failed stage (``ctx.attempt > 0``), then train with :class:`Trainer`. The checkpoint is
   checked against this run first (:class:`~sparkgrad.engine.checkpoint_schema.TrainingCheck`:
   the tensors this model has, the step and sampler position this data gives, the
   hyper-parameters this command line sets); a damaged one is skipped for the one before.
4. Checkpoints hold the *full* model and optimizer state (gathered from the shards by
   every rank, written by rank 0), so they load under any strategy and world size. Rank 0
   evaluates on the test set (every rank joins when the strategy's ``predict`` is a
   collective) and returns the trained weights, the metrics and every rank's time split
   (the runner carries them to the driver without pickle).
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import numpy as np

import sparkgrad as sg
from sparkgrad.autodiff.backend import to_numpy
from sparkgrad.dataset import (
    DataLoader,
    DistributedSampler,
    TensorDataset,
    load_mnist,
    records_to_arrays,
)
from sparkgrad.dataset.sources import to_float
from sparkgrad.engine.checkpoint import load_latest_checkpoint, save_checkpoint
from sparkgrad.engine.checkpoint_schema import TrainingCheck
from sparkgrad.engine.config import RunConfig
from sparkgrad.engine.model import MODELS, build_optimizer
from sparkgrad.engine.trainer import Trainer
from sparkgrad.errors import SparkgradError
from sparkgrad.parallel.registry import make_strategy
from sparkgrad.parallel.strategy import Strategy

PROGRESS_TAG = "sparkgrad-progress"
log = logging.getLogger("sparkgrad.engine.job")


class InjectedFailure(SparkgradError, RuntimeError):
    """The crash asked for with ``--fail-at-step`` (teaching and tests).

    A SparkgradError, so a single-process run ends in one line, not a traceback; on Spark it
    is retried like any crash (it is not one of the permanent errors), and it fires on the
    first attempt only, so the rerun resumes from the last checkpoint and completes.
    """


def _config(value: RunConfig | dict) -> RunConfig:
    if isinstance(value, RunConfig):
        return value
    fields = dict(value)
    fields["hidden"] = tuple(fields["hidden"])
    if fields.get("split") is not None:
        fields["split"] = tuple(fields["split"])
    return RunConfig(**fields)


def _loaders(
    config: RunConfig, strategy: Strategy, shard: list | None, test_set: tuple | None
) -> tuple[DataLoader, DataLoader | None]:
    """This rank's training batches (and the test set on rank 0).

    Normally every rank opens the source and its DistributedSampler picks the rank's
    samples. With a Hadoop URI the driver has already cut the shards (``shard``: this
    rank's records, read by Spark where the data lives) and the rank shuffles within it.
    """
    standardize = MODELS[config.model].standardize
    if shard is None:
        train = TensorDataset(
            *load_mnist(config.data, "train", seed=config.seed, standardize=standardize)
        )
        replicas, position = strategy.data_parallel_size, strategy.data_parallel_rank
    else:
        images, labels = records_to_arrays(shard)
        images = to_float(images, standardize=standardize)
        train, replicas, position = TensorDataset(images, labels), 1, 0
    sampler = DistributedSampler(
        train, replicas, position, shuffle=True, seed=config.seed, drop_last=True
    )
    per_rank_batch = config.batch_size // strategy.data_parallel_size
    train_loader = DataLoader(
        train, per_rank_batch, sampler=sampler, drop_last=True, device=config.device
    )
    test_loader = None
    if strategy.rank == 0 or strategy.predict_is_collective:
        test = test_set or load_mnist(
            config.data, "test", seed=config.seed, standardize=standardize
        )
        eval_batch = MODELS[config.model].eval_batch
        test_loader = DataLoader(TensorDataset(*test), batch_size=eval_batch, device=config.device)
    return train_loader, test_loader


def train_rank(ctx: Any, config: RunConfig | dict, test_set: tuple | None = None) -> dict | None:
    """Train on this rank; rank 0 returns ``{"state_dict", "history", "comms", ...}``.

    ``test_set``: ``(images, labels)`` read by the driver, for sources a task cannot open.
    """
    config = _config(config)
    rank, world = (ctx.rank, ctx.world_size) if ctx is not None else (0, 1)
    attempt = ctx.attempt if ctx is not None else 0
    say = ctx.log.info if ctx is not None else (lambda *a: None)

    spec = MODELS[config.model]
    model = spec.build(config).to(config.device)
    check = TrainingCheck.for_model(config, model)  # the full model, before any strategy cuts it
    strategy = make_strategy(
        config.strategy if world > 1 else "single",
        model,
        lambda params: build_optimizer(config.optimizer, params, config.lr, config.momentum),
        spec.loss(),
        **config.strategy_options(),
    )
    scheduler = None
    if config.gamma is not None:  # made before a resume loads the (already decayed) lr
        scheduler = sg.optim.lr_scheduler.StepLR(strategy.optimizer, 1, gamma=config.gamma)
    shard = ctx.records if ctx is not None else None
    train_loader, test_loader = _loaders(config, strategy, shard, test_set)
    total_steps = len(train_loader) * config.epochs
    trainer = Trainer(
        strategy,
        spec.loss(),
        train_loader,
        test_loader,
        config.epochs,
        scheduler=scheduler,
        progress=config.progress and ctx is None,
        allow_nonfinite_loss=config.allow_nonfinite_loss,
    )

    start_epoch, skip, resumed_from = 1, 0, None
    if config.checkpoint_dir and (config.resume or attempt > 0):
        check.batches_per_epoch = len(train_loader)
        with warnings.catch_warnings(record=True) as skipped:
            warnings.simplefilter("always")
            ckpt = load_latest_checkpoint(config.checkpoint_dir, validate=check)
        for warning in skipped if rank == 0 else ():  # a damaged checkpoint, named once
            log.warning("%s", warning.message)  # on Spark: forwarded to the driver
        if ckpt is not None:
            strategy.load_full_state(ckpt.model_state, ckpt.optimizer_state)
            trainer.global_step = resumed_from = ckpt.step
            start_epoch, skip = ckpt.meta["sampler"]["epoch"], ckpt.meta["sampler"]["batch"]
            trainer.restore(ckpt.meta.get("history", []), ckpt.meta["sampler"].get("running"))
            if scheduler is not None:  # the lr itself came back with the optimizer state
                scheduler.last_epoch = start_epoch - 1
            if "rng" in ckpt.meta:  # the same dropout masks as an uninterrupted run
                sg.set_rng_state(ckpt.meta["rng"])
            say(f"resumed from checkpoint step {ckpt.step} (epoch {start_epoch}, batch {skip})")
        elif attempt > 0:
            say("no checkpoint yet: starting again from step 0")

    def on_step(tr: Trainer, step: int, loss: float) -> None:
        if config.checkpoint_dir and step % config.checkpoint_every == 0:
            full_model = strategy.full_state_dict()  # a collective: every rank takes part
            full_optimizer = strategy.full_optimizer_state_dict()
        if rank == 0 and config.checkpoint_dir and step % config.checkpoint_every == 0:
            save_checkpoint(
                config.checkpoint_dir,
                step,
                full_model,
                full_optimizer,
                meta={
                    "epoch": tr.epoch,
                    "sampler": {
                        "epoch": tr.epoch,
                        "batch": tr.batch_in_epoch,
                        "running": list(tr.running),
                    },
                    "config": config.to_dict(),
                    "history": [m.as_dict() for m in tr.history],
                    # dropout's generator: every rank draws alike, so rank 0's state is all
                    "rng": sg.get_rng_state(),
                },
            )
        if rank == 0 and ctx is not None:
            say(f"{PROGRESS_TAG} step={step} total={total_steps} loss={loss:.4f}")
        if config.fail_at_step == step and rank == config.fail_rank and attempt == 0:
            then = (
                "Spark reruns the stage and the ranks resume from the last checkpoint"
                if ctx is not None
                else "rerun with --resume to continue from the last checkpoint"
            )
            raise InjectedFailure(
                f"injected failure at step {step} on rank {rank} (--fail-at-step); {then}"
            )

    def on_epoch(tr: Trainer, m: Any) -> None:
        if rank == 0:
            rate = m.samples_per_second * strategy.data_parallel_size
            say(
                f"epoch {m.epoch}: train loss {m.train_loss:.4f}, test loss {m.test_loss:.4f}, "
                f"test accuracy {m.test_accuracy:.2%}, {rate:.0f} samples/s"
            )

    trainer.step_callbacks.append(on_step)
    trainer.callbacks.append(on_epoch)
    start = time.perf_counter()
    history = trainer.fit(start_epoch, skip)
    seconds = time.perf_counter() - start
    state_dict = strategy.full_state_dict()  # a collective: every rank takes part
    ranks = gather_reports(ctx, strategy)
    if rank != 0:
        return None
    comms = _comms_summary(ctx)
    return {
        "state_dict": {k: to_numpy(v) for k, v in state_dict.items()},
        "ranks": ranks,
        "history": [m.as_dict() for m in history],
        "train_seconds": seconds,
        "steps": trainer.global_step,
        "comms": comms,
        "attempt": attempt,
        "resumed_from": resumed_from,
    }


REPORT_FIELDS = ("compute_s", "comm_s", "idle_s", "bytes_sent", "predicted_comm_s")


def gather_reports(ctx: Any, strategy: Strategy) -> list[dict]:
    """Every rank's time split (compute, communication, idle), bytes sent and the
    communication time the simulated clock predicts on the modelled cluster, on every rank."""
    mine = dict(strategy.report())
    mine["predicted_comm_s"] = float(ctx.pg.predicted_seconds()) if ctx is not None else 0.0
    if ctx is None:
        return [{k: mine[k] for k in ("rank", *REPORT_FIELDS)}]
    row = np.array([float(mine[k]) for k in REPORT_FIELDS])
    table = ctx.pg.all_gather(row).reshape(ctx.world_size, len(REPORT_FIELDS))
    return [
        {"rank": r, **dict(zip(REPORT_FIELDS, map(float, table[r])))} for r in range(len(table))
    ]


def _comms_summary(ctx: Any) -> dict:
    """Measured and predicted (simulated clock) seconds of rank 0's collectives."""
    if ctx is None:
        return {"calls": 0, "bytes": 0, "measured_s": 0.0, "predicted_s": 0.0}
    pg = ctx.pg
    calls = pg.history
    return {
        "calls": len(calls),
        "bytes": int(sum(c["nbytes"] for c in calls)),
        "measured_s": float(sum(c["measured"] for c in calls)),
        "predicted_s": float(pg.predicted_seconds()),  # sub-groups included
    }
