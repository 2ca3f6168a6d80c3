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
from sparkgrad.comms.model.prediction import predicted_seconds
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
from sparkgrad.engine.memory import FIELDS as MEMORY_FIELDS
from sparkgrad.engine.memory import FirstStepMemory
from sparkgrad.engine.model import MODELS, build_optimizer
from sparkgrad.engine.precision import MixedPrecision
from sparkgrad.engine.tasks import REVERSE, TEXT, reversal_datasets, text_datasets
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


def _datasets(
    config: RunConfig, shard: list | None, driver_data: Any
) -> tuple[TensorDataset, Any, str, bool]:
    """(train set, test set or None to read later, vocabulary, whole train set on every rank?).

    Text and reversal data are small and made or read the same way on every rank (a corpus
    at a Hadoop URI is read once by the driver: ``driver_data`` is its text). MNIST images
    are read by every rank from the source — or, with a Hadoop URI, the driver has already
    cut the shards (``shard``: this rank's records, read by Spark where the data lives).
    """
    task = MODELS[config.model].task
    if task is TEXT:
        corpus = driver_data if isinstance(driver_data, str) else None
        train, test, vocab = text_datasets(config, corpus)
        return train, test, vocab, True
    if task is REVERSE:
        train, test = reversal_datasets(config)
        return train, test, "", True
    standardize = MODELS[config.model].standardize
    if shard is None:
        images, labels = load_mnist(config.data, "train", seed=config.seed, standardize=standardize)
        return TensorDataset(images, labels), driver_data, "", True
    images, labels = records_to_arrays(shard)
    images = to_float(images, standardize=standardize)
    return TensorDataset(images, labels), driver_data, "", False


def _loaders(
    config: RunConfig, strategy: Strategy, train: TensorDataset, whole: bool, test: Any
) -> tuple[DataLoader, DataLoader | None]:
    """This rank's training batches (and the test set on rank 0).

    With the whole training set, this rank's DistributedSampler picks its samples; with a
    driver-cut shard the rank shuffles within it.
    """
    replicas, position = (
        (strategy.data_parallel_size, strategy.data_parallel_rank) if whole else (1, 0)
    )
    sampler = DistributedSampler(
        train, replicas, position, shuffle=True, seed=config.seed, drop_last=True
    )
    per_rank_batch = config.batch_size // strategy.data_parallel_size
    train_loader = DataLoader(
        train, per_rank_batch, sampler=sampler, drop_last=True, device=config.device
    )
    test_loader = None
    if strategy.rank == 0 or strategy.predict_is_collective:
        if test is None:
            standardize = MODELS[config.model].standardize
            test = TensorDataset(
                *load_mnist(config.data, "test", seed=config.seed, standardize=standardize)
            )
        elif isinstance(test, tuple):
            test = TensorDataset(*test)
        eval_batch = MODELS[config.model].eval_batch
        test_loader = DataLoader(test, batch_size=eval_batch, device=config.device)
    return train_loader, test_loader


def train_rank(ctx: Any, config: RunConfig | dict, test_set: Any = None) -> dict | None:
    """Train on this rank; rank 0 returns ``{"state_dict", "history", "comms", ...}``.

    ``test_set``: what the driver read for sources a task cannot open — ``(images,
    labels)`` of MNIST's test split, or a text corpus's whole text.
    """
    config = _config(config)
    rank, world = (ctx.rank, ctx.world_size) if ctx is not None else (0, 1)
    attempt = ctx.attempt if ctx is not None else 0
    say = ctx.log.info if ctx is not None else (lambda *a: None)

    spec = MODELS[config.model]
    train_set, test_set, vocab, whole = _datasets(
        config, ctx.records if ctx is not None else None, test_set
    )
    model = spec.build(config, vocab).to(config.device)
    check = TrainingCheck.for_model(config, model)  # the full model, before any strategy cuts it
    # --precision (issue 19): autocast around the step, fp16's loss scaling and scaled step;
    # the found-inf flag is agreed over every rank (sparkgrad/engine/precision.py)
    collective = ctx is not None and world > 1 and not config.uses_parameter_server
    amp = MixedPrecision(
        config.precision,
        config.device,
        ctx.pg if collective else None,
        init_scale=config.init_scale,
        growth_interval=config.growth_interval,
    )
    if config.uses_parameter_server:  # issue 20: a worker of the parameter server
        from sparkgrad.parallel.asynchronous.worker import AsyncWorker

        strategy = AsyncWorker.connect(
            ctx.service_address,
            ctx.secret,
            rank,
            world,
            model,
            lambda params: build_optimizer(config.optimizer, params, config.lr, config.momentum),
            spec.loss(),
            timeout=float(config.extra.get("ps_timeout", 60.0)),
            faults=config.extra.get("ps_faults", {}).get(str(rank)),
        )
    else:
        strategy = make_strategy(
            config.strategy if world > 1 else "single",
            model,
            amp.optimizer_factory(
                lambda params: build_optimizer(config.optimizer, params, config.lr, config.momentum)
            ),
            amp.loss_fn(spec.loss()),
            **config.strategy_options(),
        )
        amp.attach(strategy)
    # issue 18: this rank's memory, predicted from shapes now and measured on the first step
    # (under fp16 the first one the loss scaler took)
    memory = (
        None if config.uses_parameter_server
        else FirstStepMemory(config, vocab, strategy, amp.scaler)
    )  # fmt: skip
    scheduler = None
    if config.gamma is not None:  # made before a resume loads the (already decayed) lr
        scheduler = sg.optim.lr_scheduler.StepLR(strategy.optimizer, 1, gamma=config.gamma)
    train_loader, test_loader = _loaders(config, strategy, train_set, whole, test_set)
    total_steps = len(train_loader) * config.epochs
    trainer = Trainer(
        strategy,
        spec.loss(),
        train_loader,
        test_loader,
        config.epochs,
        scheduler=scheduler,
        progress=config.progress and ctx is None,
        task=spec.task,
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
            amp.load_state_dict(ckpt.meta.get("scaler", {}))  # fp16: the scale goes on
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
                    # fp16: the loss scale, growth tracker and skips (the same on every rank)
                    "scaler": amp.state_dict(),
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
            task = spec.task
            say(
                f"epoch {m.epoch}: train loss {m.train_loss:.4f}, test loss {m.test_loss:.4f}, "
                f"{task.label} {task.format(getattr(m, task.metric))}, {rate:.0f} samples/s"
            )

    trainer.step_callbacks.append(on_step)
    trainer.callbacks.append(on_epoch)
    profiler = None  # --profile DIR (issue 19): traces of the training, per rank and merged
    if config.profile:
        from sparkgrad.engine.profiling import RunProfiler

        profiler = RunProfiler(config.profile, ctx, config.sim_topology).start()
        trainer.step_callbacks.append(profiler.on_step)
    start = time.perf_counter()
    try:
        history = trainer.fit(start_epoch, skip)
    except BaseException:
        if config.uses_parameter_server:  # issue 20: the server sees this worker go at once
            strategy.close()
        raise
    seconds = time.perf_counter() - start
    if profiler is not None:
        profiler.finish()
    state_dict = strategy.full_state_dict()  # a collective: every rank takes part
    if config.uses_parameter_server:  # issue 20: no collective among asynchronous workers
        ranks = strategy.finish()  # DONE with this worker's time split, to the server
    else:
        ranks = gather_reports(ctx, strategy, config.sim_topology, memory)
    if rank != 0:
        return None
    comms = _comms_summary(None if config.uses_parameter_server else ctx, config.sim_topology)
    return {
        "state_dict": {k: to_numpy(v) for k, v in state_dict.items()},
        "ranks": ranks,
        "history": [m.as_dict() for m in history],
        "train_seconds": seconds,
        "steps": trainer.global_step,
        "comms": comms,
        "attempt": attempt,
        "resumed_from": resumed_from,
        "vocab": vocab,
        "precision": amp.report(),
    }


REPORT_FIELDS = (
    "compute_s", "comm_s", "idle_s", "bytes_sent", "predicted_comm_s", *MEMORY_FIELDS,
)  # fmt: skip


def gather_reports(
    ctx: Any, strategy: Strategy, topology: str, memory: FirstStepMemory | None = None
) -> list[dict]:
    """Every rank's time split (compute, communication, idle), bytes sent, the time its
    recorded collectives would take on the modelled cluster ``topology`` and its memory,
    predicted and measured (NaN where unknown), on every rank."""
    mine = dict(strategy.report())
    mine["predicted_comm_s"] = predicted_seconds(ctx.pg.calls(), topology) if ctx else 0.0
    mine.update(memory.fields() if memory is not None else dict.fromkeys(MEMORY_FIELDS, np.nan))
    if ctx is None:
        return [{k: mine[k] for k in ("rank", *REPORT_FIELDS)}]
    row = np.array([float(mine[k]) for k in REPORT_FIELDS])
    table = ctx.pg.all_gather(row).reshape(ctx.world_size, len(REPORT_FIELDS))
    return [
        {"rank": r, **dict(zip(REPORT_FIELDS, map(float, table[r])))} for r in range(len(table))
    ]


def _comms_summary(ctx: Any, topology: str) -> dict:
    """Rank 0's collectives: calls, bytes sent, measured seconds, predicted on ``topology``."""
    if ctx is None:
        return {"calls": 0, "bytes": 0, "measured_s": 0.0, "predicted_s": 0.0}
    calls = ctx.pg.calls()  # sub-groups included
    return {
        "calls": len(calls),
        "bytes": int(sum(c["bytes_sent"] for c in calls)),
        "measured_s": float(sum(c["measured"] for c in calls)),
        "predicted_s": predicted_seconds(calls, topology),
    }
