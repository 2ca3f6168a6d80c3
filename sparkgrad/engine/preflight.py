"""What the driver checks before any Spark task starts: data, output paths, the resume.

A training job runs in ``world_size`` Spark tasks. An error that every task hits in the
same way (a corrupt training file, an export path that cannot be written, a checkpoint
of another optimizer) fails every task, then every retry of the stage, and buries its
one useful line in pages of Java traces; an export that cannot be written is found only
after all the training time is spent. So everything the driver *can* know is checked here,
in a second, and reported as one :class:`~sparkgrad.errors.ConfigError` or
:class:`~sparkgrad.errors.DataFormatError` line (the CLI exits with code 2):

- **data** (:func:`check_data`): both splits' files, by their headers and first rows
  (:func:`sparkgrad.dataset.count_samples`), and that each split is large enough: a
  training split must give every data-parallel rank at least one full batch (the
  sampler and the loader drop the last, incomplete one), a test split at least a sample;
- **outputs** (:func:`check_outputs`): ``--export``, ``--metrics-out`` and
  ``--checkpoint-dir`` must be writable where they point. Writability is tested by
  creating (and removing) a probe file, not by ``os.access``: for root ``os.access``
  answers yes on any mode bits, while a probe fails exactly where the write would;
- **resume** (:func:`check_resume`): the settings a resume cannot change (model,
  optimizer, lr, batch size, ...) must be those of the newest checkpoint, and some
  checkpoint must be sound for this run (the same
  :class:`~sparkgrad.engine.checkpoint_schema.TrainingCheck` the ranks apply), else the
  run would fail in every task or silently start afresh;
- **device** (:func:`check_device`): ``--device cuda`` needs CuPy and a GPU where the
  ranks run, which the driver can only tell for a local master (its own machine).

Nothing is written: a missing output directory is created only when the run writes into
it, as :func:`~sparkgrad.export.safetensors_io.write_atomic` does.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from typing import Any
from urllib.parse import urlparse

from sparkgrad.engine.config import RunConfig
from sparkgrad.errors import ConfigError, DataFormatError

#: Settings a ``--resume`` takes from the checkpoint: a different value on the command line
#: cannot work (model, hidden, optimizer: other tensors) or would be silently overridden
#: (lr, momentum: restored with the optimizer state; batch size, seed, gamma: the sampler's
#: position and the schedule would no longer mean what they meant).
RESUME_MUST_MATCH = (
    "model",
    "hidden",
    "optimizer",
    "lr",
    "momentum",
    "gamma",
    "batch_size",
    "seed",
)


def preflight(config: RunConfig) -> None:
    """Every check above, in order of cost: outputs, data, resume (and the device when the
    run stays in this process; a Spark run checks it once its master is known)."""
    check_outputs(config)
    if config.strategy == "single":
        check_device(config)
    counts = check_data(config)
    check_resume(config, counts)


def check_device(config: RunConfig, master: str | None = None) -> None:
    """``--device cuda`` works here; ``master``: the Spark master (None: this process)."""
    if config.device != "cuda":
        return
    from sparkgrad.engine.spark_session import is_local_master

    if master is not None and not is_local_master(master):
        return  # the executors' GPUs are not the driver's
    from sparkgrad.autodiff.backend import get_array_module

    get_array_module("cuda")  # DeviceError naming what is missing


# ---- data ------------------------------------------------------------------------------------
def check_data(config: RunConfig) -> dict[str, int] | None:
    """Both splits checked and counted; ``None`` for a Hadoop URI (Spark reads it)."""
    from sparkgrad.dataset import count_samples
    from sparkgrad.dataset.sources import is_uri

    if is_uri(config.data) and config.strategy != "single":
        if config.data_parallel_size != config.world_size:
            raise ConfigError(
                f"--data {config.data}: Spark hands each rank its own shard of a URI, which "
                f"fits strategies that split the batch over every rank (data, zero1-3); for "
                f"--strategy {config.strategy} copy the files to a local directory and pass that"
            )
    counts = _count_samples(config, count_samples)
    if counts is None:
        return None
    if counts["test"] < 1:
        raise DataFormatError(f"--data {config.data}: the test split has no samples")
    dp, per_rank = config.data_parallel_size, config.per_rank_batch
    n = counts["train"]
    if n // dp < per_rank:
        ranks = f"{dp} data-parallel ranks" if dp > 1 else "one process"
        fix = (
            f"use --batch-size <= {n // dp * dp}"
            if n >= dp
            else f"use fewer than {n + 1} data-parallel ranks"
        )
        raise ConfigError(
            f"--data {config.data}: the training split has {n} samples, too few for one step: "
            f"--batch-size {config.batch_size} over {ranks} takes {per_rank} per rank, and each "
            f"rank gets {n // dp} (the last incomplete batch is dropped), so no step would run; "
            f"{fix} or more data"
        )
    return counts


def _count_samples(config: RunConfig, count_mnist: Any) -> dict[str, int] | None:
    """Training and test samples of the model's task (windows of a text, digit strings)."""
    from sparkgrad.dataset.sources import is_uri
    from sparkgrad.engine.model import MODELS
    from sparkgrad.engine.tasks import REVERSE, TEXT, reversal_datasets, text_datasets

    task = MODELS[config.model].task
    if task is TEXT:
        if is_uri(config.data) and not config.data.startswith("file:"):
            return None  # read through Spark when the run starts
        train, test, _ = text_datasets(config)  # UTF-8, long enough for one window: checked
        return {"train": len(train), "test": len(test)}
    if task is REVERSE:
        train, test = reversal_datasets(config)
        return {"train": len(train), "test": len(test)}
    return count_mnist(config.data, seed=config.seed)


# ---- outputs ---------------------------------------------------------------------------------
def _local_path(location: str) -> str | None:
    """The local path of a path or ``file:`` URI; None for other URIs (hdfs://, s3a://)."""
    scheme = urlparse(location).scheme
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):
        return location
    return urlparse(location).path if scheme == "file" else None


def _existing_ancestor(path: str, flag: str, given: str) -> str:
    """The nearest existing folder above ``path`` (where a missing one would be created)."""
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ConfigError(
            f"{flag} {given}: {parent} is a file, not a directory, so nothing can be written "
            "under it"
        )
    return parent


def _probe(directory: str, flag: str, given: str) -> None:
    """Create and remove a file in ``directory``; ConfigError when that is refused."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".sparkgrad-write-probe-", dir=directory)
    except OSError as exc:
        raise ConfigError(
            f"{flag} {given}: cannot write into {directory} ({exc.strerror or exc})"
        ) from None
    os.close(fd)
    os.remove(probe)


def check_output_file(given: str, flag: str) -> None:
    """A file path the run will write (``--export``, ``--metrics-out``) is writable."""
    if given.endswith(("/", os.sep)):
        raise ConfigError(f"{flag} {given}: expected a file name, found a directory path")
    path = os.path.abspath(given)
    if os.path.isdir(path):
        raise ConfigError(f"{flag} {given}: is an existing directory, expected a file path")
    if os.path.exists(path) and not os.path.isfile(path):
        raise ConfigError(f"{flag} {given}: exists and is not a regular file")
    parent = os.path.dirname(path)
    if os.path.isdir(parent):
        _probe(parent, flag, given)
    else:
        _probe(_existing_ancestor(path, flag, given), flag, given)


def check_output_dir(given: str, flag: str) -> None:
    """A directory the run will write into (``--checkpoint-dir``) is one, and writable."""
    local = _local_path(given)
    if local is None:
        return  # hdfs://, s3a://: checked by pyarrow when the first checkpoint is written
    path = os.path.abspath(local)
    if os.path.isdir(path):
        _probe(path, flag, given)
    elif os.path.exists(path):
        raise ConfigError(f"{flag} {given}: is an existing file, expected a directory")
    else:
        _probe(_existing_ancestor(path, flag, given), flag, given)


def check_outputs(config: RunConfig) -> None:
    """``--export``, ``--metrics-out`` and ``--checkpoint-dir`` can be written."""
    if config.export:
        check_output_file(config.export, "--export")
    if config.metrics_out:
        check_output_file(config.metrics_out, "--metrics-out")
    if config.export and config.metrics_out:
        if os.path.abspath(config.export) == os.path.abspath(config.metrics_out):
            raise ConfigError(
                f"--export and --metrics-out name the same file {config.export}: the metrics "
                "would overwrite the model"
            )
    if config.checkpoint_dir:
        check_output_dir(config.checkpoint_dir, "--checkpoint-dir")


# ---- resume ----------------------------------------------------------------------------------
def _show(name: str, value: object) -> str:
    if value is None:
        return "(not set)"
    if name == "hidden":
        return ",".join(str(w) for w in value)
    return str(value)


def check_resume(config: RunConfig, counts: dict[str, int] | None = None) -> None:
    """``--resume``: the command line agrees with the checkpoints, and one is sound for it.

    First the newest checkpoint that loads at all: its ``meta["config"]`` must agree with
    the command line on :data:`RESUME_MUST_MATCH` (a conflict is a ConfigError listing each
    setting). Then the checkpoint the ranks will pick, under the checks they apply
    (:class:`~sparkgrad.engine.checkpoint_schema.TrainingCheck`, all but the tensors' shapes;
    ``counts``: the data's sizes from :func:`check_data`, which fix the batches per epoch):
    CheckpointError when
    checkpoints exist and none is sound, its config compared again, and its epoch must
    not lie beyond ``--epochs``.
    """
    if not (config.resume and config.checkpoint_dir):
        return
    from sparkgrad.engine.checkpoint import load_latest_checkpoint
    from sparkgrad.engine.checkpoint_schema import TrainingCheck
    from sparkgrad.errors import CheckpointError

    # a rank's batches per epoch are the same for every world size d: floor(floor(n/d) /
    # (b/d)) = floor(n/b), as no multiple of b (b is one of d) lies between floor(n/d)*d and
    # n. The tensors' shapes are left to the ranks (the driver builds no model)
    batches = counts["train"] // config.batch_size if counts else None
    check = TrainingCheck.for_config(config, batches)
    with warnings.catch_warnings():  # damaged checkpoints: the ranks warn about them
        warnings.simplefilter("ignore")
        try:
            newest = load_latest_checkpoint(config.checkpoint_dir)
            check.check_config(newest.meta.get("config") if newest is not None else None)
        except CheckpointError:
            newest = None  # damaged: the ranks skip it, and so does the comparison
        if newest is not None:
            _compare(config, newest)
        chosen = load_latest_checkpoint(config.checkpoint_dir, validate=check)
    if chosen is None:
        return
    if newest is None or chosen.step != newest.step:
        _compare(config, chosen)
    epoch = chosen.meta["sampler"]["epoch"]
    if epoch > config.epochs:
        raise ConfigError(
            f"--resume: the checkpoint in {config.checkpoint_dir} (step {chosen.step}) is in "
            f"epoch {epoch}, beyond --epochs {config.epochs}; pass --epochs {epoch} or more"
        )


def _compare(config: RunConfig, ckpt: Any) -> None:
    """ConfigError listing every RESUME_MUST_MATCH setting where ``ckpt`` and ``config`` differ."""
    saved = ckpt.meta.get("config")
    if not isinstance(saved, dict):
        return
    mine = config.to_dict()
    names = [n for n in RESUME_MUST_MATCH if n in saved]
    if saved.get("model") == "cnn" and mine["model"] == "cnn":
        names = [n for n in names if n != "hidden"]  # the CNN has no --hidden
    if saved.get("optimizer") not in ("sgd", "rmsprop") and mine["optimizer"] not in (
        "sgd",
        "rmsprop",
    ):
        names = [n for n in names if n != "momentum"]  # only SGD and RMSprop take it
    conflicts = [
        f"--{n.replace('_', '-')} {_show(n, saved[n])} (this run: {_show(n, mine[n])})"
        for n in names
        if _normal(saved[n]) != _normal(mine[n])
    ]
    if conflicts:
        raise ConfigError(
            f"--resume: the checkpoint in {config.checkpoint_dir} (step {ckpt.step}) "
            f"was trained with {', '.join(conflicts)}; resume with the checkpoint's settings "
            "or start afresh in another --checkpoint-dir"
        )


def _normal(value: object) -> object:
    return list(value) if isinstance(value, (list, tuple)) else value
