"""Saving and loading fitted models with Spark ML's own ``MLWritable`` / ``MLReadable``.

A saved model is a folder (a local path or any Hadoop URI), laid out as Spark ML's models
are, so ``PipelineModel.save``/``load`` handle it with no wrapper::

    path/metadata/part-00000      DefaultParamsWriter's JSON: class, uid, Params, and our
                                  "sparkgrad" block (resolved model spec, task, losses)
    path/data/model.safetensors   the weights, PyTorch's names and layouts: torch loads it
                                  with ``safetensors.torch.load_file`` as it is

The weights file is written under a temporary name and renamed
(:func:`~.hadoop_files.write_bytes`). Its header repeats the model spec and the uid and
holds a SHA-256 of the tensors. Loading reads *everything* first and checks it — the
metadata's class, the digest, that the two files describe the same model, that every
tensor the architecture needs is there with its shape — and only then builds the Model:
a missing or tampered file raises :class:`~sparkgrad.errors.CheckpointError` naming it,
and nothing is half-loaded.
"""

from __future__ import annotations

import json
from typing import Any

from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReader, MLWriter

from sparkgrad.errors import CheckpointError, SparkgradError

WEIGHTS = "data/model.safetensors"
FORMAT = 1


def _join(path: str, name: str) -> str:
    return path.rstrip("/") + "/" + name


class SparkgradModelWriter(MLWriter):
    """Writes a fitted sparkgrad model (see the module docstring)."""

    def __init__(self, instance: Any) -> None:
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        from safetensors.numpy import save

        from sparkgrad import __version__
        from sparkgrad.export.safetensors_io import DIGEST_KEY, tensor_digest
        from sparkgrad.spark.ml.hadoop_files import write_bytes

        model = self.instance
        block = {
            "format": FORMAT,
            "task": model.task,
            "modelSpec": model.modelSpec,
            "trainLoss": model.trainingLoss,
            "weights": WEIGHTS,
        }
        arrays = model.stateDict()
        header = {
            "sparkgrad.model_spec": json.dumps(model.modelSpec, sort_keys=True),
            "sparkgrad.task": model.task,
            "sparkgrad.uid": model.uid,
            "sparkgrad_version": __version__,
            DIGEST_KEY: tensor_digest(arrays),
        }
        DefaultParamsWriter.saveMetadata(
            model, path, self.sparkSession, extraMetadata={"sparkgrad": block}
        )
        write_bytes(self.sparkSession, _join(path, WEIGHTS), save(arrays, metadata=header))


class SparkgradModelReader(MLReader):
    """Reads what :class:`SparkgradModelWriter` wrote, checking everything first."""

    def __init__(self, cls: type) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> Any:
        from sparkgrad.export.safetensors_io import DIGEST_KEY, parse_safetensors
        from sparkgrad.spark.ml.hadoop_files import read_bytes

        metadata = self._metadata(path)
        block = metadata.get("sparkgrad")
        if not isinstance(block, dict) or block.get("format") != FORMAT:
            raise CheckpointError(
                f"{path}: expected a sparkgrad model (format {FORMAT}) in its metadata, found "
                f"{'no sparkgrad block' if not isinstance(block, dict) else block.get('format')}"
            )
        spec, task = block.get("modelSpec"), block.get("task")
        if task != self.cls.task or not isinstance(spec, dict):
            raise CheckpointError(
                f"{path}: expected a {self.cls.task} model spec in its metadata, found task "
                f"{task!r} and spec {spec!r}"
            )
        weights_path = _join(path, WEIGHTS)
        arrays, header = parse_safetensors(
            read_bytes(self.sparkSession, weights_path), weights_path
        )
        if DIGEST_KEY not in header:
            raise CheckpointError(f"{weights_path}: expected a SHA-256 in its header, found none")
        spec_text = json.dumps(spec, sort_keys=True)
        found = (header.get("sparkgrad.model_spec"), header.get("sparkgrad.uid"))
        if found != (spec_text, metadata.get("uid")):
            raise CheckpointError(
                f"{path}: the metadata and {WEIGHTS} describe different models (spec "
                f"{spec_text} and uid {metadata.get('uid')!r} vs {found[0]} and {found[1]!r}): "
                "one of the files was replaced or edited"
            )
        self._check_tensors(path, spec, arrays)
        instance = self.cls(arrays, spec, list(block.get("trainLoss") or []))
        try:
            instance._resetUid(metadata["uid"])
            DefaultParamsReader.getAndSetParams(instance, metadata)
        except (SparkgradError, TypeError, KeyError, ValueError, AssertionError) as exc:
            raise CheckpointError(f"{path}/metadata: its Params do not load ({exc})") from None
        return instance

    def _metadata(self, path: str) -> dict:
        expected = f"{self.cls.__module__}.{self.cls.__name__}"
        try:
            metadata = DefaultParamsReader.loadMetadata(path, self.sparkSession)
        except Exception as exc:  # AnalysisException (PATH_NOT_FOUND), bad JSON, ...
            line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(
                f"{path}: expected a saved {self.cls.__name__} there, cannot read its "
                f"metadata ({line})"
            ) from None
        if metadata.get("class") != expected:
            raise CheckpointError(
                f"{path}: expected a saved {expected}, found {metadata.get('class')!r}"
            )
        return metadata

    @staticmethod
    def _check_tensors(path: str, spec: dict, arrays: dict) -> None:
        from sparkgrad.spark.ml import spec as specs

        try:
            wanted = {k: tuple(v.shape) for k, v in specs.build(spec, 0).state_dict().items()}
        except SparkgradError as exc:
            raise CheckpointError(f"{path}: its model spec does not build ({exc})") from None
        found = {k: tuple(v.shape) for k, v in arrays.items()}
        if wanted != found:
            missing = sorted(set(wanted) - set(found))
            extra = sorted(set(found) - set(wanted))
            shapes = [k for k in wanted if k in found and wanted[k] != found[k]]
            raise CheckpointError(
                f"{path}/{WEIGHTS}: expected the tensors of {spec}, found missing {missing}, "
                f"unexpected {extra}, wrong shapes {[(k, found[k]) for k in shapes]}"
            )
