"""Caches seen through a `Lab`: the on-disk entry, atomic writes, corrupted entries, listing, and
reading a storage written by labtech 1.1.0."""

from __future__ import annotations

import errno
import functools
import gzip
import hashlib
import importlib
import json
import logging
import pickle
import shutil
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pytest

import labtech_nb as labtech
from labtech_nb.cache import BaseCache, NullCache
from labtech_nb.exceptions import CacheError, DependencyFailedError, LabError, TaskError, TaskNotFound
from labtech_nb.serialization import Serializer
from labtech_nb.storage import FsspecStorage, LocalStorage
from labtech_nb.types import ResultMeta

FIXTURES_DIR = Path(__file__).parent / "fixtures"
METADATA_KEYS = ["labtech_version", "cache", "cache_key", "task", "start_timestamp", "duration_seconds"]

# --- task types --------------------------------------------------------------------------------------


def record_run(task: Any) -> None:
    task.context["runs"].append(task)


class Color(Enum):
    RED = "red"
    BLUE = "blue"


@labtech.task
class Leaf:
    x: int

    def run(self) -> int:
        record_run(self)
        return self.x * 10


@labtech.task(cache=None)
class Factory:
    size: int

    def run(self) -> list[int]:
        record_run(self)
        return list(range(self.size))


@labtech.task
class Parent:
    child: Leaf
    factory: Factory

    def run(self) -> int:
        record_run(self)
        return self.child.result + sum(self.factory.result)


@labtech.task(code_version="v1")
class Layout:
    seed: int
    tags: list
    opts: dict
    color: Color = Color.RED

    def run(self) -> dict[str, Any]:
        return {"seed": self.seed, "tags": list(self.tags)}


@labtech.task
class WithEnum:
    color: Color
    n: int = 0

    def run(self) -> str:
        return f"{self.color.name}:{self.n}"


@labtech.task(code_version="v3")
class Versioned:
    n: int

    def run(self) -> int:
        record_run(self)
        return self.n


@labtech.task
class Exp:
    x: int

    def run(self) -> int:
        return self.x**2


@labtech.task
class ExpOld:
    x: int

    def run(self) -> int:
        return -self.x


@labtech.task
class Unpicklable:
    kind: str

    def run(self) -> Any:
        record_run(self)
        if self.kind == "lambda":
            return lambda: "not picklable"
        return threading.Lock()


@labtech.task
class UsesLock:
    holder: Unpicklable

    def run(self) -> bool:
        record_run(self)
        return bool(self.holder.result.locked())


class ParquetCache(BaseCache):
    """The custom cache of LABTECH_API.md section 6."""

    KEY_PREFIX = "parquet__"

    def save_result(self, storage: Any, task: Any, result: Any) -> None:
        with storage.file_handle(task.cache_key, "result.parquet", mode="wb") as f:
            result.to_parquet(f)

    def load_result(self, storage: Any, task: Any) -> Any:
        with storage.file_handle(task.cache_key, "result.parquet", mode="rb") as f:
            return pd.read_parquet(f)


@labtech.task(cache=ParquetCache())
class Frame:
    n: int

    def run(self) -> Any:
        record_run(self)
        if self.n < 0:
            return {"not": "a DataFrame"}
        return pd.DataFrame({"i": list(range(self.n)), "square": [i * i for i in range(self.n)]})


# --- helpers -----------------------------------------------------------------------------------------


def make_lab(storage: Any, runner_backend: str = "serial") -> labtech.Lab:
    return labtech.Lab(storage=storage, runner_backend=runner_backend, max_workers=2, context={"runs": []})


def run(lab: labtech.Lab, tasks: list[Any], **kwargs: Any) -> dict[Any, Any]:
    return lab.run_tasks(tasks, disable_progress=True, disable_top=True, **kwargs)


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "labtech_nb" and record.levelno == logging.WARNING and text in record.getMessage()
    ]


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest.fixture
def temp_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], ModuleType]]:
    """Write and import a module of task types that a test can later change or remove."""
    module_dir = tmp_path / "modules"
    module_dir.mkdir()
    monkeypatch.syspath_prepend(str(module_dir))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    created: list[str] = []

    def write(prefix: str, source: str) -> ModuleType:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        (module_dir / f"{name}.py").write_text(source)
        importlib.invalidate_caches()
        created.append(name)
        return importlib.import_module(name)

    yield write
    for name in created:
        sys.modules.pop(name, None)


# --- corruptions of an entry, as left by crashes, disks or labtech's non-atomic writes ----------------


def _truncate_data(entry: Path) -> None:
    data = (entry / "data.pickle").read_bytes()
    (entry / "data.pickle").write_bytes(data[: len(data) // 2])


def _empty_data(entry: Path) -> None:
    (entry / "data.pickle").write_bytes(b"")


def _remove_data(entry: Path) -> None:
    (entry / "data.pickle").unlink()


def _invalid_metadata(entry: Path) -> None:
    (entry / "metadata.json").write_text('{"labtech_version": "1.1.0", "cache": "Pick')


def _remove_metadata(entry: Path) -> None:
    (entry / "metadata.json").unlink()


def _other_cache_metadata(entry: Path) -> None:
    metadata = json.loads((entry / "metadata.json").read_text())
    metadata["cache"] = "ParquetCache"
    (entry / "metadata.json").write_text(json.dumps(metadata, indent=2))


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "truncated data.pickle": _truncate_data,
    "empty data.pickle (labtech half-write)": _empty_data,
    "missing data.pickle": _remove_data,
    "invalid metadata JSON": _invalid_metadata,
    "missing metadata.json": _remove_metadata,
    "metadata of another cache class": _other_cache_metadata,
}


# --- metadata.json and data.pickle -----------------------------------------------------------------


def test_entry_has_labtech_metadata_layout_and_pickled_result(storage_dir: Path) -> None:
    lab = make_lab(storage_dir)
    task = Layout(
        seed=3, tags=["a", "caf\u00e9 \u2615"], opts={"z": 1.5, "\u00fc": {"n": None, "e": {}, "l": []}, "inf": float("inf")}
    )
    before = datetime.now()
    results = run(lab, [task])
    after = datetime.now()

    entry = storage_dir / task.cache_key
    assert sorted(path.name for path in entry.iterdir()) == ["data.pickle", "metadata.json"]
    text = (entry / "metadata.json").read_text()
    metadata = json.loads(text)
    assert text == json.dumps(metadata, indent=2)
    assert list(metadata)[:6] == METADATA_KEYS
    assert isinstance(metadata["labtech_version"], str)
    assert metadata["cache"] == "PickleCache"
    assert metadata["cache_key"] == task.cache_key == entry.name
    assert metadata["task"] == {
        "_is_task": True,
        "__class__": f"{__name__}.Layout",
        "_code_version": "v1",
        "seed": 3,
        "tags": ["a", "caf\u00e9 \u2615"],
        "opts": {"z": 1.5, "\u00fc": {"n": None, "e": {}, "l": []}, "inf": float("inf")},
        "color": {"_is_enum": True, "__class__": f"{__name__}.Color", "name": "RED"},
    }
    assert list(metadata["task"]) == ["_is_task", "__class__", "_code_version", "seed", "tags", "opts", "color"]
    assert list(metadata["task"]["opts"]) == ["z", "\u00fc", "inf"]
    digest = hashlib.sha1(json.dumps(metadata["task"]).encode("utf-8")).hexdigest()
    assert entry.name == f"pickle__Layout__{digest}"

    start = datetime.fromisoformat(metadata["start_timestamp"])
    assert start.tzinfo is None
    assert before <= start <= after
    assert isinstance(metadata["duration_seconds"], float)
    assert 0 <= metadata["duration_seconds"] <= (after - before).total_seconds()

    data = (entry / "data.pickle").read_bytes()
    assert data[:2] == bytes([0x80, pickle.HIGHEST_PROTOCOL])
    assert pickle.loads(data) == results[task] == {"seed": 3, "tags": ["a", "caf\u00e9 \u2615"]}
    assert (storage_dir / ".gitignore").read_text() == "*\n"


def test_second_run_loads_with_the_stored_result_meta(storage_dir: Path) -> None:
    lab = make_lab(storage_dir)
    first = Leaf(x=4)
    run(lab, [first])
    metadata = json.loads((storage_dir / first.cache_key / "metadata.json").read_text())

    again = Leaf(x=4)
    assert run(lab, [again]) == {again: 40}

    assert lab.context["runs"] == [Leaf(x=4)]
    assert again.result_meta is not None
    assert again.result_meta.start == datetime.fromisoformat(metadata["start_timestamp"])
    assert again.result_meta.duration is not None
    assert again.result_meta.duration.total_seconds() == pytest.approx(metadata["duration_seconds"])


def test_entry_without_timestamps_loads_with_unknown_result_meta(storage_dir: Path) -> None:
    lab = make_lab(storage_dir)
    run(lab, [Leaf(x=7)])
    metadata_path = storage_dir / Leaf(x=7).cache_key / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    del metadata["start_timestamp"], metadata["duration_seconds"]
    metadata["labtech_version"] = "0.5.0"
    metadata_path.write_text(json.dumps(metadata, indent=2))

    task = Leaf(x=7)
    assert run(lab, [task]) == {task: 70}

    assert lab.context["runs"] == [Leaf(x=7)]
    assert task.result_meta == ResultMeta(start=None, duration=None)
    [listed] = lab.cached_tasks([Leaf])
    assert listed.result_meta == ResultMeta(start=None, duration=None)


# --- atomic writes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "cause_text"), [("lambda", "lambda"), ("lock", "lock")])
def test_unpicklable_result_fails_the_task_and_leaves_no_entry(
    storage_dir: Path, caplog: pytest.LogCaptureFixture, kind: str, cause_text: str
) -> None:
    lab = make_lab(storage_dir)
    bad = Unpicklable(kind=kind)
    good = Leaf(x=1)

    with caplog.at_level(logging.ERROR, logger="labtech_nb"), pytest.raises(LabError) as raised:
        run(lab, [bad, good])

    assert str(raised.value) == "Failed to complete 1 submitted task(s)"
    assert raised.value.results == {good: 10}
    message = str(raised.value.failures[bad])
    assert str(bad) in message
    assert cause_text in message
    assert any(str(bad) in record.getMessage() for record in caplog.records if record.levelno == logging.ERROR)

    assert sorted(path.name for path in storage_dir.iterdir()) == [".gitignore", good.cache_key]
    assert lab.is_cached(bad) is False
    assert lab.cached_tasks([Unpicklable]) == []

    with pytest.raises(LabError):
        run(lab, [bad])
    assert lab.context["runs"].count(bad) == 2


class _DiskFullFile:
    """A file on a full disk: opening works, writing fails."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> _DiskFullFile:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


class DiskFullLocalStorage(LocalStorage):
    """A custom storage written for labtech's contract: writes of one file of one key hit a full disk."""

    full_key = ""
    full_filename = ""

    def file_handle(self, key: str, filename: str, *, mode: str = "r") -> Any:
        handle = super().file_handle(key, filename, mode=mode)
        if key == self.full_key and filename == self.full_filename and "w" in mode:
            return _DiskFullFile(handle)
        return handle


class DiskFullMemoryStorage(FsspecStorage):
    full_key = ""
    full_filename = ""

    def fs_constructor(self) -> Any:
        return fsspec.filesystem("memory")

    def file_handle(self, key: str, filename: str, *, mode: str = "r") -> Any:
        handle = super().file_handle(key, filename, mode=mode)
        if key == self.full_key and filename == self.full_filename and "w" in mode:
            return _DiskFullFile(handle)
        return handle


class _DiskFullWriter:
    def __init__(self, writer: Any, filename: str) -> None:
        self._writer = writer
        self._filename = filename

    def file_handle(self, filename: str, *, mode: str = "wb") -> Any:
        handle = self._writer.file_handle(filename, mode=mode)
        return _DiskFullFile(handle) if filename == self._filename else handle

    def commit(self) -> None:
        self._writer.commit()

    def abort(self) -> None:
        self._writer.abort()


class DiskFullStagedStorage(LocalStorage):
    """A LocalStorage whose staged writes of one file of one key hit a full disk."""

    full_key = ""
    full_filename = ""

    def begin_write(self, key: str) -> Any:
        writer = super().begin_write(key)
        return _DiskFullWriter(writer, self.full_filename) if key == self.full_key else writer


def _raw_local_names(storage: LocalStorage) -> set[str]:
    return {path.name for path in storage.storage_path.iterdir()} - {".gitignore"}


@pytest.fixture(
    params=["LocalStorage subclass wrapping file_handle", "FsspecStorage wrapping file_handle", "LocalStorage staged write"]
)
def disk_full_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Callable[[], set[str]]]]:
    if request.param == "LocalStorage subclass wrapping file_handle":
        local = DiskFullLocalStorage(tmp_path / "storage")
        yield local, lambda: _raw_local_names(local)
    elif request.param == "LocalStorage staged write":
        staged = DiskFullStagedStorage(tmp_path / "storage")
        yield staged, lambda: _raw_local_names(staged)
    else:
        root = f"/labtech-nb-tests/{uuid.uuid4().hex}"
        memory = DiskFullMemoryStorage(root)
        yield memory, lambda: {path.rstrip("/").rsplit("/", 1)[-1] for path in memory.fs.ls(root, detail=False)}
        memory.fs.rm(root, recursive=True)


@pytest.mark.parametrize("failing_file", ["data.pickle", "metadata.json"])
def test_storage_write_error_fails_only_that_task_and_leaves_no_entry(
    disk_full_storage: tuple[Any, Callable[[], set[str]]], failing_file: str, caplog: pytest.LogCaptureFixture
) -> None:
    storage, raw_names = disk_full_storage
    doomed = Leaf(x=1)
    storage.full_key = doomed.cache_key
    storage.full_filename = failing_file
    lab = make_lab(storage)
    healthy = Parent(child=Leaf(x=2), factory=Factory(size=3))
    blocked = Parent(child=doomed, factory=Factory(size=3))

    with caplog.at_level(logging.ERROR, logger="labtech_nb"), pytest.raises(LabError) as raised:
        run(lab, [doomed, healthy, blocked])

    assert str(raised.value) == "Failed to complete 2 submitted task(s)"
    assert raised.value.results == {healthy: 20 + 3}
    failure = str(raised.value.failures[doomed])
    assert str(doomed) in failure
    assert "No space left on device" in failure
    assert isinstance(raised.value.failures[blocked], DependencyFailedError)
    assert any(
        str(doomed) in record.getMessage() and "No space left on device" in record.getMessage()
        for record in caplog.records
        if record.levelno == logging.ERROR
    )

    assert storage.exists(doomed.cache_key) is False
    assert lab.is_cached(doomed) is False
    assert lab.is_cached(healthy) is True
    assert raw_names() == {Leaf(x=2).cache_key, healthy.cache_key}


class GzipLocalStorage(LocalStorage):
    """A custom storage written for labtech's contract: result files are gzip-compressed on disk."""

    def file_handle(self, key: str, filename: str, *, mode: str = "r") -> Any:
        handle = super().file_handle(key, filename, mode=mode)
        if filename != "data.pickle":
            return handle
        return _ClosingGzipFile(handle, mode)


class _ClosingGzipFile(gzip.GzipFile):
    def __init__(self, handle: Any, mode: str) -> None:
        super().__init__(fileobj=handle, mode=mode)
        self._raw_handle = handle

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw_handle.close()


def test_storage_subclass_file_handle_is_used_for_writes_and_reads(storage_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    lab = make_lab(GzipLocalStorage(storage_dir))
    run(lab, [Leaf(x=6)])

    with caplog.at_level(logging.WARNING, logger="labtech_nb"):
        assert run(lab, [Leaf(x=6)]) == {Leaf(x=6): 60}

    assert lab.context["runs"] == [Leaf(x=6)]
    assert warnings_about(caplog, "") == []
    assert (storage_dir / Leaf(x=6).cache_key / "data.pickle").read_bytes()[:2] == b"\x1f\x8b"


# --- corrupted entries ---------------------------------------------------------------------------------


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_corrupted_entry_is_warned_about_recomputed_and_overwritten(
    storage_dir: Path, caplog: pytest.LogCaptureFixture, corrupt: Callable[[Path], None]
) -> None:
    lab = make_lab(storage_dir)
    task = Leaf(x=3)
    run(lab, [task])
    corrupt(storage_dir / task.cache_key)

    with caplog.at_level(logging.WARNING, logger="labtech_nb"):
        assert run(lab, [Leaf(x=3)]) == {Leaf(x=3): 30}

    assert lab.context["runs"] == [task, task]
    assert warnings_about(caplog, str(task))
    metadata = json.loads((storage_dir / task.cache_key / "metadata.json").read_text())
    assert metadata["cache"] == "PickleCache"
    assert pickle.loads((storage_dir / task.cache_key / "data.pickle").read_bytes()) == 30

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="labtech_nb"):
        assert run(lab, [Leaf(x=3)]) == {Leaf(x=3): 30}
    assert lab.context["runs"] == [task, task]
    assert warnings_about(caplog, "") == []


@pytest.mark.parametrize("child_cached", [True, False], ids=["child cached", "child uncached"])
def test_corrupted_entry_of_a_task_with_dependencies_reruns_what_it_needs(
    storage_dir: Path, caplog: pytest.LogCaptureFixture, child_cached: bool
) -> None:
    lab = make_lab(storage_dir)
    parent = Parent(child=Leaf(x=3), factory=Factory(size=4))
    run(lab, [parent])
    _truncate_data(storage_dir / parent.cache_key)
    if not child_cached:
        lab.uncache_tasks([Leaf(x=3)])
    lab.context["runs"].clear()

    with caplog.at_level(logging.WARNING, logger="labtech_nb"):
        assert run(lab, [parent]) == {parent: 30 + 6}

    expected_runs = [Factory(size=4), parent] if child_cached else [Leaf(x=3), Factory(size=4), parent]
    assert sorted(map(repr, lab.context["runs"])) == sorted(map(repr, expected_runs))
    assert warnings_about(caplog, str(parent))
    assert lab.is_cached(parent) is True
    assert lab.is_cached(Leaf(x=3)) is True


# --- is_cached ---------------------------------------------------------------------------------------


def test_is_cached_follows_the_entry(storage_dir: Path) -> None:
    lab = make_lab(storage_dir)
    assert lab.is_cached(Leaf(x=1)) is False
    run(lab, [Leaf(x=1), Factory(size=2)])

    assert lab.is_cached(Leaf(x=1)) is True
    assert lab.is_cached(Leaf(x=2)) is False
    assert lab.is_cached(Factory(size=2)) is False
    lab.uncache_tasks([Leaf(x=1)])
    assert lab.is_cached(Leaf(x=1)) is False
    with pytest.raises(LabError) as raised:
        lab.is_cached(42)
    assert str(raised.value) == "`42` is not a task, please provide a task object made from a class decorated with @labtech.task."


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_is_cached_is_false_for_a_corrupted_entry(storage_dir: Path, corrupt: Callable[[Path], None]) -> None:
    lab = make_lab(storage_dir)
    run(lab, [Leaf(x=3)])
    corrupt(storage_dir / Leaf(x=3).cache_key)

    assert lab.is_cached(Leaf(x=3)) is False


# --- cached_tasks ------------------------------------------------------------------------------------


def test_cached_tasks_matches_the_type_exactly(storage_dir: Path) -> None:
    lab = make_lab(storage_dir)
    run(lab, [Exp(x=1), Exp(x=2), ExpOld(x=1)])

    exps = lab.cached_tasks([Exp])
    assert sorted(exps) == [Exp(x=1), Exp(x=2)]
    assert all(type(task) is Exp for task in exps)
    assert [task.cache_key for task in exps] == sorted(task.cache_key for task in exps)
    assert lab.cached_tasks([ExpOld]) == [ExpOld(x=1)]
    assert len(lab.cached_tasks([Exp, ExpOld])) == 3
    assert lab.cached_tasks([Leaf]) == []


def test_cached_tasks_returns_tasks_with_code_version_and_result_meta_but_no_result(storage_dir: Path) -> None:
    lab = make_lab(storage_dir)
    original = Versioned(n=5)
    run(lab, [original])

    [listed] = lab.cached_tasks([Versioned])

    assert listed == original
    assert listed.code_version == "v3"
    assert listed.result_meta == original.result_meta
    assert listed.result_meta is not None and listed.result_meta.start is not None
    with pytest.raises(TaskError):
        _ = listed.result
    assert run(lab, [listed]) == {listed: 5}
    assert lab.context["runs"] == [original]


def test_cached_tasks_restores_enum_members(storage_dir: Path) -> None:
    lab = make_lab(storage_dir)
    originals = [WithEnum(color=Color.RED), WithEnum(color=Color.BLUE, n=2)]
    run(lab, originals)

    listed = lab.cached_tasks([WithEnum])

    assert sorted(listed, key=repr) == sorted(originals, key=repr)
    assert {task.color for task in listed} == {Color.RED, Color.BLUE}
    assert all(isinstance(task.color, Color) for task in listed)
    assert run(lab, listed) == {WithEnum(color=Color.RED): "RED:0", WithEnum(color=Color.BLUE, n=2): "BLUE:2"}


GONE_SOURCE = """
import labtech_nb as labtech


@labtech.task
class Gone:
    n: int

    def run(self):
        return self.n
"""


@pytest.mark.parametrize("removal", ["module deleted", "class removed"])
def test_cached_tasks_skips_entries_whose_class_no_longer_imports(
    storage_dir: Path, temp_module: Callable[[str, str], ModuleType], caplog: pytest.LogCaptureFixture, removal: str
) -> None:
    module = temp_module("gone_tasks", GONE_SOURCE)
    gone_type = module.Gone
    gone = gone_type(n=1)
    lab = make_lab(storage_dir)
    run(lab, [gone, Leaf(x=1)])

    if removal == "module deleted":
        Path(module.__file__).unlink()  # type: ignore[arg-type]
        del sys.modules[module.__name__]
        importlib.invalidate_caches()
    else:
        del module.Gone

    with caplog.at_level(logging.WARNING, logger="labtech_nb"):
        listed = lab.cached_tasks([gone_type, Leaf])

    assert listed == [Leaf(x=1)]
    assert warnings_about(caplog, gone.cache_key)


STALE_SOURCE = """
import labtech_nb as labtech


@labtech.task(code_version={version!r})
class Model:
    n: int

    def run(self):
        return self.n + 1
"""


def test_running_a_listed_task_with_a_stale_code_version_raises(
    storage_dir: Path, temp_module: Callable[[str, str], ModuleType]
) -> None:
    module = temp_module("versioned_tasks", STALE_SOURCE.format(version="v1"))
    lab = make_lab(storage_dir)
    run(lab, [module.Model(n=1)])

    Path(module.__file__).write_text(STALE_SOURCE.format(version="v2"))  # type: ignore[arg-type]
    module = importlib.reload(module)
    [listed] = lab.cached_tasks([module.Model])

    assert listed.code_version == "v1"
    assert listed.current_code_version == "v2"
    with pytest.raises(LabError) as raised:
        run(lab, [listed])
    assert str(raised.value) == (
        f"`{listed!r}` cannot be run, as it has code_version='v1' while the current implementation of Model has "
        "code_version='v2'. You should construct new Model tasks to run instead of running tasks loaded from cache."
    )
    assert lab.is_cached(module.Model(n=1)) is False


def _as_if_labtech_wrote_it(entry: Path) -> None:
    metadata = json.loads((entry / "metadata.json").read_text())
    metadata["labtech_version"] = "1.1.0"
    (entry / "metadata.json").write_text(json.dumps(metadata, indent=2))


@pytest.mark.parametrize(
    "corrupt", [_invalid_metadata, _remove_metadata, _remove_data], ids=["invalid metadata", "no metadata", "no data"]
)
def test_cached_tasks_does_not_list_incomplete_entries(storage_dir: Path, corrupt: Callable[[Path], None]) -> None:
    lab = make_lab(storage_dir)
    run(lab, [Leaf(x=1), Leaf(x=2)])
    _as_if_labtech_wrote_it(storage_dir / Leaf(x=1).cache_key)
    corrupt(storage_dir / Leaf(x=1).cache_key)

    assert lab.cached_tasks([Leaf]) == [Leaf(x=2)]


@pytest.mark.parametrize("corrupt", [_truncate_data, _empty_data], ids=["truncated data", "empty data"])
def test_cached_tasks_does_not_list_labtech_entries_with_a_partial_result(
    storage_dir: Path, corrupt: Callable[[Path], None]
) -> None:
    lab = make_lab(storage_dir)
    run(lab, [Leaf(x=1), Leaf(x=2)])
    _as_if_labtech_wrote_it(storage_dir / Leaf(x=1).cache_key)
    _as_if_labtech_wrote_it(storage_dir / Leaf(x=2).cache_key)
    corrupt(storage_dir / Leaf(x=1).cache_key)

    assert lab.cached_tasks([Leaf]) == [Leaf(x=2)]


def test_cached_tasks_trusts_entries_it_wrote_and_a_run_recomputes_one_damaged_since(
    storage_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # labtech_nb writes the metadata last, so listing does not open the results of its own entries.
    lab = make_lab(storage_dir)
    run(lab, [Leaf(x=1), Leaf(x=2)])
    _truncate_data(storage_dir / Leaf(x=1).cache_key)

    listed = lab.cached_tasks([Leaf])
    assert listed == [Leaf(x=1), Leaf(x=2)] or listed == [Leaf(x=2), Leaf(x=1)]
    assert lab.is_cached(Leaf(x=1)) is False  # asked about one entry, the lab does open its result

    with caplog.at_level(logging.WARNING, logger="labtech_nb"):
        assert run(lab, [Leaf(x=1)]) == {Leaf(x=1): 10}
    assert warnings_about(caplog, str(Leaf(x=1)))
    assert lab.is_cached(Leaf(x=1)) is True


def test_cached_tasks_warns_about_unreadable_metadata(storage_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    lab = make_lab(storage_dir)
    run(lab, [Leaf(x=1)])
    _invalid_metadata(storage_dir / Leaf(x=1).cache_key)

    with caplog.at_level(logging.WARNING, logger="labtech_nb"):
        assert lab.cached_tasks([Leaf]) == []
    assert warnings_about(caplog, Leaf(x=1).cache_key)


def test_cached_tasks_rejects_what_is_not_a_task_type(storage_dir: Path) -> None:
    lab = make_lab(storage_dir)
    with pytest.raises(LabError) as raised:
        lab.cached_tasks([dict])
    assert str(raised.value) == f"`{dict!r}` is not a task type, please provide a class decorated with @labtech.task."


# --- uncache_tasks -----------------------------------------------------------------------------------


def test_uncache_tasks_deletes_exactly_the_given_entries(storage_dir: Path) -> None:
    lab = make_lab(storage_dir)
    parent = Parent(child=Leaf(x=1), factory=Factory(size=2))
    run(lab, [parent, Leaf(x=2), Exp(x=3)])

    lab.uncache_tasks([parent, Leaf(x=2)])

    assert sorted(path.name for path in storage_dir.iterdir()) == sorted([".gitignore", Leaf(x=1).cache_key, Exp(x=3).cache_key])
    lab.uncache_tasks([parent, Leaf(x=99), Factory(size=2)])
    assert sorted(lab.cached_tasks([Leaf, Parent, Exp]), key=repr) == [Exp(x=3), Leaf(x=1)]
    with pytest.raises(LabError):
        lab.uncache_tasks([42])


def test_uncaching_many_entries_removes_every_file_before_returning(storage_dir: Path) -> None:
    # Past 64 entries, their files are removed on two threads at the end of the call.
    lab = make_lab(storage_dir)
    run(lab, [Leaf(x=x) for x in range(150)])

    lab.uncache_tasks([Leaf(x=x) for x in range(1, 150)])

    assert sorted(path.name for path in storage_dir.iterdir()) == [".gitignore", Leaf(x=0).cache_key]
    assert run(lab, [Leaf(x=0)]) == {Leaf(x=0): 0}
    assert lab.context["runs"].count(Leaf(x=0)) == 1  # still cached: computed by the first run only


# --- a custom BaseCache --------------------------------------------------------------------------------


def test_custom_parquet_cache_stores_and_loads_dataframes(storage_dir: Path) -> None:
    lab = make_lab(storage_dir)
    task = Frame(n=4)
    first = run(lab, [task])[task]
    again = run(lab, [Frame(n=4)])[Frame(n=4)]

    assert lab.context["runs"] == [task]
    pd.testing.assert_frame_equal(again, first)
    assert again["square"].tolist() == [0, 1, 4, 9]
    assert task.cache_key.startswith("parquet__Frame__")
    entry = storage_dir / task.cache_key
    assert sorted(path.name for path in entry.iterdir()) == ["metadata.json", "result.parquet"]
    assert json.loads((entry / "metadata.json").read_text())["cache"] == "ParquetCache"
    assert lab.is_cached(task) is True
    assert lab.cached_tasks([Frame]) == [task]


def test_custom_cache_failing_to_save_leaves_no_entry(storage_dir: Path) -> None:
    lab = make_lab(storage_dir)
    bad = Frame(n=-1)
    with pytest.raises(LabError) as raised:
        run(lab, [bad, Frame(n=2)])

    assert str(bad) in str(raised.value.failures[bad])
    assert sorted(path.name for path in storage_dir.iterdir()) == sorted([".gitignore", Frame(n=2).cache_key])
    assert lab.is_cached(bad) is False


# --- caching nothing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("runner_backend", ["serial", "thread"])
def test_lab_without_storage_caches_nothing_and_accepts_unpicklable_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner_backend: str
) -> None:
    monkeypatch.chdir(tmp_path)
    lab = make_lab(None, runner_backend=runner_backend)
    holder = Unpicklable(kind="lock")
    user = UsesLock(holder=holder)

    first = run(lab, [holder, user])
    second = run(lab, [holder, user])

    assert isinstance(first[holder], type(threading.Lock()))
    assert first[user] is False and second[user] is False
    assert first[holder] is not second[holder]
    assert lab.context["runs"].count(holder) == 2
    assert lab.context["runs"].count(user) == 2
    assert lab.is_cached(holder) is False
    assert lab.cached_tasks([Unpicklable, UsesLock]) == []
    assert list(tmp_path.iterdir()) == []


def test_null_cache_task_runs_every_time_and_writes_nothing(storage_dir: Path) -> None:
    lab = make_lab(storage_dir)
    assert run(lab, [Factory(size=3)]) == {Factory(size=3): [0, 1, 2]}
    assert run(lab, [Factory(size=3)]) == {Factory(size=3): [0, 1, 2]}

    assert lab.context["runs"] == [Factory(size=3), Factory(size=3)]
    assert Factory(size=3).cache_key == "null"
    assert [path.name for path in storage_dir.iterdir()] == [".gitignore"]
    assert lab.cached_tasks([Factory]) == []
    lab.uncache_tasks([Factory(size=3)])


def test_null_cache_refuses_to_load(storage_dir: Path) -> None:
    cache = NullCache()
    storage = LocalStorage(storage_dir)
    with pytest.raises(CacheError) as raised:
        cache.load_result_with_meta(storage, Factory(size=1))
    assert str(raised.value) == "Loading a result from a NullCache is not supported."
    with pytest.raises(TaskNotFound):
        cache.load_task(storage, Factory, "pickle__Factory__0")
    assert cache.is_cached(storage, Factory(size=1)) is False


# --- a storage written by labtech 1.1.0 ------------------------------------------------------------------

EXPECTED_ENTRIES: list[dict[str, Any]] = json.loads((FIXTURES_DIR / "labtech_1_1_0_expected.json").read_text())
FIXTURE_QUALNAMES = [
    "Base",
    "Versioned",
    "WithEnum",
    "WithCollections",
    "DependsOnBase",
    "DependsOnVersioned",
    "Aggregate",
    "UsesFactory",
    "Exp",
    "ExpOld",
    "ArrayResult",
    "Outer.Inner",
    "TaskIndex",
]


@pytest.fixture
def fixture_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(FIXTURES_DIR))
    return importlib.import_module("labtech_fixture_tasks")


@pytest.fixture
def fixture_storage(tmp_path: Path) -> Path:
    copy = tmp_path / "labtech_storage"
    shutil.copytree(FIXTURES_DIR / "labtech_1_1_0_storage", copy)
    return copy


def fixture_type(module: ModuleType, qualname: str) -> type:
    return functools.reduce(getattr, qualname.split("."), module)  # type: ignore[arg-type]


def assert_matches_labtech_result(value: Any, expected: dict[str, Any]) -> None:
    if expected["kind"] == "json":
        assert value == expected["value"]
    elif expected["kind"] == "ndarray":
        assert isinstance(value, np.ndarray)
        assert str(value.dtype) == expected["dtype"]
        assert list(value.shape) == expected["shape"]
        assert value.tolist() == expected["values"]
    else:
        assert expected["kind"] == "task_keyed_dict"
        serializer = Serializer()
        assert [(key.cache_key, serializer.serialize_task(key), item) for key, item in value.items()] == [
            (entry["key_cache_key"], entry["key_serialized_task"], entry["value"]) for entry in expected["items"]
        ]


def test_labtech_storage_lists_every_entry(fixture_module: ModuleType, fixture_storage: Path) -> None:
    lab = make_lab(fixture_storage)
    listed = lab.cached_tasks([fixture_type(fixture_module, name) for name in FIXTURE_QUALNAMES])

    by_key = {task.cache_key: task for task in listed}
    assert len(listed) == len(by_key) == len(EXPECTED_ENTRIES)
    assert set(by_key) == {entry["cache_key"] for entry in EXPECTED_ENTRIES}
    for entry in EXPECTED_ENTRIES:
        task = by_key[entry["cache_key"]]
        assert type(task) is fixture_type(fixture_module, entry["qualname"])
        assert Serializer().serialize_task(task) == entry["serialized_task"]
        assert task.code_version == entry["code_version"]
        metadata = json.loads((fixture_storage / entry["cache_key"] / "metadata.json").read_text())
        assert task.result_meta is not None
        assert task.result_meta.start == datetime.fromisoformat(metadata["start_timestamp"])


@pytest.mark.parametrize("qualname", FIXTURE_QUALNAMES)
def test_labtech_storage_lists_exactly_the_entries_of_each_type(
    fixture_module: ModuleType, fixture_storage: Path, qualname: str
) -> None:
    lab = make_lab(fixture_storage)
    listed = lab.cached_tasks([fixture_type(fixture_module, qualname)])
    expected_keys = sorted(entry["cache_key"] for entry in EXPECTED_ENTRIES if entry["qualname"] == qualname)
    assert [task.cache_key for task in listed] == expected_keys


def test_labtech_storage_exp_does_not_list_exp_old(fixture_module: ModuleType, fixture_storage: Path) -> None:
    lab = make_lab(fixture_storage)
    listed = lab.cached_tasks([fixture_module.Exp])
    assert sorted(listed) == [fixture_module.Exp(x=1), fixture_module.Exp(x=2)]
    assert all(type(task) is fixture_module.Exp for task in listed)


def test_labtech_storage_results_load_equal_to_labtech_results(fixture_module: ModuleType, fixture_storage: Path) -> None:
    metadata_before = {path.parent.name: path.read_bytes() for path in fixture_storage.glob("*/metadata.json")}
    lab = make_lab(fixture_storage)
    listed = lab.cached_tasks([fixture_type(fixture_module, name) for name in FIXTURE_QUALNAMES])

    results = run(lab, listed)

    by_key = {task.cache_key: value for task, value in results.items()}
    for entry in EXPECTED_ENTRIES:
        assert_matches_labtech_result(by_key[entry["cache_key"]], entry["result"])
    assert {path.parent.name: path.read_bytes() for path in fixture_storage.glob("*/metadata.json")} == metadata_before


def test_labtech_task_keyed_result_has_usable_task_keys(fixture_module: ModuleType, fixture_storage: Path) -> None:
    base = fixture_module.Base
    task = fixture_module.TaskIndex(parts=[base(seed=1), base(seed=3)])
    lab = make_lab(fixture_storage)
    assert lab.is_cached(task) is True

    result = run(lab, [task])[task]

    assert result == {base(seed=1): 1.0, base(seed=3): 3.0}
    assert result[base(seed=3)] == 3.0
    assert all(type(key) is base for key in result)


def test_labtech_entries_are_found_for_newly_built_tasks(fixture_module: ModuleType, fixture_storage: Path) -> None:
    tasks = fixture_module
    lab = make_lab(fixture_storage)
    fresh = [
        tasks.Base(seed=1),
        tasks.Base(seed=2, scale=2, label="caf\u00e9 \u2615", flag=True, extra=7),
        tasks.Versioned(n=1),
        tasks.WithEnum(color=tasks.Color.GREEN, n=5),
        tasks.WithCollections(items=[1, 2, 3], options={"b": 1, "a": {"x": [1, 2], "y": None}}),
        tasks.DependsOnBase(base=tasks.Base(seed=1), offset=10),
        tasks.Outer.Inner(k=1),
    ]
    expected_keys = {entry["cache_key"] for entry in EXPECTED_ENTRIES}

    assert all(task.cache_key in expected_keys for task in fresh)
    assert all(lab.is_cached(task) for task in fresh)
    results = run(lab, fresh)
    assert results[tasks.DependsOnBase(base=tasks.Base(seed=1), offset=10)] == 11.0
    assert results[tasks.Outer.Inner(k=1)] == 101
