"""Storages hold cache entries: `LocalStorage` (a directory), `NullStorage` (nothing) and
`FsspecStorage` (any fsspec filesystem). Write your own by subclassing `Storage`."""

from labtech_nb.storage.base import EntryWriter, Storage
from labtech_nb.storage.fsspec import FsspecStorage
from labtech_nb.storage.local import LocalStorage
from labtech_nb.storage.null import NullStorage

__all__ = ["EntryWriter", "FsspecStorage", "LocalStorage", "NullStorage", "Storage"]
