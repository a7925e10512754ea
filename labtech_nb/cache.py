"""Caches turn a task's result into files of a storage entry, and back.

`PickleCache` (the default) pickles results; `NullCache` caches nothing; subclass `BaseCache` for
your own format (set ``KEY_PREFIX`` and implement ``save_result`` and ``load_result``). Whatever the
cache, an entry becomes visible only once it is complete: files written during a save are staged
and committed together, metadata last.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from typing import IO, Any

from labtech_nb.exceptions import CacheEntryUnreadable, CacheError, TaskNotFound
from labtech_nb.json_text import dumps, dumps_indented, loads
from labtech_nb.nesting import placeholder
from labtech_nb.serialization import Serializer
from labtech_nb.storage.base import EntryWriter, Storage, begin_entry_write, read_entry_file, read_entry_file_tail
from labtech_nb.types import ResultMeta, TaskResult

METADATA_FILENAME = "metadata.json"
#: How ``labtech_version`` in the metadata of an entry labtech_nb wrote begins.
WRITER_PREFIX = "labtech_nb "


class Cache(ABC):
    """The contract every cache implements."""

    @abstractmethod
    def cache_key(self, task: Any) -> str:
        """Return the key under which the task's result is stored."""

    @abstractmethod
    def is_cached(self, storage: Storage, task: Any) -> bool:
        """Return whether the storage holds an entry for the task."""

    @abstractmethod
    def save(self, storage: Storage, task: Any, task_result: TaskResult[Any]) -> None:
        """Store a task's result and metadata as one complete entry."""

    @abstractmethod
    def load_task(self, storage: Storage, task_type: type, key: str) -> Any:
        """Rebuild the task stored under ``key``; raise `TaskNotFound` if it is not of ``task_type``."""

    @abstractmethod
    def load_result_with_meta(self, storage: Storage, task: Any) -> TaskResult[Any]:
        """Load a task's cached result and its `ResultMeta`."""

    @abstractmethod
    def delete(self, storage: Storage, task: Any) -> None:
        """Delete a task's entry, if any."""


class BaseCache(Cache):
    """A cache that stores labtech-format metadata beside result files of its own format.

    Subclasses set ``KEY_PREFIX`` (e.g. ``'parquet__'``) and implement `save_result` and
    `load_result`, reading and writing through ``storage.file_handle(task.cache_key, filename, mode=...)``.

    Args:
        serializer: converts tasks to and from their stored JSON form (default: `Serializer()`).
    """

    KEY_PREFIX = ""
    METADATA_FILENAME = METADATA_FILENAME

    def __init__(self, *, serializer: Serializer | None = None) -> None:
        self.serializer = serializer if serializer is not None else Serializer()

    @abstractmethod
    def save_result(self, storage: Storage, task: Any, result: Any) -> None:
        """Write ``result`` into the task's entry."""

    @abstractmethod
    def load_result(self, storage: Storage, task: Any) -> Any:
        """Read the task's result from its entry."""

    def entry_is_complete(self, storage: Storage, task: Any) -> bool:
        """Return whether the entry's result files look complete (cheaply, without loading them).

        The default trusts the metadata; caches whose format allows a cheap check override this.
        `Lab.is_cached` asks it of every entry; listing (`load_task`) only of entries labtech wrote.
        """
        return True

    def _result_is_whole(self, storage: Storage, task: Any, metadata: dict[str, Any]) -> bool:
        """Whether a listed entry holds its whole result.

        labtech writes an entry's metadata before its result, so a labtech run that did not finish
        leaves metadata beside a partial result. labtech_nb writes the metadata last, into a staged
        entry where the storage allows, so an entry it wrote is whole whenever its metadata is read:
        listing skips the check for those. (Damage done later, e.g. by an interrupted copy, shows
        when the result is loaded: the run warns and computes it again.)
        """
        written_by = metadata.get("labtech_version")
        return (isinstance(written_by, str) and written_by.startswith(WRITER_PREFIX)) or self.entry_is_complete(storage, task)

    def key_prefix_for(self, task_type: type) -> str:
        """Return the prefix shared by the keys of every entry of ``task_type``, separator included."""
        return f"{self.KEY_PREFIX}{task_type.__qualname__.replace('.', '-')}__"

    def cache_key(self, task: Any) -> str:
        dumps_task = getattr(self.serializer, "dumps_task", None)
        payload = dumps_task(task) if dumps_task is not None else dumps(self.serializer.serialize_task(task))
        digest = hashlib.sha1(payload.encode("utf-8")).hexdigest()
        return f"{self.key_prefix_for(type(task))}{digest}"

    def is_cached(self, storage: Storage, task: Any) -> bool:
        return storage.exists(task.cache_key)

    def build_metadata(self, task: Any, meta: ResultMeta, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Return the ``metadata.json`` content for a task's entry, in labtech's key order."""
        return self._metadata_with(task, self.serializer.serialize_task(task), meta, extra)

    def _metadata_with(self, task: Any, serialized: Any, meta: ResultMeta, extra: dict[str, Any] | None) -> dict[str, Any]:
        from labtech_nb import __version__

        metadata: dict[str, Any] = {
            "labtech_version": f"{WRITER_PREFIX}{__version__}",
            "cache": type(self).__qualname__,
            "cache_key": task.cache_key,
            "task": serialized,
            "start_timestamp": meta.start.isoformat() if meta.start is not None else None,
            "duration_seconds": meta.duration.total_seconds() if meta.duration is not None else None,
        }
        if extra:
            metadata.update(extra)
        return metadata

    def metadata_text(self, task: Any, meta: ResultMeta, extra: dict[str, Any] | None = None) -> str:
        """Return the text of a task's ``metadata.json``: `build_metadata`'s content, formatted by `dumps_indented`.

        The task is written from the texts its dependencies already have (see
        `Serializer.dumps_task_indented`), so writing the entries of a long chain of tasks does not
        serialize the chain below each of them again.
        """
        dumps_task_indented = getattr(self.serializer, "dumps_task_indented", None)
        if type(self).build_metadata is not BaseCache.build_metadata or dumps_task_indented is None:
            return dumps_indented(self.build_metadata(task, meta, extra))
        stand_in = placeholder(0)
        text = dumps_indented(self._metadata_with(task, stand_in, meta, extra))
        before, _, after = text.partition(json.dumps(stand_in))
        return before + dumps_task_indented(task, 1) + after

    def save(self, storage: Storage, task: Any, task_result: TaskResult[Any]) -> None:
        key = task.cache_key
        writer = begin_entry_write(storage, key)
        try:
            self.save_result(_EntryStorage(storage, key, writer), task, task_result.value)
            metadata = self.metadata_text(task, task_result.meta, getattr(task_result, "extra_metadata", None))
            with writer.file_handle(self.METADATA_FILENAME, mode="w") as metadata_file:
                metadata_file.write(metadata)
        except BaseException:
            writer.abort()
            raise
        writer.commit()

    def load_metadata(self, storage: Storage, key: str) -> dict[str, Any]:
        """Read an entry's metadata.

        Raises:
            CacheEntryUnreadable: the metadata file is missing, unreadable or not a JSON object.
        """
        try:
            metadata = loads(read_entry_file(storage, key, self.METADATA_FILENAME).decode("utf-8"))
        except (OSError, ValueError) as error:
            raise CacheEntryUnreadable(f"Cache entry '{key}' has no readable {self.METADATA_FILENAME}: {error}") from error
        if not isinstance(metadata, dict) or not isinstance(metadata.get("task"), dict):
            raise CacheEntryUnreadable(f"Cache entry '{key}' has malformed {self.METADATA_FILENAME}.")
        return metadata

    def _check_cache_class(self, key: str, metadata: dict[str, Any]) -> None:
        if metadata.get("cache") != type(self).__qualname__:
            raise CacheEntryUnreadable(
                f"Cache entry '{key}' was written by cache '{metadata.get('cache')}', not '{type(self).__qualname__}'."
            )

    def load_task(self, storage: Storage, task_type: type, key: str) -> Any:
        if not key.startswith(self.key_prefix_for(task_type)):
            raise TaskNotFound(f"Cache entry '{key}' does not hold a task of type '{task_type.__qualname__}'.")
        metadata = self.load_metadata(storage, key)
        try:
            self._check_cache_class(key, metadata)
        except CacheEntryUnreadable as error:
            raise TaskNotFound(str(error)) from None
        task: Any = self.serializer.deserialize_task(metadata["task"], result_meta=result_meta_from_metadata(metadata))
        if type(task) is not task_type and not issubclass(type(task), task_type):
            raise TaskNotFound(f"Cache entry '{key}' holds a '{type(task).__qualname__}', not a '{task_type.__qualname__}'.")
        if not self._result_is_whole(storage, task, metadata):
            raise CacheEntryUnreadable(f"Cache entry '{key}' is incomplete: its result is missing or truncated.")
        return task

    def load_result_with_meta(self, storage: Storage, task: Any) -> TaskResult[Any]:
        key = task.cache_key
        metadata = self.load_metadata(storage, key)
        self._check_cache_class(key, metadata)
        try:
            value = self.load_result(storage, task)
        except Exception as error:
            raise CacheEntryUnreadable(
                f"Cache entry '{key}' has an unreadable result: {type(error).__name__}: {error}"
            ) from error
        return TaskResult(value=value, meta=result_meta_from_metadata(metadata))

    def delete(self, storage: Storage, task: Any) -> None:
        storage.delete(task.cache_key)


def result_meta_from_metadata(metadata: dict[str, Any]) -> ResultMeta:
    """Build a `ResultMeta` from an entry's metadata (unknown fields become None)."""
    start = metadata.get("start_timestamp")
    duration = metadata.get("duration_seconds")
    try:
        start_time = datetime.fromisoformat(start) if isinstance(start, str) else None
    except ValueError:
        start_time = None
    return ResultMeta(
        start=start_time,
        duration=timedelta(seconds=duration)
        if isinstance(duration, (int, float)) and math.isfinite(duration) and abs(duration) < 1e9
        else None,
    )


class _EntryStorage(Storage):
    """The storage as seen by ``save_result``: files of the entry being written go to its writer."""

    def __init__(self, storage: Storage, key: str, writer: EntryWriter) -> None:
        self._storage = storage
        self._key = key
        self._writer = writer

    def find_keys(self) -> Any:
        return self._storage.find_keys()

    def exists(self, key: str) -> bool:
        return key == self._key or self._storage.exists(key)

    def file_handle(self, key: str, filename: str, *, mode: str = "r") -> IO[Any]:
        if key == self._key:
            return self._writer.file_handle(filename, mode=mode)
        return self._storage.file_handle(key, filename, mode=mode)

    def delete(self, key: str) -> None:
        self._storage.delete(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


class PickleCache(BaseCache):
    """Caches results with pickle (``data.pickle``); only load entries you trust.

    Args:
        serializer: converts tasks to and from their stored JSON form.
        pickle_protocol: the pickle protocol to write with.
    """

    KEY_PREFIX = "pickle__"
    RESULT_FILENAME = "data.pickle"

    def __init__(self, *, serializer: Serializer | None = None, pickle_protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        super().__init__(serializer=serializer)
        self.pickle_protocol = pickle_protocol

    def save_result(self, storage: Storage, task: Any, result: Any) -> None:
        with storage.file_handle(task.cache_key, self.RESULT_FILENAME, mode="wb") as result_file:
            pickle.dump(result, result_file, protocol=self.pickle_protocol)

    def entry_is_complete(self, storage: Storage, task: Any) -> bool:
        """A complete pickle ends with the STOP opcode; a missing, empty or truncated file does not."""
        try:
            return read_entry_file_tail(storage, task.cache_key, self.RESULT_FILENAME, 1) == pickle.STOP
        except (OSError, ValueError):
            return False

    def load_result(self, storage: Storage, task: Any) -> Any:
        with storage.file_handle(task.cache_key, self.RESULT_FILENAME, mode="rb") as result_file:
            return _CompatibleUnpickler(result_file).load()


class _LabtechStandIn:
    """Takes the place of labtech's internal objects found inside results pickled by labtech."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _CompatibleUnpickler(pickle.Unpickler):
    """Loads results pickled by labtech 1.x without labtech installed.

    A task pickled by labtech carries labtech's per-type bookkeeping objects; those names resolve
    to labtech_nb's equivalents (or to an inert stand-in), and the task itself is restored by its
    ``__setstate__``.
    """

    def find_class(self, module: str, name: str) -> Any:
        if module == "labtech" or module.startswith("labtech."):
            import importlib

            try:
                equivalent = getattr(importlib.import_module("labtech_nb" + module[len("labtech") :]), name)
            except (ImportError, AttributeError):
                return _LabtechStandIn
            return equivalent if name != "TaskInfo" else _LabtechStandIn
        return super().find_class(module, name)


class NullCache(Cache):
    """Caches nothing: tasks of a type declared with ``cache=None`` run whenever they are needed."""

    def cache_key(self, task: Any) -> str:
        return "null"

    def is_cached(self, storage: Storage, task: Any) -> bool:
        return False

    def save(self, storage: Storage, task: Any, task_result: TaskResult[Any]) -> None:
        pass

    def load_task(self, storage: Storage, task_type: type, key: str) -> Any:
        raise TaskNotFound(f"A NullCache holds no tasks (key '{key}').")

    def load_result_with_meta(self, storage: Storage, task: Any) -> TaskResult[Any]:
        raise CacheError("Loading a result from a NullCache is not supported.")

    def delete(self, storage: Storage, task: Any) -> None:
        pass


__all__ = ["BaseCache", "Cache", "METADATA_FILENAME", "NullCache", "PickleCache"]
