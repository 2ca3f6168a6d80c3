"""What a sound checkpoint looks like: every field of ``checkpoint.json`` checked before use.

A checkpoint folder is data that something else wrote: a run that crashed half-way, an
older version, a hand edit, a file copied over from another run. A hash only proves that
the files are the ones the JSON names; the JSON itself could still say ``"epoch": "2"``,
``"batch": 1e9`` or ``"lr": 1e10``, and the training would crash with a traceback or, worse,
go on with nonsense. So nothing is used before it is checked, in two layers:

- :func:`check_record` — what *every* checkpoint written by
  :func:`~sparkgrad.engine.checkpoint.save_checkpoint` holds: format, version, the step
  (also the folder's name, and also stored in each safetensors header: a model file copied
  in from another checkpoint says its own step, :func:`check_header`), the file digests,
  the optimizer's JSON half. :func:`parse_json` first refuses files too large or nested
  too deeply (``[[[[...]]]]`` 10^5 deep would otherwise end in a ``RecursionError``).
- :class:`TrainingCheck` — what the engine's checkpoints must hold to resume *this* run:
  types and ranges of ``epoch``, ``sampler`` (``batch`` within the epoch, ``running``
  sums), ``history``, ``config``, ``rng`` and the fp16 ``scaler``; their consistency with
  each other and with the step (``step == (epoch - 1) * batches_per_epoch + batch``);
  tensor names, shapes and dtypes against the model being trained; and the optimizer's
  hyper-parameters against the command line: ``lr`` must be ``--lr`` decayed by
  ``--gamma`` once per finished epoch, every other hyper-parameter the optimizer's own. A
  checkpoint can never change a setting, only carry the state of the run.

Every failure is a :class:`~sparkgrad.errors.CheckpointError` naming the file and the
field, e.g. ``checkpoint.json sampler.batch: expected an integer in 1..20, found 1e+09``.
:func:`~sparkgrad.engine.checkpoint.load_latest_checkpoint` then falls back to the
checkpoint before, and raises when none is sound.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import MISSING, dataclass, fields
from typing import Any

import numpy as np

from sparkgrad.errors import CheckpointError

FORMAT = "sparkgrad-checkpoint"
VERSION = 1
MODEL_FILE, OPTIMIZER_FILE, META_FILE = (
    "model.safetensors",
    "optimizer.safetensors",
    "checkpoint.json",
)
MAX_JSON_BYTES = 64 << 20  # a training record is a few KiB; history grows by ~200 B per epoch
MAX_DEPTH = 32  # the deepest sound record nests 5 levels (optimizer.param_groups[0].betas)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


# ---- small typed readers: each names the field and says what was expected ----------------------
def _fail(field: str, expected: str, found: Any, file: str = META_FILE) -> CheckpointError:
    shown = repr(found)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return CheckpointError(f"{file} {field}: expected {expected}, found {shown}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(value: Any, field: str, low: int = 0, high: int | None = None) -> int:
    if not _is_int(value) or value < low or (high is not None and value > high):
        span = f"{low}..{high}" if high is not None else f">= {low}"
        raise _fail(field, f"an integer in {span}", value)
    return value


def _dict(value: Any, field: str) -> dict:
    if not isinstance(value, dict):
        raise _fail(field, "an object", value)
    return value


def _list(value: Any, field: str, length: int | None = None) -> list:
    if not isinstance(value, list) or (length is not None and len(value) != length):
        raise _fail(field, f"a list of {length}" if length is not None else "a list", value)
    return value


# ---- the JSON text ------------------------------------------------------------------------------
def depth(value: Any) -> int:
    """How deeply ``value`` nests lists and dicts (iteratively: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def parse_json(raw: bytes) -> Any:
    """The JSON of ``checkpoint.json``: bounded in size and depth, never a RecursionError."""
    if len(raw) > MAX_JSON_BYTES:
        raise CheckpointError(
            f"{META_FILE} is {len(raw)} bytes, more than the {MAX_JSON_BYTES} a record may take"
        )
    try:
        value = json.loads(raw)
    except RecursionError:
        raise CheckpointError(
            f"{META_FILE} nests lists or objects too deeply to parse (at most {MAX_DEPTH})"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{META_FILE} is not valid JSON ({exc})") from None
    if depth(value) > MAX_DEPTH:
        raise CheckpointError(
            f"{META_FILE} nests {depth(value)} levels of lists or objects, at most {MAX_DEPTH}"
        )
    return value


# ---- what every checkpoint holds ----------------------------------------------------------------
def check_record(record: Any, step: int) -> dict:
    """The fields :func:`save_checkpoint` writes, for the folder of ``step``; returns the record."""
    record = _dict(record, "(the record)")
    if record.get("format") != FORMAT:
        raise _fail("format", repr(FORMAT), record.get("format"))
    if record.get("version") != VERSION or not _is_int(record.get("version")):
        raise _fail("version", str(VERSION), record.get("version"))
    if record.get("step") != step or not _is_int(record.get("step")):
        raise _fail("step", f"{step} (the folder's step)", record.get("step"))
    files = _dict(record.get("files"), "files")
    optimizer = record.get("optimizer")
    wanted = {MODEL_FILE} | ({OPTIMIZER_FILE} if optimizer is not None else set())
    if set(files) != wanted:
        raise _fail("files", f"digests of exactly {sorted(wanted)}", sorted(files))
    for name, digest in files.items():
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise _fail(f"files.{name}", "a SHA-256 as 64 hex digits", digest)
    if optimizer is not None:
        optimizer = _dict(optimizer, "optimizer")
        groups = _list(optimizer.get("param_groups"), "optimizer.param_groups")
        if not groups:
            raise _fail("optimizer.param_groups", "at least one group", groups)
        for i, group in enumerate(groups):
            _dict(group, f"optimizer.param_groups[{i}]")
        scalars = _dict(optimizer.get("scalars", {}), "optimizer.scalars")
        for index, values in scalars.items():
            if not index.isdigit():
                raise _fail("optimizer.scalars", "parameter indices as keys", index)
            _dict(values, f"optimizer.scalars.{index}")
    saved_at = record.get("saved_at")
    if saved_at is not None and not (_is_number(saved_at) and math.isfinite(saved_at)):
        raise _fail("saved_at", "a time in seconds", saved_at)
    return record


def check_header(file: str, metadata: dict[str, str], step: int) -> None:
    """The step in a safetensors header must be the checkpoint's: no file from another one."""
    if metadata.get("step") != str(step):
        raise CheckpointError(
            f"{file}: its header says step {metadata.get('step')}, the checkpoint is step "
            f"{step} (a file copied from another checkpoint?)"
        )


# ---- what the engine's checkpoints hold, checked against the run that resumes --------------------
_CONFIG_TYPES = {
    "model": (str,),
    "optimizer": (str,),
    "lr": (int, float),
    "momentum": (int, float),
    "batch_size": (int,),
    "seed": (int,),
    "epochs": (int,),
}


@dataclass
class TrainingCheck:
    """Checks a loaded checkpoint against the run about to resume from it (callable).

    On a rank it is built from the run's config and its full (unsharded) model before any
    strategy cuts it (:meth:`for_model`): the tensor names and shapes it must find, and a
    fresh optimizer's hyper-parameters. The driver, which builds no model, checks all but
    the tensors' shapes (:meth:`for_config`). ``batches_per_epoch`` (a rank's loader
    length, the same for every world size) makes the step and the sampler position
    comparable; None where it is not known (the driver with data Spark reads from a URI).
    """

    config: Any  # RunConfig
    group: dict[str, Any]  # the optimizer's hyper-parameters, without "params"
    model_shapes: dict[str, tuple[tuple[int, ...], str]] | None = None
    param_shapes: list[tuple[int, ...]] | None = None
    batches_per_epoch: int | None = None

    @classmethod
    def for_model(cls, config: Any, model: Any, batches_per_epoch: int | None = None) -> Any:
        """Every check, against ``model`` (the run's full model, on any device)."""
        from sparkgrad.autodiff.backend import to_numpy

        state = {k: np.asarray(to_numpy(v.array)) for k, v in model.state_dict().items()}
        params = list(model.parameters())
        return cls(
            config,
            _hyper_parameters(config, params),
            {k: (tuple(a.shape), a.dtype.str) for k, a in state.items()},
            [tuple(p.shape) for p in params],
            batches_per_epoch,
        )

    @classmethod
    def for_config(cls, config: Any, batches_per_epoch: int | None = None) -> Any:
        """Every check but the tensors' names and shapes (no model needed)."""
        from sparkgrad.autodiff.tensor import Tensor

        probe = Tensor(np.zeros(1, np.float32), requires_grad=True)
        return cls(config, _hyper_parameters(config, [probe]), None, None, batches_per_epoch)

    def __call__(self, ckpt: Any) -> None:
        meta = ckpt.meta
        epoch, batch = self._position(meta, ckpt.step)
        self._history(meta.get("history"), epoch)
        self.check_config(meta.get("config"))
        self._rng(meta.get("rng"))
        self._scaler(meta.get("scaler"), ckpt.step)
        self._model(ckpt.model_state)
        self._optimizer(ckpt.optimizer_state, epoch)

    # -- where the run stood -------------------------------------------------------------------
    def _position(self, meta: dict, step: int) -> tuple[int, int]:
        sampler = _dict(meta.get("sampler"), "sampler")
        if set(sampler) != {"epoch", "batch", "running"}:
            raise _fail("sampler", "the keys batch, epoch, running", sorted(sampler))
        epoch = _int(sampler["epoch"], "sampler.epoch", 1)
        if meta.get("epoch") != epoch:
            raise _fail("epoch", f"{epoch} (sampler.epoch)", meta.get("epoch"))
        n = self.batches_per_epoch
        batch = _int(sampler["batch"], "sampler.batch", 1, n)
        if n is not None and step != (epoch - 1) * n + batch:
            raise _fail(
                "step",
                f"(epoch - 1) * {n} + batch = {(epoch - 1) * n + batch} at {n} batches per "
                f"epoch (sampler.epoch {epoch}, sampler.batch {batch})",
                step,
            )
        if step < batch:
            raise _fail("step", f">= sampler.batch {batch}", step)
        loss_sum, samples = _list(sampler["running"], "sampler.running", 2)
        if samples != batch * self.config.batch_size or not _is_int(samples):
            raise _fail(
                "sampler.running[1]",
                f"{batch} batches x {self.config.batch_size} samples = "
                f"{batch * self.config.batch_size}",
                samples,
            )
        self._loss(loss_sum, "sampler.running[0]")
        return epoch, batch

    def _loss(self, value: Any, field: str) -> None:
        if not _is_number(value):
            raise _fail(field, "a number", value)
        if math.isfinite(value) and value < 0:
            raise _fail(field, "a loss >= 0", value)
        if not math.isfinite(value) and not self.config.allow_nonfinite_loss:
            raise _fail(field, "a finite loss (the run stops at an inf/NaN loss)", value)

    def _history(self, history: Any, epoch: int) -> None:
        history = _list(history, "history", epoch - 1)
        every = fields(_epoch_metrics())
        names = {f.name for f in every}  # a field with a default may be missing (older runs)
        needed = {f.name for f in every if f.default is MISSING and f.default_factory is MISSING}
        for i, row in enumerate(history):
            row = _dict(row, f"history[{i}]")
            if not needed <= set(row) <= names:
                raise _fail(f"history[{i}]", f"the keys {', '.join(sorted(names))}", sorted(row))
            if row["epoch"] != i + 1 or not _is_int(row["epoch"]):
                raise _fail(f"history[{i}].epoch", str(i + 1), row["epoch"])
            for key in set(row) - {"epoch"}:
                if not _is_number(row[key]):
                    raise _fail(f"history[{i}].{key}", "a number", row[key])
            self._loss(row["train_loss"], f"history[{i}].train_loss")

    def check_config(self, config: Any) -> None:
        """``meta["config"]``: the settings a resume compares, each of its type."""
        config = _dict(config, "config")
        for key, types in _CONFIG_TYPES.items():
            value = config.get(key)
            if not isinstance(value, types) or isinstance(value, bool):
                raise _fail(f"config.{key}", " or ".join(t.__name__ for t in types), value)
        hidden = _list(config.get("hidden"), "config.hidden")
        if not hidden or not all(_is_int(w) and w >= 1 for w in hidden):
            raise _fail("config.hidden", "positive widths", hidden)
        gamma = config.get("gamma")
        if gamma is not None and not _is_number(gamma):
            raise _fail("config.gamma", "a number or null", gamma)

    def _rng(self, rng: Any) -> None:
        scratch = np.random.PCG64()
        try:
            scratch.state = _dict(rng, "rng")
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise _fail("rng", f"a PCG64 generator state ({exc})", rng) from None

    def _scaler(self, scaler: Any, step: int) -> None:
        """fp16 runs: the GradScaler's scale and growth tracker, and the steps it skipped
        (absent or ``{}`` for other precisions)."""
        if scaler is None or scaler == {}:
            return
        scaler = _dict(scaler, "scaler")
        scale = scaler.get("scale")
        if not _is_number(scale) or not math.isfinite(scale) or scale <= 0:
            raise _fail("scaler.scale", "a finite loss scale > 0", scale)
        _int(scaler.get("_growth_tracker"), "scaler._growth_tracker", 0)
        _int(scaler.get("skipped_steps"), "scaler.skipped_steps", 0, step)

    # -- the tensors ---------------------------------------------------------------------------
    def _model(self, state: dict[str, np.ndarray]) -> None:
        if self.model_shapes is None:
            return
        missing = sorted(set(self.model_shapes) - set(state))
        extra = sorted(set(state) - set(self.model_shapes))
        if missing or extra:
            raise CheckpointError(
                f"{MODEL_FILE}: expected the tensors of this model, found "
                f"{len(missing)} missing {missing[:3]} and {len(extra)} unknown {extra[:3]}"
            )
        for name, (shape, dtype) in self.model_shapes.items():
            found = (tuple(state[name].shape), state[name].dtype.str)
            if found != (shape, dtype):
                raise _fail(name, f"shape {shape} {dtype}", f"{found[0]} {found[1]}", MODEL_FILE)

    def _optimizer(self, optimizer: Any, epoch: int) -> None:
        if optimizer is None:
            raise _fail("optimizer", "the optimizer's state", None)
        shapes = self.param_shapes
        n = len(shapes) if shapes is not None else None
        for index, buffers in optimizer["state"].items():
            if n is not None and not 0 <= index < n:
                raise _fail(f"state.{index}", f"a parameter index in 0..{n - 1}", index)
            for name, value in buffers.items():
                if isinstance(value, np.ndarray):
                    if shapes is not None and value.ndim and tuple(value.shape) != shapes[index]:
                        raise _fail(
                            f"state.{index}.{name}",
                            f"shape {self.param_shapes[index]} (its parameter's) or a scalar",
                            tuple(value.shape),
                            OPTIMIZER_FILE,
                        )
                elif not _is_number(value) and not isinstance(value, bool):
                    raise _fail(f"optimizer.scalars.{index}.{name}", "a number", value)
        groups = optimizer["param_groups"]
        if len(groups) != 1:
            raise _fail("optimizer.param_groups", "one group", f"{len(groups)} groups")
        group = dict(groups[0])
        params = group.pop("params", None)
        if params is not None and n is not None and params != list(range(n)):
            raise _fail("optimizer.param_groups[0].params", f"[0, ..., {n - 1}]", params)
        if set(group) != set(self.group):
            unknown, missing = (
                sorted(set(group) - set(self.group)),
                sorted(set(self.group) - set(group)),
            )
            raise CheckpointError(
                f"{META_FILE} optimizer.param_groups[0]: expected the hyper-parameters of "
                f"--optimizer {self.config.optimizer}, found {len(unknown)} unknown {unknown} "
                f"and {len(missing)} missing {missing}"
            )
        gamma = self.config.gamma
        lr = self.config.lr * (gamma ** (epoch - 1) if gamma is not None else 1.0)
        for key, expected in self.group.items():
            value = group[key]
            if key == "lr":
                ok = _is_number(value) and math.isclose(value, lr, rel_tol=1e-9)
                expected = f"{lr:g} (--lr {self.config.lr:g}" + (
                    f" x --gamma {gamma:g}^{epoch - 1})" if gamma is not None else ")"
                )
            elif _is_number(expected):
                ok = _is_number(value) and math.isclose(value, expected, rel_tol=1e-9)
            else:
                ok = value == expected and type(value) is type(expected)
            if not ok:
                raise _fail(f"optimizer.param_groups[0].{key}", str(expected), value)


def _hyper_parameters(config: Any, params: list) -> dict[str, Any]:
    """A fresh optimizer's hyper-parameters for ``config`` (they do not depend on params)."""
    from sparkgrad.engine.model import build_optimizer

    optimizer = build_optimizer(config.optimizer, params, config.lr, config.momentum)
    (group,) = optimizer.state_dict()["param_groups"]
    group = {k: v for k, v in group.items() if k != "params"}
    if config.gamma is not None:  # StepLR keeps the lr it started from, as torch's does
        group["initial_lr"] = config.lr
    return group


def _epoch_metrics() -> type:
    from sparkgrad.engine.trainer import EpochMetrics

    return EpochMetrics
