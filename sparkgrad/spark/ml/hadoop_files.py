"""Whole files at a local path or any Hadoop URI, through the JVM's Hadoop ``FileSystem``.

Spark ML writes its models through Hadoop (``file:``, ``hdfs://``, ``s3a://``, ...), so
we do too: the file system is the one Spark itself would use for ``path``, with the
session's Hadoop configuration. :func:`write_bytes` writes to a temporary name in the
same folder and renames it: a reader sees the old file, the new one, or none, never half.
"""

from __future__ import annotations

import secrets
from typing import Any

from sparkgrad.errors import CheckpointError


def _fs(spark: Any, path: str) -> tuple[Any, Any]:
    sc = spark.sparkContext
    jpath = sc._jvm.org.apache.hadoop.fs.Path(path)
    return jpath.getFileSystem(sc._jsc.hadoopConfiguration()), jpath


def write_bytes(spark: Any, path: str, payload: bytes) -> str:
    """Write ``payload`` to ``path`` (temporary name, then rename); returns ``path``."""
    fs, final = _fs(spark, path)
    parent = final.getParent()
    tmp = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(
        parent, f".{final.getName()}.tmp-{secrets.token_hex(4)}"
    )
    try:
        fs.mkdirs(parent)
        out = fs.create(tmp, True)
        try:
            out.write(bytearray(payload))
        finally:
            out.close()
        if fs.exists(final):
            fs.delete(final, False)
        if not fs.rename(tmp, final):
            raise CheckpointError(f"{path}: could not rename the written file into place")
    except CheckpointError:
        raise
    except Exception as exc:  # py4j's Java errors: permission, no space, unknown scheme
        raise CheckpointError(f"{path}: cannot write ({_first_line(exc)})") from None
    finally:
        try:
            if fs.exists(tmp):
                fs.delete(tmp, False)
        except Exception:  # noqa: BLE001 - cleaning up after a failed write: best effort
            pass
    return path


def read_bytes(spark: Any, path: str) -> bytes:
    """The whole file at ``path``; CheckpointError when it is missing or unreadable."""
    fs, jpath = _fs(spark, path)
    try:
        if not fs.isFile(jpath):
            raise CheckpointError(f"{path}: expected a file, found none")
        stream = fs.open(jpath)
        try:
            data = spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
        finally:
            stream.close()
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read ({_first_line(exc)})") from None
    return bytes(data)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
