"""Where checkpoints live: a local folder, a ``file://`` URI, or a Hadoop-style URI.

A checkpoint is a folder of files. To make it appear *all at once*, it is first written
under a temporary name (``step-000120.tmp-<pid>``) and then renamed; a reader never sees
a half-written ``step-000120``. A :class:`Store` offers just what that needs:

- :class:`LocalStore` for paths and ``file://`` URIs: the staging folder is created next
  to the final one and renamed with ``os.replace`` (atomic on one file system);
- :class:`ArrowStore` for other URIs through ``pyarrow.fs`` (``hdfs://`` needs a JVM and
  libhdfs, ``s3://``/``s3a://`` the S3 support of pyarrow): files are staged locally,
  uploaded under the temporary name, then moved.

Only one process (rank 0) should write into a checkpoint folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any
from urllib.parse import urlparse

from sparkgrad.errors import CheckpointError

SUPPORTED = "local paths, file:// URIs, and URIs that pyarrow.fs opens (hdfs://, s3://, s3a://)"


class LocalStore:
    """Checkpoint folders under a local directory."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    def __str__(self) -> str:
        return self.root

    def names(self) -> list[str]:
        """Names of the entries directly under the root (none if it does not exist yet)."""
        return sorted(os.listdir(self.root)) if os.path.isdir(self.root) else []

    def staging_dir(self, name: str) -> str:
        """A fresh local folder to write ``name``'s files into before :meth:`publish`."""
        os.makedirs(self.root, exist_ok=True)
        path = os.path.join(self.root, f"{name}.tmp-{os.getpid()}")
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        return path

    def publish(self, staging: str, name: str) -> str:
        """Make the staged folder visible as ``name`` in one rename; returns its location."""
        final = os.path.join(self.root, name)
        if os.path.exists(final):  # the same step written again (e.g. after a resume)
            old = f"{final}.old-{os.getpid()}"
            os.replace(final, old)
            os.replace(staging, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, final)
        _fsync_dir(self.root)
        return final

    def local_copy(self, name: str) -> str:
        """A local folder holding ``name``'s files (here: the folder itself)."""
        return os.path.join(self.root, name)

    def release(self, local: str) -> None:
        """Forget a folder returned by :meth:`local_copy` (nothing to do locally)."""

    def remove(self, name: str) -> None:
        """Delete the entry ``name`` and everything in it."""
        shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)


class ArrowStore:
    """Checkpoint folders on any file system that ``pyarrow.fs`` can open."""

    def __init__(self, filesystem: Any, root: str, uri: str) -> None:
        self.fs, self.root, self.uri = filesystem, root.rstrip("/"), uri

    def __str__(self) -> str:
        return self.uri

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def names(self) -> list[str]:
        from pyarrow.fs import FileSelector

        infos = self.fs.get_file_info(FileSelector(self.root, allow_not_found=True))
        return sorted(info.base_name for info in infos)

    def staging_dir(self, name: str) -> str:
        return tempfile.mkdtemp(prefix=f"{name}.staging-")

    def publish(self, staging: str, name: str) -> str:
        tmp = self._path(f"{name}.tmp-{os.getpid()}")
        try:
            self.fs.create_dir(tmp, recursive=True)
            for file in sorted(os.listdir(staging)):
                with open(os.path.join(staging, file), "rb") as src:
                    with self.fs.open_output_stream(f"{tmp}/{file}") as dst:
                        dst.write(src.read())
            self.remove(name)
            self.fs.move(tmp, self._path(name))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return f"{self.uri.rstrip('/')}/{name}"

    def local_copy(self, name: str) -> str:
        from pyarrow.fs import FileSelector

        local = tempfile.mkdtemp(prefix=f"{name}.download-")
        for info in self.fs.get_file_info(FileSelector(self._path(name))):
            with self.fs.open_input_stream(info.path) as src:
                with open(os.path.join(local, info.base_name), "wb") as dst:
                    dst.write(src.read())
        return local

    def release(self, local: str) -> None:
        shutil.rmtree(local, ignore_errors=True)

    def remove(self, name: str) -> None:
        from pyarrow.fs import FileType

        if self.fs.get_file_info(self._path(name)).type != FileType.NotFound:
            self.fs.delete_dir(self._path(name))


def open_store(location: str | os.PathLike, filesystem: Any = None) -> LocalStore | ArrowStore:
    """The store for a path or URI; ``filesystem`` (a ``pyarrow.fs.FileSystem``) overrides."""
    location = os.fspath(location)
    if filesystem is not None:
        return ArrowStore(filesystem, location, location)
    scheme = urlparse(location).scheme
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):  # a path (or C:\...)
        return LocalStore(location)
    if scheme == "file":
        return LocalStore(urlparse(location).path)
    try:
        from pyarrow.fs import FileSystem

        fs, root = FileSystem.from_uri(
            "s3" + location[len("s3a") :] if scheme == "s3a" else location
        )
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds; we report one
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"cannot open checkpoint location {location!r}: {first_line}. Supported: {SUPPORTED}"
        ) from None
    return ArrowStore(fs, root, location)


def _fsync_dir(path: str) -> None:
    """Flush a directory entry (the rename) to disk where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
