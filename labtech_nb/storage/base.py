"""The `Storage` contract: where cache entries live, one directory-like key per entry."""

from __future__ import annotations

import functools
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import IO, Any, Protocol

from labtech_nb.exceptions import StorageError

#: Characters a key may not contain: keys name a single directory directly under the storage.
FORBIDDEN_KEY_CHARACTERS = tuple(dict.fromkeys(char for char in (".", "/", "\\", os.sep, os.altsep) if char))


class EntryWriter(Protocol):
    """Writes the files of one cache entry; nothing is visible under the key until `commit`."""

    def file_handle(self, filename: str, *, mode: str = "wb") -> IO[Any]:
        """Open a file of the entry being written."""

    def commit(self) -> None:
        """Make the entry visible, replacing any previous entry under the same key."""

    def abort(self) -> None:
        """Discard everything written so far."""


class Storage(ABC):
    """Holds cache entries: each key names a directory-like location holding a few files.

    Subclasses implement the five methods below. They may also override `begin_write` to make new
    entries appear atomically (as `LocalStorage` does); the default writes in place, after removing
    any previous entry, and relies on the cache writing its metadata file last.
    """

    @abstractmethod
    def find_keys(self) -> Sequence[str]:
        """Return the keys of every entry in the storage."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Return whether an entry exists under ``key``."""

    @abstractmethod
    def file_handle(self, key: str, filename: str, *, mode: str = "r") -> IO[Any]:
        """Open ``filename`` in the entry ``key`` (creating the entry's location when writing)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the entry ``key``, if it exists."""

    def get_runner_storage(self) -> Storage:
        """Return the storage that runner workers should use (by default, this one)."""
        return self

    def read_bytes(self, key: str, filename: str) -> bytes:
        """Return the whole content of ``filename`` in the entry ``key`` (by default, through `file_handle`)."""
        with self.file_handle(key, filename, mode="rb") as file:
            return bytes(file.read())

    def read_tail(self, key: str, filename: str, count: int) -> bytes:
        """Return the last ``count`` bytes of ``filename`` in the entry ``key`` (fewer if it is shorter)."""
        with self.file_handle(key, filename, mode="rb") as file:
            return read_file_tail(file, count)

    def begin_write(self, key: str) -> EntryWriter:
        """Start writing the entry ``key``; the entry becomes complete on ``commit()``."""
        return InPlaceEntryWriter(self, key)


class InPlaceEntryWriter:
    """Fallback entry writer for storages without atomic renames: removes the old entry, writes in place."""

    def __init__(self, storage: Storage, key: str) -> None:
        self.storage = storage
        self.key = key
        storage.delete(key)

    def file_handle(self, filename: str, *, mode: str = "wb") -> IO[Any]:
        return self.storage.file_handle(self.key, filename, mode=mode)

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        self.storage.delete(self.key)


def read_file_tail(file: IO[Any], count: int) -> bytes:
    """Return the last ``count`` bytes of a binary file opened for reading (fewer if it is shorter)."""
    size = file.seek(0, 2)
    file.seek(max(0, size - count))
    return bytes(file.read())


def read_entry_file(storage: Any, key: str, filename: str) -> bytes:
    """Return the content of a file of an entry, also from a storage that only has labtech's four methods."""
    if isinstance(storage, Storage):
        return storage.read_bytes(key, filename)
    return Storage.read_bytes(storage, key, filename)  # the default, through its file_handle


def read_entry_file_tail(storage: Any, key: str, filename: str, count: int) -> bytes:
    """Return the last ``count`` bytes of a file of an entry (any storage, as `read_entry_file`)."""
    if isinstance(storage, Storage):
        return storage.read_tail(key, filename, count)
    return Storage.read_tail(storage, key, filename, count)


def begin_entry_write(storage: Any, key: str) -> EntryWriter:
    """Start writing an entry to any storage, including ones written for labtech's contract."""
    begin_write = getattr(storage, "begin_write", None)
    if begin_write is None:
        return InPlaceEntryWriter(storage, key)
    writer: EntryWriter = begin_write(key)
    return writer


def check_key(key: str, storage_dir: str) -> None:
    """Raise `StorageError` unless ``key`` names one directory directly under ``storage_dir``."""
    if type(key) is str and type(storage_dir) is str:
        _check_key_once(key, storage_dir)  # the same key is checked several times per task
    else:
        _check_key(key, storage_dir)


def _check_key(key: str, storage_dir: str) -> None:
    if not key:
        raise StorageError("Key cannot be empty")
    for char in FORBIDDEN_KEY_CHARACTERS:
        if char in key:
            raise StorageError(f"Key '{key}' must not contain the forbidden character '{char}'")
    _check_representable(key, "Key")
    if key != os.path.basename(key) or key in (os.curdir, os.pardir):
        raise StorageError(f"Key '{key}' should only reference a directory directly under the storage directory '{storage_dir}'")


def _check_representable(name: str, what: str) -> None:
    if not isinstance(name, str):
        raise StorageError(f"{what} {name!r} must be a string")
    if "\0" in name:
        raise StorageError(f"{what} {name!r} must not contain the forbidden character '\\0'")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise StorageError(f"{what} {name!r} cannot be written as a file name (it is not valid Unicode text)") from None


def check_filename(filename: str, key_dir: str) -> None:
    """Raise `StorageError` unless ``filename`` names a file directly inside ``key_dir``."""
    if type(filename) is str and filename in _VALID_FILENAMES:
        return
    _check_filename(filename, key_dir)
    if len(_VALID_FILENAMES) < 256:
        _VALID_FILENAMES.add(filename)


def _check_filename(filename: str, key_dir: str) -> None:
    _check_representable(filename, "Filename")
    separators = [char for char in ("/", "\\", os.sep, os.altsep) if char]
    if not filename or filename in (os.curdir, os.pardir) or any(char in filename for char in separators) or "\0" in filename:
        raise StorageError(
            f"Filename '{filename}' should only reference a directory directly under the storage key directory '{key_dir}'"
        )


# Checks that passed are remembered (failures are not: they raise each time).
_check_key_once = functools.lru_cache(maxsize=4096)(_check_key)
_VALID_FILENAMES: set[str] = set()
