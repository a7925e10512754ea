"""`NullStorage`: a storage that keeps nothing, so every task runs and nothing is serialized."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import IO, Any

from labtech_nb.storage.base import Storage


class NullStorage(Storage):
    """Stores nothing: ``Lab(storage=None)`` uses it, and no result is pickled for caching."""

    def find_keys(self) -> Sequence[str]:
        return []

    def exists(self, key: str) -> bool:
        return False

    def file_handle(self, key: str, filename: str, *, mode: str = "r") -> IO[Any]:
        return open(os.devnull, mode)

    def delete(self, key: str) -> None:
        pass

    def __repr__(self) -> str:
        return "NullStorage()"
