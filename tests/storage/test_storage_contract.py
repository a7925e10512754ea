"""The storage contract, run against every storage backend, plus backend-specific behaviour.

A new backend is covered by adding one entry to `STORAGE_BACKENDS`: a function that builds a
`StorageCase` (the storage, and raw access to the directory it keeps entries in).
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import posixpath
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import pytest

import labtech_nb as labtech
from labtech_nb.exceptions import StorageError
from labtech_nb.storage import FsspecStorage, LocalStorage, NullStorage, Storage
from labtech_nb.storage.base import read_entry_file, read_entry_file_tail

# --- backends ---------------------------------------------------------------------------------------


class MemoryFsspecStorage(FsspecStorage):
    """An FsspecStorage on fsspec's in-memory filesystem; counts filesystem constructions."""

    constructions = 0

    def fs_constructor(self) -> Any:
        self.constructions += 1
        return fsspec.filesystem("memory")


class LocalFsspecStorage(FsspecStorage):
    """An FsspecStorage on fsspec's local ``file`` filesystem."""

    def fs_constructor(self) -> Any:
        return fsspec.filesystem("file")


class UnpicklableFilesystem:
    """Wraps a filesystem and, like a real client holding sockets and locks, cannot be pickled."""

    def __init__(self, fs: Any) -> None:
        self._fs = fs
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)


class UnpicklableFsStorage(FsspecStorage):
    def fs_constructor(self) -> Any:
        return UnpicklableFilesystem(fsspec.filesystem("memory"))


@dataclass
class StorageCase:
    """A storage under test, with raw access to its directory that bypasses the storage."""

    storage: Storage
    raw_names: Callable[[], set[str]]
    make_raw_dir: Callable[[str], None]
    make_raw_file: Callable[[str], None]
    cleanups: list[Callable[[], None]] = field(default_factory=list)


def _local_case(tmp_path: Path) -> StorageCase:
    root = tmp_path / "local-storage"
    storage = LocalStorage(root)

    def make_raw_dir(name: str) -> None:
        (root / name).mkdir()
        (root / name / "data.pickle").write_bytes(b"partial")

    return StorageCase(
        storage=storage,
        raw_names=lambda: {path.name for path in root.iterdir()},
        make_raw_dir=make_raw_dir,
        make_raw_file=lambda name: (root / name).write_text("not an entry"),
    )


def _fsspec_case(storage: FsspecStorage, root: str) -> StorageCase:
    fs = storage.fs

    def make_raw_dir(name: str) -> None:
        fs.mkdirs(posixpath.join(root, name), exist_ok=True)
        fs.pipe_file(posixpath.join(root, name, "data.pickle"), b"partial")

    return StorageCase(
        storage=storage,
        raw_names=lambda: {posixpath.basename(str(path).rstrip("/")) for path in fs.ls(root, detail=False)},
        make_raw_dir=make_raw_dir,
        make_raw_file=lambda name: fs.pipe_file(posixpath.join(root, name), b"not an entry"),
    )


def _memory_root() -> str:
    return f"/labtech-nb-tests/{uuid.uuid4().hex}"


def _remove_memory_root(root: str) -> None:
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _fsspec_memory_case(tmp_path: Path) -> StorageCase:
    root = _memory_root()
    case = _fsspec_case(MemoryFsspecStorage(root), root)
    case.cleanups.append(lambda: _remove_memory_root(root))
    return case


def _fsspec_file_case(tmp_path: Path) -> StorageCase:
    root = (tmp_path / "fsspec-file-storage").as_posix()
    return _fsspec_case(LocalFsspecStorage(root), root)


STORAGE_BACKENDS: dict[str, Callable[[Path], StorageCase]] = {
    "local": _local_case,
    "fsspec-memory": _fsspec_memory_case,
    "fsspec-file": _fsspec_file_case,
}


@pytest.fixture(params=list(STORAGE_BACKENDS))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageCase]:
    built = STORAGE_BACKENDS[request.param](tmp_path)
    yield built
    for cleanup in built.cleanups:
        cleanup()


@pytest.fixture
def memory_root() -> Iterator[str]:
    root = _memory_root()
    yield root
    _remove_memory_root(root)


# --- helpers ----------------------------------------------------------------------------------------


def write_file(storage: Storage, key: str, filename: str, content: bytes) -> None:
    with storage.file_handle(key, filename, mode="wb") as handle:
        handle.write(content)


def read_file(storage: Storage, key: str, filename: str) -> bytes:
    with storage.file_handle(key, filename, mode="rb") as handle:
        data: bytes = handle.read()
    return data


def write_with(writer: Any, files: dict[str, bytes]) -> None:
    for filename, content in files.items():
        with writer.file_handle(filename, mode="wb") as handle:
            handle.write(content)


@labtech.task
class Square:
    x: int

    def run(self) -> int:
        self.context["runs"].append(self.x)
        return self.x**2


def make_lab(storage: Storage) -> labtech.Lab:
    return labtech.Lab(storage=storage, runner_backend="serial", context={"runs": []})


def run(lab: labtech.Lab, tasks: list[Any]) -> dict[Any, Any]:
    return lab.run_tasks(tasks, disable_progress=True, disable_top=True)


# --- the contract -------------------------------------------------------------------------------------


def test_new_storage_has_no_entries(case: StorageCase) -> None:
    assert list(case.storage.find_keys()) == []
    assert case.storage.exists("somekey") is False


def test_file_round_trip_in_binary_and_text_modes(case: StorageCase) -> None:
    storage = case.storage
    write_file(storage, "entry", "data.pickle", b"\x00\x01binary")
    with storage.file_handle("entry", "metadata.json", mode="w") as handle:
        handle.write('{"caf\\u00e9": 1}')

    assert storage.exists("entry") is True
    assert list(storage.find_keys()) == ["entry"]
    assert read_file(storage, "entry", "data.pickle") == b"\x00\x01binary"
    with storage.file_handle("entry", "metadata.json", mode="r") as handle:
        assert handle.read() == '{"caf\\u00e9": 1}'


def test_find_keys_lists_every_entry_once(case: StorageCase) -> None:
    for key in ["pickle__B__2", "pickle__A__1", "pickle__C__3"]:
        write_file(case.storage, key, "data.pickle", key.encode())
        write_file(case.storage, key, "metadata.json", b"{}")

    assert sorted(case.storage.find_keys()) == ["pickle__A__1", "pickle__B__2", "pickle__C__3"]
    assert len(case.storage.find_keys()) == 3


def test_writing_a_file_creates_the_entry(case: StorageCase) -> None:
    assert case.storage.exists("fresh") is False
    write_file(case.storage, "fresh", "data.pickle", b"x")
    assert case.storage.exists("fresh") is True


def test_reading_a_missing_file_raises_oserror(case: StorageCase) -> None:
    with pytest.raises(OSError):
        read_file(case.storage, "missing", "data.pickle")
    write_file(case.storage, "present", "data.pickle", b"x")
    with pytest.raises(OSError):
        read_file(case.storage, "present", "metadata.json")


class FourMethodStorage:
    """A storage written for labtech's contract: only find_keys, exists, file_handle and delete."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    def find_keys(self) -> Any:
        return self.inner.find_keys()

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def file_handle(self, key: str, filename: str, *, mode: str = "r") -> Any:
        return self.inner.file_handle(key, filename, mode=mode)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


@pytest.mark.parametrize("four_methods_only", [False, True], ids=["storage", "four-method storage"])
def test_whole_files_and_their_last_bytes_read_as_written(case: StorageCase, four_methods_only: bool) -> None:
    storage: Any = FourMethodStorage(case.storage) if four_methods_only else case.storage
    write_file(case.storage, "entry", "data.pickle", b"\x80\x05K\x01.")
    write_file(case.storage, "entry", "empty", b"")

    assert read_entry_file(storage, "entry", "data.pickle") == b"\x80\x05K\x01."
    assert read_entry_file_tail(storage, "entry", "data.pickle", 1) == b"."
    assert read_entry_file_tail(storage, "entry", "data.pickle", 100) == b"\x80\x05K\x01."
    assert read_entry_file(storage, "entry", "empty") == b""
    assert read_entry_file_tail(storage, "entry", "empty", 1) == b""
    for read in (lambda: read_entry_file(storage, "entry", "missing"), lambda: read_entry_file_tail(storage, "entry", "missing", 1)):
        with pytest.raises(OSError):
            read()


def test_delete_removes_only_that_entry(case: StorageCase) -> None:
    storage = case.storage
    for key in ["keep", "drop"]:
        write_file(storage, key, "data.pickle", key.encode())
        write_file(storage, key, "metadata.json", b"{}")

    storage.delete("drop")

    assert storage.exists("drop") is False
    assert list(storage.find_keys()) == ["keep"]
    assert read_file(storage, "keep", "data.pickle") == b"keep"
    with pytest.raises(OSError):
        read_file(storage, "drop", "data.pickle")


def test_deleting_a_missing_key_is_fine(case: StorageCase) -> None:
    case.storage.delete("never_written")
    write_file(case.storage, "once", "data.pickle", b"x")
    case.storage.delete("once")
    case.storage.delete("once")
    assert list(case.storage.find_keys()) == []


def test_begun_write_is_invisible_until_commit(case: StorageCase) -> None:
    storage = case.storage
    writer = storage.begin_write("staged")
    write_with(writer, {"data.pickle": b"result", "metadata.json": b"{}"})

    assert storage.exists("staged") is False
    assert list(storage.find_keys()) == []

    writer.commit()

    assert storage.exists("staged") is True
    assert list(storage.find_keys()) == ["staged"]
    assert read_file(storage, "staged", "data.pickle") == b"result"
    assert read_file(storage, "staged", "metadata.json") == b"{}"


def test_commit_replaces_the_previous_entry_entirely(case: StorageCase) -> None:
    storage = case.storage
    write_file(storage, "entry", "data.pickle", b"old")
    write_file(storage, "entry", "old_only.bin", b"stale")

    writer = storage.begin_write("entry")
    write_with(writer, {"data.pickle": b"new"})
    writer.commit()

    assert read_file(storage, "entry", "data.pickle") == b"new"
    with pytest.raises(OSError):
        read_file(storage, "entry", "old_only.bin")
    assert list(storage.find_keys()) == ["entry"]


def test_aborted_write_leaves_nothing(case: StorageCase) -> None:
    before = case.raw_names()
    writer = case.storage.begin_write("aborted")
    write_with(writer, {"data.pickle": b"half"})
    writer.abort()

    assert case.storage.exists("aborted") is False
    assert list(case.storage.find_keys()) == []
    assert case.raw_names() == before


def test_aborted_write_keeps_the_previous_entry(case: StorageCase) -> None:
    storage = case.storage
    write_file(storage, "entry", "data.pickle", b"old")
    write_file(storage, "entry", "metadata.json", b"{}")

    writer = storage.begin_write("entry")
    write_with(writer, {"data.pickle": b"new, but the write fails before the metadata"})
    writer.abort()

    assert storage.exists("entry") is True
    assert read_file(storage, "entry", "data.pickle") == b"old"
    assert read_file(storage, "entry", "metadata.json") == b"{}"


INVALID_KEYS = {
    "empty": ("", "Key cannot be empty"),
    "dot": (".", "Key '.' must not contain the forbidden character '.'"),
    "dotdot": ("..", "Key '..' must not contain the forbidden character '.'"),
    "slash": ("a/b", "Key 'a/b' must not contain the forbidden character '/'"),
    "backslash": ("a\\b", "Key 'a\\b' must not contain the forbidden character '\\'"),
}

KEY_OPERATIONS: dict[str, Callable[[Storage, str], Any]] = {
    "exists": lambda storage, key: storage.exists(key),
    "file_handle-read": lambda storage, key: storage.file_handle(key, "data.pickle", mode="rb"),
    "file_handle-write": lambda storage, key: storage.file_handle(key, "data.pickle", mode="wb"),
    "delete": lambda storage, key: storage.delete(key),
    "begin_write": lambda storage, key: storage.begin_write(key),
}


@pytest.mark.parametrize("operation", KEY_OPERATIONS.values(), ids=KEY_OPERATIONS.keys())
@pytest.mark.parametrize(("key", "message"), INVALID_KEYS.values(), ids=INVALID_KEYS.keys())
def test_invalid_key_raises_storage_error_with_labtech_message(
    case: StorageCase, operation: Callable[[Storage, str], Any], key: str, message: str
) -> None:
    before = case.raw_names()
    with pytest.raises(StorageError) as raised:
        operation(case.storage, key)
    assert str(raised.value) == message
    assert case.raw_names() == before


ESCAPING_FILENAMES = ["../escaped", "..", "sub/data.pickle", "sub\\data.pickle", "", "."]


@pytest.mark.parametrize("filename", ESCAPING_FILENAMES)
@pytest.mark.parametrize("mode", ["wb", "rb"])
def test_escaping_filename_raises_storage_error(case: StorageCase, filename: str, mode: str) -> None:
    write_file(case.storage, "entry", "data.pickle", b"x")
    before = case.raw_names()

    with pytest.raises(StorageError) as raised:
        case.storage.file_handle("entry", filename, mode=mode)

    assert not isinstance(raised.value, ValueError)
    assert str(raised.value).startswith(
        f"Filename '{filename}' should only reference a directory directly under the storage key directory '"
    )
    assert "entry" in str(raised.value)
    assert case.raw_names() == before
    assert list(case.storage.find_keys()) == ["entry"]


@pytest.mark.parametrize("filename", ["../escaped", "sub/data.pickle"])
def test_escaping_filename_in_a_begun_write_raises_storage_error(case: StorageCase, filename: str) -> None:
    writer = case.storage.begin_write("entry")
    try:
        with pytest.raises(StorageError):
            writer.file_handle(filename, mode="wb")
    finally:
        writer.abort()
    assert list(case.storage.find_keys()) == []


def test_listing_ignores_staging_trash_and_stray_files(case: StorageCase) -> None:
    write_file(case.storage, "pickle__Real__1", "metadata.json", b"{}")
    case.make_raw_dir(".staging-pickle__Real__2-4242-0a1b2c")
    case.make_raw_dir(".trash-pickle__Real__3-0a1b2c")
    case.make_raw_file("README")

    assert list(case.storage.find_keys()) == ["pickle__Real__1"]


def test_runner_storage_sees_the_same_entries(case: StorageCase) -> None:
    write_file(case.storage, "entry", "data.pickle", b"x")
    runner_storage = case.storage.get_runner_storage()
    assert list(runner_storage.find_keys()) == ["entry"]
    assert read_file(runner_storage, "entry", "data.pickle") == b"x"


def test_pickled_storage_sees_the_same_entries(case: StorageCase) -> None:
    write_file(case.storage, "entry", "data.pickle", b"x")
    clone = pickle.loads(pickle.dumps(case.storage))

    assert list(clone.find_keys()) == ["entry"]
    assert read_file(clone, "entry", "data.pickle") == b"x"
    write_file(clone, "from_clone", "data.pickle", b"y")
    assert read_file(case.storage, "from_clone", "data.pickle") == b"y"


def test_lab_caches_loads_lists_and_uncaches_through_the_storage(case: StorageCase) -> None:
    lab = make_lab(case.storage)
    assert run(lab, [Square(x=3)]) == {Square(x=3): 9}
    assert run(lab, [Square(x=3)]) == {Square(x=3): 9}

    assert lab.context["runs"] == [3]
    assert lab.is_cached(Square(x=3)) is True
    assert lab.cached_tasks([Square]) == [Square(x=3)]
    assert list(case.storage.find_keys()) == [Square(x=3).cache_key]

    lab.uncache_tasks([Square(x=3)])
    assert lab.is_cached(Square(x=3)) is False
    assert list(case.storage.find_keys()) == []


def test_lab_recomputes_an_entry_interrupted_before_its_metadata(case: StorageCase, caplog: pytest.LogCaptureFixture) -> None:
    lab = make_lab(case.storage)
    task = Square(x=4)
    write_file(case.storage, task.cache_key, "data.pickle", b"\x80\x05half-written")

    assert lab.is_cached(task) is False
    with caplog.at_level(logging.WARNING, logger="labtech_nb"):
        assert run(lab, [task]) == {task: 16}

    assert any(record.levelno == logging.WARNING and str(task) in record.getMessage() for record in caplog.records)
    assert lab.context["runs"] == [4]
    assert lab.is_cached(task) is True
    assert run(lab, [task]) == {task: 16}
    assert lab.context["runs"] == [4]


# --- LocalStorage ---------------------------------------------------------------------------------------


def test_local_storage_creates_missing_parents(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "a" / "b" / "c")
    write_file(storage, "entry", "data.pickle", b"x")
    assert (tmp_path / "a" / "b" / "c" / "entry" / "data.pickle").read_bytes() == b"x"


def test_local_storage_writes_gitignore_when_missing(tmp_path: Path) -> None:
    LocalStorage(tmp_path / "store")
    assert (tmp_path / "store" / ".gitignore").read_text() == "*\n"


def test_local_storage_keeps_an_existing_gitignore(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / ".gitignore").write_text("*\n!keep-me\n")
    LocalStorage(tmp_path / "store")
    assert (tmp_path / "store" / ".gitignore").read_text() == "*\n!keep-me\n"


def test_local_storage_without_gitignore_writes_none(tmp_path: Path) -> None:
    LocalStorage(tmp_path / "store", with_gitignore=False)
    assert list((tmp_path / "store").iterdir()) == []


def test_local_storage_lists_keys_sorted(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    for key in ["pickle__B__2", "pickle__C__3", "pickle__A__1"]:
        write_file(storage, key, "metadata.json", b"{}")
    assert list(storage.find_keys()) == ["pickle__A__1", "pickle__B__2", "pickle__C__3"]


def test_local_storage_on_a_file_raises_storage_error(tmp_path: Path) -> None:
    (tmp_path / "occupied").write_text("a file, not a directory")
    with pytest.raises(StorageError):
        LocalStorage(tmp_path / "occupied")


def test_local_runner_dir_is_where_runners_read_and_write(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "seen-by-lab", runner_dir=tmp_path / "seen-by-runners")
    runner_storage = storage.get_runner_storage()
    write_file(runner_storage, "entry", "data.pickle", b"from a worker")

    assert (tmp_path / "seen-by-runners" / "entry" / "data.pickle").read_bytes() == b"from a worker"
    assert storage.exists("entry") is False

    lab = make_lab(storage)
    run(lab, [Square(x=2)])
    assert (tmp_path / "seen-by-runners" / Square(x=2).cache_key / "metadata.json").is_file()


def test_local_storage_pickles_with_its_runner_dir(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store", runner_dir=tmp_path / "mount")
    write_file(storage, "entry", "data.pickle", b"x")

    clone = pickle.loads(pickle.dumps(storage))

    assert isinstance(clone, LocalStorage)
    assert list(clone.find_keys()) == ["entry"]
    write_file(clone.get_runner_storage(), "worker_entry", "data.pickle", b"y")
    assert (tmp_path / "mount" / "worker_entry" / "data.pickle").read_bytes() == b"y"


class TaggedLocalStorage(LocalStorage):
    """A user's LocalStorage subclass with state of its own."""

    def __init__(self, storage_dir: Path, *, tag: str) -> None:
        super().__init__(storage_dir)
        self.tag = tag

    def file_handle(self, key: str, filename: str, *, mode: str = "r") -> Any:
        return super().file_handle(key, f"{self.tag}-{filename}", mode=mode)


def test_local_storage_subclass_pickles_as_itself(tmp_path: Path) -> None:
    storage = TaggedLocalStorage(tmp_path / "store", tag="v2")
    write_file(storage, "entry", "data.pickle", b"x")

    clone = pickle.loads(pickle.dumps(storage))

    assert type(clone) is TaggedLocalStorage
    assert clone.tag == "v2"
    assert read_file(clone, "entry", "data.pickle") == b"x"


# --- FsspecStorage ---------------------------------------------------------------------------------------


def test_fsspec_storage_creates_its_directory(memory_root: str) -> None:
    storage = MemoryFsspecStorage(f"{memory_root}/nested/store")
    assert storage.fs.isdir(f"{memory_root}/nested/store")


def test_fsspec_storage_builds_its_filesystem_once(memory_root: str) -> None:
    storage = MemoryFsspecStorage(memory_root)
    for index in range(3):
        write_file(storage, f"entry{index}", "data.pickle", b"x")
        storage.exists(f"entry{index}")
        read_file(storage, f"entry{index}", "data.pickle")
        storage.find_keys()
    storage.delete("entry0")
    writer = storage.begin_write("entry9")
    write_with(writer, {"data.pickle": b"x"})
    writer.commit()

    assert storage.constructions == 1


def test_fsspec_storage_builds_a_new_filesystem_once_in_a_forked_process(memory_root: str) -> None:
    storage = MemoryFsspecStorage(memory_root)
    storage.exists("entry")
    context = multiprocessing.get_context("fork")
    queue = context.SimpleQueue()

    def use_storage_in_child() -> None:
        for _ in range(3):
            write_file(storage, "entry", "data.pickle", b"x")
            storage.exists("entry")
        queue.put(storage.constructions)

    process = context.Process(target=use_storage_in_child)
    process.start()
    process.join(timeout=20)

    assert process.exitcode == 0
    assert queue.get() == 2
    assert storage.constructions == 1


def test_fsspec_storage_pickles_without_its_filesystem(memory_root: str) -> None:
    storage = UnpicklableFsStorage(memory_root)
    write_file(storage, "entry", "data.pickle", b"x")
    with pytest.raises(TypeError):
        pickle.dumps(storage.fs)

    clone = pickle.loads(pickle.dumps(storage))

    assert list(clone.find_keys()) == ["entry"]
    assert read_file(clone, "entry", "data.pickle") == b"x"


def test_fsspec_storage_requires_fs_constructor(memory_root: str) -> None:
    with pytest.raises(TypeError):
        FsspecStorage(memory_root)  # type: ignore[abstract]


# --- NullStorage ---------------------------------------------------------------------------------------


def test_null_storage_keeps_nothing() -> None:
    storage = NullStorage()
    write_file(storage, "entry", "data.pickle", b"discarded")
    writer = storage.begin_write("entry")
    write_with(writer, {"data.pickle": b"discarded"})
    writer.commit()

    assert list(storage.find_keys()) == []
    assert storage.exists("entry") is False
    storage.delete("entry")
    assert storage.get_runner_storage().exists("entry") is False


def test_lab_without_storage_uses_null_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    lab = make_lab(None)  # type: ignore[arg-type]
    assert isinstance(lab.storage, NullStorage)
    assert run(lab, [Square(x=5)]) == {Square(x=5): 25}
    assert run(lab, [Square(x=5)]) == {Square(x=5): 25}
    assert lab.context["runs"] == [5, 5]
    assert list(tmp_path.iterdir()) == []
