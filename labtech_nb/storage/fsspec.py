"""`FsspecStorage`: cache entries on any fsspec filesystem (S3, GCS, memory, ...)."""

from __future__ import annotations

import os
import posixpath
import secrets
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import IO, Any

from labtech_nb.storage.base import EntryWriter, InPlaceEntryWriter, Storage, check_filename, check_key


class FsspecStorage(Storage):
    """Base class for storages on an fsspec filesystem; subclasses implement `fs_constructor`.

    The filesystem is built once per process (not per call) and is not pickled, so the storage can be
    sent to spawned or remote workers. Entries are written under a hidden staging path and moved into
    place on commit; an entry interrupted mid-write is detected on load and recomputed.

    Args:
        storage_dir: the POSIX path of the storage directory on the filesystem.

    Example:
        ```python
        class S3Storage(FsspecStorage):
            def fs_constructor(self):
                return s3fs.S3FileSystem(endpoint_url=...)
        ```
    """

    def __init__(self, storage_dir: str | PurePosixPath) -> None:
        self.storage_dir = str(storage_dir).rstrip("/") or "/"
        self._fs: Any = None
        self._fs_pid: int | None = None
        self.fs.mkdirs(self.storage_dir, exist_ok=True)

    @abstractmethod
    def fs_constructor(self) -> Any:
        """Return the fsspec filesystem to store entries on."""

    @property
    def fs(self) -> Any:
        """The filesystem, built on first use in each process."""
        if self._fs is None or self._fs_pid != os.getpid():
            self._fs = self.fs_constructor()
            self._fs_pid = os.getpid()
        return self._fs

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fs"] = None
        state["_fs_pid"] = None
        return state

    def _key_path(self, key: str) -> str:
        check_key(key, self.storage_dir)
        return posixpath.join(self.storage_dir, key)

    def find_keys(self) -> Sequence[str]:
        keys = []
        for entry in self.fs.ls(self.storage_dir, detail=True):
            if isinstance(entry, dict):
                if entry.get("type") != "directory":
                    continue
                name = entry["name"]
            else:
                name = entry
            key = posixpath.basename(str(name).rstrip("/"))
            if key and "." not in key:
                keys.append(key)
        return sorted(keys)

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._key_path(key)))

    def file_handle(self, key: str, filename: str, *, mode: str = "r") -> IO[Any]:
        key_path = self._key_path(key)
        check_filename(filename, key_path)
        if any(flag in mode for flag in "wax+"):
            self.fs.mkdirs(key_path, exist_ok=True)
        handle: IO[Any] = self.fs.open(posixpath.join(key_path, filename), mode)
        return handle

    def delete(self, key: str) -> None:
        key_path = self._key_path(key)
        if self.fs.exists(key_path):
            self.fs.rm(key_path, recursive=True)

    def begin_write(self, key: str) -> EntryWriter:
        if type(self).file_handle is not FsspecStorage.file_handle:
            # A subclass that changes how files are written must see every write.
            return InPlaceEntryWriter(self, key)
        return FsspecStagedWriter(self, key)


class FsspecStagedWriter:
    """Writes an entry under a hidden staging path, then moves it into place on commit.

    On filesystems with atomic renames (local, memory) the entry appears at once; on object stores a
    move is a copy, so the previous entry is removed first and the metadata written last still marks
    completeness.
    """

    def __init__(self, storage: FsspecStorage, key: str) -> None:
        self.storage = storage
        self.final_path = storage._key_path(key)
        self.staging_path = posixpath.join(storage.storage_dir, f".staging-{key}-{os.getpid()}-{secrets.token_hex(6)}")
        storage.fs.mkdirs(self.staging_path, exist_ok=True)

    def file_handle(self, filename: str, *, mode: str = "wb") -> IO[Any]:
        check_filename(filename, self.final_path)
        handle: IO[Any] = self.storage.fs.open(posixpath.join(self.staging_path, filename), mode)
        return handle

    def commit(self) -> None:
        fs = self.storage.fs
        if fs.exists(self.final_path):
            fs.rm(self.final_path, recursive=True)
        # File by file, metadata last: object stores have no directory renames, and a reader treats
        # an entry without its metadata as absent.
        files = sorted(fs.find(self.staging_path), key=lambda path: posixpath.basename(path) == "metadata.json")
        fs.mkdirs(self.final_path, exist_ok=True)
        for path in files:
            fs.mv(path, posixpath.join(self.final_path, posixpath.relpath(path, self.staging_path)))
        if fs.exists(self.staging_path):
            fs.rm(self.staging_path, recursive=True)

    def abort(self) -> None:
        fs = self.storage.fs
        if fs.exists(self.staging_path):
            fs.rm(self.staging_path, recursive=True)
