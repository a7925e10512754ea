"""`LocalStorage`: cache entries as directories in a local (or mounted) directory."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import secrets
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from labtech_nb.exceptions import StorageError
from labtech_nb.storage.base import EntryWriter, InPlaceEntryWriter, Storage, check_filename, check_key, read_file_tail

_STAGING_PREFIX = ".staging-"
_TRASH_PREFIX = ".trash-"
#: Writes in progress carry this host's tag, so a clean-up never touches another machine's writes.
_HOST_TAG = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
#: Staging directories of other hosts are removed only once this old.
_FOREIGN_STAGING_SECONDS = 24 * 3600
#: `LocalStorage.read_bytes` reads this much first (kept below the size at which memory is mapped),
#: then the rest of a larger file in bigger reads.
_FIRST_READ = 16 * 1024
_NEXT_READS = 1024 * 1024


class LocalStorage(Storage):
    """Keeps each cache entry in a subdirectory ``<storage_dir>/<key>/``.

    New entries are written to a hidden staging directory and renamed into place, so an entry is
    either complete or absent: a crash, a kill or a failed write never leaves a partial entry.

    Args:
        storage_dir: the directory; created with its parents when missing.
        runner_dir: the same directory as seen by runner workers, when they see it at another path
            (e.g. a shared mount on cluster nodes).
        with_gitignore: write a ``.gitignore`` holding ``*`` when the directory has none.
    """

    def __init__(self, storage_dir: str | Path, *, runner_dir: str | Path | None = None, with_gitignore: bool = True) -> None:
        self._storage_path = Path(storage_dir).resolve()
        self._root = str(self._storage_path)
        self._runner_dir = runner_dir
        self._with_gitignore = with_gitignore
        try:
            self._storage_path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(f"Cannot create storage directory '{storage_dir}': {error}") from error
        if not self._storage_path.is_dir():
            raise StorageError(f"Storage path '{storage_dir}' exists but is not a directory.")
        if with_gitignore:
            gitignore = self._storage_path / ".gitignore"
            if not gitignore.exists():
                gitignore.write_text("*\n")

    @property
    def storage_path(self) -> Path:
        """The absolute path of the storage directory."""
        return self._storage_path

    def __repr__(self) -> str:
        return f"LocalStorage({str(self._storage_path)!r})"

    def _key_path(self, key: str) -> str:
        check_key(key, self._root)
        return os.path.join(self._root, key)

    def find_keys(self) -> Sequence[str]:
        with os.scandir(self._root) as entries:
            return sorted(entry.name for entry in entries if "." not in entry.name and entry.is_dir())

    def exists(self, key: str) -> bool:
        return os.path.isdir(self._key_path(key))

    def file_handle(self, key: str, filename: str, *, mode: str = "r") -> IO[Any]:
        path = self._file_path(key, filename)
        if any(flag in mode for flag in "wax+"):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        return open(path, mode)

    def read_bytes(self, key: str, filename: str) -> bytes:
        if type(self).file_handle is not LocalStorage.file_handle:
            return super().read_bytes(key, filename)
        # Plain descriptor reads: metadata files are small, and one read of up to 16 KiB takes them
        # whole, where a file object costs several times more.
        descriptor = os.open(self._file_path(key, filename), os.O_RDONLY)
        try:
            data = os.read(descriptor, _FIRST_READ)
            if len(data) < _FIRST_READ:
                return data
            chunks = [data]
            while chunk := os.read(descriptor, _NEXT_READS):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(descriptor)

    def read_tail(self, key: str, filename: str, count: int) -> bytes:
        if type(self).file_handle is not LocalStorage.file_handle:
            return super().read_tail(key, filename, count)
        with io.FileIO(self._file_path(key, filename), "r") as file:
            return read_file_tail(file, count)

    def _file_path(self, key: str, filename: str) -> str:
        key_path = self._key_path(key)
        check_filename(filename, key_path)
        return os.path.join(key_path, filename)

    def delete(self, key: str) -> None:
        key_path = self._key_path(key)
        trash = os.path.join(self._root, f"{_TRASH_PREFIX}{key}-{secrets.token_hex(6)}")
        try:
            # Renaming first means a half-deleted entry is never visible under its key.
            os.rename(key_path, trash)
        except FileNotFoundError:
            return
        deferred = getattr(_removals, "deferred", None)
        if deferred is not None:
            deferred.append(trash)
        else:
            _remove_tree(trash)

    def begin_write(self, key: str) -> EntryWriter:
        if type(self).file_handle is not LocalStorage.file_handle:
            # A subclass that changes how files are written (compression, accounting) must see every write.
            return InPlaceEntryWriter(self, key)
        return StagedEntryWriter(self, self._key_path(key))

    def get_runner_storage(self) -> Storage:
        if self._runner_dir is None:
            return self
        # Built without touching the filesystem: the directory exists where the workers run.
        runner_storage = LocalStorage.__new__(LocalStorage)
        runner_storage.__dict__.update(self.__dict__)
        runner_storage._storage_path = Path(self._runner_dir)
        runner_storage._root = str(self._runner_dir)
        runner_storage._runner_dir = None
        return runner_storage

    def remove_abandoned_writes(self) -> int:
        """Delete staging and trash directories left by processes that no longer exist.

        Returns:
            How many directories were removed.
        """
        removed = 0
        with os.scandir(self._root) as entries:
            names = [entry.name for entry in entries if entry.name.startswith((_STAGING_PREFIX, _TRASH_PREFIX))]
        for name in names:
            path = os.path.join(self._root, name)
            if name.startswith(_STAGING_PREFIX):
                host, pid = _staging_owner(name)
                if host == _HOST_TAG and _pid_is_alive(pid):
                    continue
                if host != _HOST_TAG and _age_seconds(path) < _FOREIGN_STAGING_SECONDS:
                    continue
            _remove_tree(path)
            removed += 1
        return removed


#: `deleting_together`'s trash directories, per thread.
_removals = threading.local()
#: Fewer entries than this are removed on the calling thread alone.
_SPLIT_REMOVALS_FROM = 64


@contextmanager
def deleting_together() -> Iterator[None]:
    """Within this block, `LocalStorage.delete` on this thread hides each entry at once (it is renamed
    aside, as always) and leaves removing its files to the end of the block, where the calling thread
    and one helper thread remove them side by side: file removals run outside the GIL, so many
    entries go about a third faster. The block ends once every file is removed.
    """
    outer = getattr(_removals, "deferred", None)
    if outer is not None:
        yield  # the outer block removes everything
        return
    deferred: list[str] = []
    _removals.deferred = deferred
    try:
        yield
    finally:
        _removals.deferred = None
        _remove_trees(deferred)


def _remove_trees(paths: list[str], *, split: bool = True) -> None:
    if not split or len(paths) < _SPLIT_REMOVALS_FROM:
        for path in paths:
            _remove_tree(path)
        return
    half = len(paths) // 2
    helper = threading.Thread(target=_remove_trees, args=(paths[:half],), kwargs={"split": False}, name="labtech_nb-delete")
    helper.start()
    try:
        _remove_trees(paths[half:], split=False)
    finally:
        helper.join()


def _remove_tree(path: str) -> None:
    """Delete a directory and everything in it, ignoring errors.

    An entry's directory usually holds only files, which are unlinked directly: about a fifth cheaper
    than `shutil.rmtree`, which is left to handle anything else.
    """
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    raise IsADirectoryError(entry.path)
                os.unlink(entry.path)
        os.rmdir(path)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


def _staging_owner(name: str) -> tuple[str, int]:
    """The host tag and process id in a staging directory's name (``.staging-<key>-<host>-<pid>-<hex>``)."""
    parts = name.rsplit("-", 3)
    try:
        return parts[-3], int(parts[-2])
    except (IndexError, ValueError):
        return "", -1


def _age_seconds(path: str) -> float:
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return 0.0


def _pid_is_alive(pid: int) -> bool:
    """Whether a process still runs (a zombie, dead but not yet reaped, does not count)."""
    if pid <= 0:
        return False
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _load_renameat2() -> Any:
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return function


_renameat2 = _load_renameat2() if sys.platform.startswith("linux") else None


def _exchange(first: str, second: str) -> bool:
    """Swap two paths in one atomic step (Linux); False where the system cannot."""
    if _renameat2 is None:
        return False
    return bool(_renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0)


class StagedEntryWriter:
    """Writes an entry into a hidden staging directory and renames it into place on commit."""

    def __init__(self, storage: LocalStorage, final_path: str) -> None:
        self.final_path = final_path
        self.key = os.path.basename(final_path)
        self.root = storage._root
        self.staging_path = os.path.join(
            self.root, f"{_STAGING_PREFIX}{self.key}-{_HOST_TAG}-{os.getpid()}-{secrets.token_hex(6)}"
        )
        os.mkdir(self.staging_path)

    def file_handle(self, filename: str, *, mode: str = "wb") -> IO[Any]:
        check_filename(filename, self.final_path)
        return open(os.path.join(self.staging_path, filename), mode)

    def commit(self) -> None:
        for _ in range(10):
            try:
                os.rename(self.staging_path, self.final_path)
                return
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR):
                    self.abort()
                    raise
            # An older entry (or a concurrent writer's equal one) holds the key.
            if _exchange(self.staging_path, self.final_path):
                # The new entry took the old one's place in one step; the old one is now at the staging path.
                _remove_tree(self.staging_path)
                return
            # Where the system cannot swap them: move the old entry aside first.
            trash = os.path.join(self.root, f"{_TRASH_PREFIX}{self.key}-{secrets.token_hex(6)}")
            try:
                os.rename(self.final_path, trash)
            except FileNotFoundError:
                continue
            _remove_tree(trash)
        self.abort()
        raise StorageError(f"Could not commit cache entry '{self.key}': the key kept being replaced concurrently.")

    def abort(self) -> None:
        _remove_tree(self.staging_path)
