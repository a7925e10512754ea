"""Listing cache entries without loading results: the data behind the cache browser.

``lab.cache_entries()`` returns a `CacheEntries` collection. Keys are listed at once (one directory
scan); each entry's metadata is read only when that entry is first looked at, so the first page of a
storage with tens of thousands of entries appears immediately. Results are never loaded for a listing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from labtech_nb.cache import METADATA_FILENAME, result_meta_from_metadata
from labtech_nb.exceptions import LabtechError
from labtech_nb.json_text import dumps, loads
from labtech_nb.serialization import Serializer
from labtech_nb.storage.base import Storage, read_entry_file
from labtech_nb.storage.local import deleting_together

COLUMNS = ("key", "task_type", "parameters", "code_version", "stale", "start", "duration", "size", "importable", "mlflow_run_id")


@dataclass
class CacheEntry:
    """One cache entry, described from its metadata.

    Attributes:
        key: the entry's cache key.
        task_type: the task type's qualified name.
        module: the module the task type lives in ('' when the metadata is unreadable).
        parameters: the task's serialized parameters (nested tasks as dicts).
        code_version: the code_version stored with the entry.
        current_code_version: the type's code_version now (None when the class does not import).
        stale: the stored code_version differs from the current one.
        start: when the result was computed (naive local time), if known.
        duration: how long it took in seconds, if known.
        size: bytes on disk, when the storage can tell.
        importable: whether the task's class still imports.
        mlflow_run_id: the mlflow run recorded for the entry, if any.
        cache_class: the cache class that wrote the entry.
        error: why the entry could not be described, if it could not.
    """

    key: str
    task_type: str
    module: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    code_version: str | None = None
    current_code_version: str | None = None
    stale: bool = False
    start: datetime | None = None
    duration: float | None = None
    size: int | None = None
    importable: bool = False
    mlflow_run_id: str | None = None
    cache_class: str | None = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def orphaned(self) -> bool:
        """The entry's class no longer imports (or its metadata is unreadable)."""
        return not self.importable

    def parameters_text(self) -> str:
        """The parameters as compact JSON, for display and text search."""
        return dumps(self.parameters, ensure_ascii=False, default=str)

    def sort_value(self, column: str) -> Any:
        """A value for sorting by ``column`` that never compares None with other types."""
        value = self.parameters_text() if column == "parameters" else getattr(self, column)
        if isinstance(value, datetime):
            return (0, value.timestamp())
        if value is None:
            return (1, "")
        if isinstance(value, (bool, int, float)):
            return (0, float(value))
        return (0, str(value))


def type_name_from_key(key: str) -> str:
    """The task type's qualified name from a key like ``pickle__Outer-Inner__<sha1>``."""
    head, _, _ = key.rpartition("__")
    _, _, qualname = head.partition("__")
    return (qualname or head).replace("-", ".")


class CacheEntries(Sequence[CacheEntry]):
    """The entries of a storage, in key order, described lazily and cached once described.

    Args:
        storage: the storage to list.
        task_types: only entries whose key names one of these types (None: all).
    """

    def __init__(self, storage: Storage, task_types: Iterable[type] | None = None) -> None:
        self.storage = storage
        self.serializer = Serializer()
        keys = list(storage.find_keys())
        if task_types is not None:
            wanted = {task_type.__qualname__ for task_type in task_types}
            keys = [key for key in keys if type_name_from_key(key) in wanted]
        self.keys = keys
        self._described: dict[str, CacheEntry] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self.describe(key) for key in self.keys[index]]
        return self.describe(self.keys[index])

    def __iter__(self) -> Iterator[CacheEntry]:
        for key in self.keys:
            yield self.describe(key)

    def type_names(self) -> list[str]:
        """The task types present, from the keys alone."""
        return sorted({type_name_from_key(key) for key in self.keys})

    def describe(self, key: str) -> CacheEntry:
        """The entry for ``key`` (its metadata is read the first time)."""
        entry = self._described.get(key)
        if entry is None:
            entry = self._described[key] = self._read(key)
        return entry

    def _read(self, key: str) -> CacheEntry:
        entry = CacheEntry(key=key, task_type=type_name_from_key(key), size=_entry_size(self.storage, key))
        try:
            metadata = loads(read_entry_file(self.storage, key, METADATA_FILENAME).decode("utf-8"))
            serialized = metadata["task"]
            class_path = serialized["__class__"]
            if not isinstance(class_path, str):
                raise TypeError(f"'__class__' is {class_path!r}, not a class path")
        except (OSError, ValueError, KeyError, TypeError, LabtechError) as error:
            entry.error = f"unreadable metadata: {type(error).__name__}: {error}"
            return entry
        entry.metadata = metadata
        entry.module, _, qualname = class_path.rpartition(".")
        entry.task_type = qualname.replace(">", ".")
        entry.cache_class = metadata.get("cache")
        entry.parameters = {
            name: value for name, value in serialized.items() if name not in ("_is_task", "__class__", "_code_version")
        }
        entry.code_version = serialized.get("_code_version")
        meta = result_meta_from_metadata(metadata)
        entry.start = meta.start
        entry.duration = meta.duration.total_seconds() if meta.duration is not None else None
        entry.mlflow_run_id = metadata.get("mlflow_run_id")
        try:
            task_type = self.serializer.deserialize_class(class_path)
        except Exception as error:
            # Importing runs user code: a half-edited module can raise anything.
            entry.error = (
                str(error)
                if isinstance(error, LabtechError)
                else f"Cannot import class '{class_path}': {type(error).__name__}: {error}"
            )
            return entry
        options = getattr(task_type, "_lt_options", None)
        entry.importable = options is not None
        if options is not None:
            entry.current_code_version = options.code_version
            entry.stale = entry.code_version != options.code_version
        return entry

    def filter(self, *, task_type: str | None = None, text: str = "") -> list[CacheEntry]:
        """Entries of one type (None: all) whose key, type or parameters contain ``text`` (case-insensitive)."""
        keys = self.keys if task_type is None else [key for key in self.keys if type_name_from_key(key) == task_type]
        needle = text.strip().lower()
        entries = [self.describe(key) for key in keys]
        if not needle:
            return entries
        return [
            entry
            for entry in entries
            if needle in entry.key.lower() or needle in entry.task_type.lower() or needle in entry.parameters_text().lower()
        ]

    def rebuild_task(self, key: str) -> Any:
        """The task stored under ``key`` (with its stored code_version and result_meta).

        Raises:
            LabtechError: the entry's class no longer imports or the metadata is unreadable.
        """
        entry = self.describe(key)
        if entry.error is not None or not entry.metadata:
            raise LabtechError(f"Cannot rebuild the task of entry '{key}': {entry.error}")
        return self.serializer.deserialize_task(entry.metadata["task"], result_meta=result_meta_from_metadata(entry.metadata))


def _entry_size(storage: Storage, key: str) -> int | None:
    root = getattr(storage, "_root", None)
    if root is None:
        return None
    total = 0
    try:
        with os.scandir(os.path.join(root, key)) as files:
            for file in files:
                if file.is_file():
                    total += file.stat().st_size
    except OSError:
        return None
    return total


def delete_entries(storage: Storage, keys: Iterable[str]) -> dict[str, str | None]:
    """Delete exactly the given entries; return ``{key: None on success, else the error text}``."""
    outcome: dict[str, str | None] = {}
    with deleting_together():
        for key in keys:
            try:
                storage.delete(key)
            except Exception as error:
                outcome[key] = f"{type(error).__name__}: {error}"
            else:
                outcome[key] = None
    return outcome


__all__ = ["COLUMNS", "CacheEntries", "CacheEntry", "delete_entries", "type_name_from_key"]
