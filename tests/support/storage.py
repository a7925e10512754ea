"""Storages holding cache entries of task types whose modules a test can rewrite or delete."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

from labtech_nb.storage import LocalStorage


class TaskModules:
    """Writes, rewrites and removes importable modules of task types inside a directory on ``sys.path``.

    Rewriting a module changes its task types' code (their entries become stale); removing it orphans
    their entries. The ``task_modules`` fixture provides one inside ``tmp_path``.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.names: list[str] = []

    def write(self, name: str, source: str) -> ModuleType:
        """Write (or rewrite) module ``name`` from ``source`` and import it afresh."""
        (self.directory / f"{name}.py").write_text(textwrap.dedent(source))
        sys.modules.pop(name, None)
        importlib.invalidate_caches()
        if name not in self.names:
            self.names.append(name)
        return importlib.import_module(name)

    def remove(self, name: str) -> None:
        """Delete module ``name``: it can no longer be imported."""
        (self.directory / f"{name}.py").unlink()
        sys.modules.pop(name, None)
        importlib.invalidate_caches()

    def forget(self) -> None:
        """Drop every module written from ``sys.modules``."""
        for name in self.names:
            sys.modules.pop(name, None)
        importlib.invalidate_caches()


class FailingDeleteStorage(LocalStorage):
    """A local storage that cannot delete one entry (as if it were read-only)."""

    def __init__(self, *args: Any, failing: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failing = failing

    def delete(self, key: str) -> None:
        if key == self.failing:
            raise PermissionError(f"cannot remove {key}: read-only")
        super().delete(key)


def listing(storage_dir: Path) -> set[str]:
    """The keys of the entries in a local storage directory."""
    return {path.name for path in storage_dir.iterdir() if path.is_dir()}


def entry_files_size(directory: Path) -> int:
    """The bytes of an entry's files."""
    return sum(path.stat().st_size for path in directory.iterdir() if path.is_file())
