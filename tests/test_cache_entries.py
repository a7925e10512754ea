"""`CacheEntries` / `Lab.cache_entries`: listing cache entries without loading results.

Task types live in modules written to ``tmp_path`` so a test can change a type's code_version (stale
entries) or delete a type or its module (orphaned entries) after its entries were written.
"""

from __future__ import annotations

import functools
import importlib
import json
import pickle
import shutil
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import labtech_nb as labtech
from labtech_nb import cache as labtech_cache
from labtech_nb.cache import PickleCache
from labtech_nb.cache_entries import CacheEntries, CacheEntry, delete_entries
from labtech_nb.exceptions import LabError, LabtechError
from labtech_nb.storage import LocalStorage
from tests.support.storage import FailingDeleteStorage, TaskModules, entry_files_size, listing

FIXTURES_DIR = Path(__file__).parent / "fixtures"

# --- helpers ---------------------------------------------------------------------------------------


MAIN_SOURCE = """
import labtech_nb as labtech

@labtech.task
class Alpha:
    n: int
    label: str = "a"

    def run(self):
        return list(range(self.n * 50))

@labtech.task(code_version="{beta_version}")
class Beta:
    alpha: Alpha
    factor: float = 1.0

    def run(self):
        return sum(self.alpha.result) * self.factor
{delta}
"""

DELTA_SOURCE = """
@labtech.task
class Delta:
    k: int

    def run(self):
        return -self.k
"""

GONE_SOURCE = """
import labtech_nb as labtech

@labtech.task
class Gamma:
    x: int

    def run(self):
        return {"x": self.x}
"""


def main_source(beta_version: str, *, with_delta: bool) -> str:
    return MAIN_SOURCE.format(beta_version=beta_version, delta=DELTA_SOURCE if with_delta else "")


def read_metadata(storage_dir: Path, key: str) -> dict[str, Any]:
    return json.loads((storage_dir / key / "metadata.json").read_text())


@dataclass
class MixedStorage:
    """A storage holding current, stale, orphaned and corrupted entries of several types."""

    lab: labtech.Lab
    storage_dir: Path
    main: ModuleType
    main_name: str
    gone_name: str
    alpha: dict[str, str]
    beta: dict[str, str]
    gamma: list[str]
    delta: list[str]
    corrupted: str

    @property
    def all_keys(self) -> set[str]:
        return {*self.alpha.values(), *self.beta.values(), *self.gamma, *self.delta}


@pytest.fixture
def mixed(tmp_path: Path, task_modules: TaskModules) -> MixedStorage:
    suffix = uuid.uuid4().hex[:8]
    main_name, gone_name = f"entries_main_{suffix}", f"entries_gone_{suffix}"
    main = task_modules.write(main_name, main_source("v1", with_delta=True))
    gone = task_modules.write(gone_name, GONE_SOURCE)
    storage_dir = tmp_path / "storage"
    lab = labtech.Lab(storage=storage_dir, runner_backend="serial", notebook=False)

    alphas = {"one": main.Alpha(n=1, label="one"), "two": main.Alpha(n=2, label="two"), "zebra": main.Alpha(n=3, label="Zebra")}
    betas = {"half": main.Beta(alpha=alphas["two"], factor=0.5), "double": main.Beta(alpha=alphas["zebra"], factor=2.0)}
    gammas = [gone.Gamma(x=7), gone.Gamma(x=8)]
    deltas = [main.Delta(k=4)]
    lab.run_tasks([*alphas.values(), *betas.values(), *gammas, *deltas], disable_progress=True, disable_top=True)
    keys = {
        "alpha": {name: task.cache_key for name, task in alphas.items()},
        "beta": {name: task.cache_key for name, task in betas.items()},
        "gamma": [task.cache_key for task in gammas],
        "delta": [task.cache_key for task in deltas],
    }

    # Beta's code changes (its entries become stale); Delta is deleted from the module and the
    # whole Gamma module is deleted (their entries become orphaned).
    main = task_modules.write(main_name, main_source("v2", with_delta=False))
    task_modules.remove(gone_name)
    # One entry's metadata is truncated; another records an mlflow run.
    corrupted = keys["alpha"]["one"]
    metadata_path = storage_dir / corrupted / "metadata.json"
    metadata_path.write_text(metadata_path.read_text()[:40])
    with_mlflow = read_metadata(storage_dir, keys["alpha"]["two"])
    with_mlflow["mlflow_run_id"] = "0f1e2d3c4b5a"
    (storage_dir / keys["alpha"]["two"] / "metadata.json").write_text(json.dumps(with_mlflow, indent=2))
    return MixedStorage(lab, storage_dir, main, main_name, gone_name, corrupted=corrupted, **keys)


# --- one row per entry ------------------------------------------------------------------------------


def test_lists_one_row_per_entry_in_key_order(mixed: MixedStorage) -> None:
    entries = mixed.lab.cache_entries()

    assert isinstance(entries, CacheEntries)
    assert len(entries) == 8
    assert [entry.key for entry in entries] == sorted(listing(mixed.storage_dir))
    assert set(entries.keys) == mixed.all_keys
    assert entries.type_names() == ["Alpha", "Beta", "Delta", "Gamma"]
    assert entries[0].key == sorted(mixed.all_keys)[0]
    assert [entry.key for entry in entries[2:4]] == sorted(mixed.all_keys)[2:4]


def test_a_current_entry_is_fully_described(mixed: MixedStorage) -> None:
    key = mixed.alpha["zebra"]
    metadata = read_metadata(mixed.storage_dir, key)

    entry = mixed.lab.cache_entries().describe(key)

    assert entry.key == key
    assert entry.task_type == "Alpha"
    assert entry.module == mixed.main_name
    assert entry.parameters == {"n": 3, "label": "Zebra"}
    assert entry.code_version is None and entry.current_code_version is None
    assert entry.stale is False
    assert entry.importable is True and entry.orphaned is False
    assert entry.start == datetime.fromisoformat(metadata["start_timestamp"])
    assert entry.duration == metadata["duration_seconds"]
    assert entry.duration is not None and entry.duration >= 0
    assert entry.size == entry_files_size(mixed.storage_dir / key)
    assert entry.size > 400  # data.pickle of a 150-element list plus the metadata
    assert entry.mlflow_run_id is None
    assert entry.cache_class == "PickleCache"
    assert entry.error is None


def test_every_row_has_the_columns_of_its_metadata(mixed: MixedStorage) -> None:
    for entry in mixed.lab.cache_entries():
        assert entry.size == entry_files_size(mixed.storage_dir / entry.key), entry.key
        if entry.key == mixed.corrupted:
            continue
        metadata = read_metadata(mixed.storage_dir, entry.key)
        stored = metadata["task"]
        assert entry.parameters == {name: value for name, value in stored.items() if not name.startswith("_")}
        assert entry.code_version == stored.get("_code_version")
        assert entry.start == datetime.fromisoformat(metadata["start_timestamp"])
        assert entry.duration == metadata["duration_seconds"]


def test_nested_tasks_appear_as_serialized_parameters(mixed: MixedStorage) -> None:
    entry = mixed.lab.cache_entries().describe(mixed.beta["half"])

    assert entry.task_type == "Beta"
    assert entry.parameters == {
        "alpha": {"_is_task": True, "__class__": f"{mixed.main_name}.Alpha", "n": 2, "label": "two"},
        "factor": 0.5,
    }


def test_mlflow_run_id_recorded_in_metadata_appears(mixed: MixedStorage) -> None:
    entries = mixed.lab.cache_entries()

    assert entries.describe(mixed.alpha["two"]).mlflow_run_id == "0f1e2d3c4b5a"
    assert [entry.key for entry in entries if entry.mlflow_run_id is not None] == [mixed.alpha["two"]]


def test_entries_of_a_type_whose_code_version_changed_are_stale(mixed: MixedStorage) -> None:
    entries = mixed.lab.cache_entries()

    stale = [entry for entry in entries if entry.stale]
    assert {entry.key for entry in stale} == set(mixed.beta.values())
    for entry in stale:
        assert entry.code_version == "v1"
        assert entry.current_code_version == "v2"
        assert entry.importable is True
        assert entry.orphaned is False


def test_entries_whose_class_or_module_is_gone_are_orphaned(mixed: MixedStorage) -> None:
    entries = mixed.lab.cache_entries()

    orphaned = {entry.key for entry in entries if entry.orphaned}
    assert orphaned == {*mixed.gamma, *mixed.delta, mixed.corrupted}
    for key in [*mixed.gamma, *mixed.delta]:
        entry = entries.describe(key)
        assert entry.importable is False
        assert entry.stale is False
        assert entry.error is not None
        # Everything the metadata says is still listed.
        assert entry.parameters in ({"x": 7}, {"x": 8}, {"k": 4})
        assert entry.start is not None
        assert entry.size == entry_files_size(mixed.storage_dir / key)
    assert entries.describe(mixed.gamma[0]).task_type == "Gamma"
    assert entries.describe(mixed.gamma[0]).module == mixed.gone_name
    assert mixed.gone_name in (entries.describe(mixed.gamma[0]).error or "")
    assert "Delta" in (entries.describe(mixed.delta[0]).error or "")


def test_a_corrupted_metadata_entry_is_listed_with_its_error(mixed: MixedStorage) -> None:
    entries = mixed.lab.cache_entries()

    entry = entries.describe(mixed.corrupted)
    assert entry.task_type == "Alpha"  # from the key
    assert entry.error is not None and "metadata" in entry.error
    assert entry.importable is False and entry.orphaned is True
    assert entry.parameters == {}
    assert entry.start is None and entry.duration is None
    assert entry.size == entry_files_size(mixed.storage_dir / mixed.corrupted)
    # The other entries are unaffected.
    assert entries.describe(mixed.alpha["zebra"]).error is None


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "empty metadata": lambda entry: (entry / "metadata.json").write_text(""),
    "binary garbage": lambda entry: (entry / "metadata.json").write_bytes(b"\xff\xfe\x00garbage"),
    "missing metadata": lambda entry: (entry / "metadata.json").unlink(),
    "not an object": lambda entry: (entry / "metadata.json").write_text("[1, 2]"),
    "no task": lambda entry: (entry / "metadata.json").write_text('{"cache": "PickleCache"}'),
    "null task": lambda entry: (entry / "metadata.json").write_text('{"task": null}'),
    "task without class": lambda entry: (entry / "metadata.json").write_text('{"task": {"n": 1}}'),
    "null class": lambda entry: (entry / "metadata.json").write_text('{"task": {"__class__": null, "n": 1}}'),
    "numeric class": lambda entry: (entry / "metadata.json").write_text('{"task": {"__class__": 5, "n": 1}}'),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_any_corrupted_metadata_is_listed_not_raised(mixed: MixedStorage, corruption: str) -> None:
    key = mixed.alpha["zebra"]
    CORRUPTIONS[corruption](mixed.storage_dir / key)

    entries = mixed.lab.cache_entries()
    described = list(entries)  # must not raise

    assert len(described) == 8
    entry = entries.describe(key)
    assert entry.error is not None
    assert entry.orphaned is True
    assert entry.task_type == "Alpha"
    with pytest.raises(LabtechError, match=key):
        entries.rebuild_task(key)


def test_a_task_module_that_fails_to_import_makes_its_entries_orphaned(mixed: MixedStorage, task_modules: TaskModules) -> None:
    # Mid-edit, the module has a syntax error: the listing must still open.
    (task_modules.directory / f"{mixed.main_name}.py").write_text("import labtech_nb as labtech\n\nclass Alpha(:\n")
    sys.modules.pop(mixed.main_name, None)
    importlib.invalidate_caches()

    entries = mixed.lab.cache_entries()
    described = {entry.key: entry for entry in entries}

    assert len(described) == 8
    for key in [*mixed.beta.values(), mixed.alpha["zebra"]]:
        assert described[key].importable is False
        assert "SyntaxError" in (described[key].error or "")


# --- results are never loaded --------------------------------------------------------------------------


def test_listing_never_loads_a_result(mixed: MixedStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a result was loaded for a listing")

    monkeypatch.setattr(PickleCache, "load_result", refuse)
    monkeypatch.setattr(PickleCache, "load_result_with_meta", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(labtech_cache._CompatibleUnpickler, "load", refuse)
    opened: list[tuple[str, str]] = []
    storage = mixed.lab.storage

    def recording(method: str) -> None:
        original = getattr(storage, method)

        def record(key: str, filename: str, *args: Any, **kwargs: Any) -> Any:
            opened.append((key, filename))
            return original(key, filename, *args, **kwargs)

        monkeypatch.setattr(storage, method, record)

    for method in ("file_handle", "read_bytes", "read_tail"):  # every way the storage reads a file
        recording(method)
    # Even garbage result files do not matter to a listing.
    for key in mixed.all_keys:
        (mixed.storage_dir / key / "data.pickle").write_bytes(b"not a pickle at all")

    entries = mixed.lab.cache_entries()
    rows = list(entries)
    matches = entries.filter(text="zebra")

    assert len(rows) == 8
    assert {entry.key for entry in matches} == {mixed.alpha["zebra"], mixed.beta["double"]}
    assert all(row.size == entry_files_size(mixed.storage_dir / row.key) for row in rows)
    assert opened and {filename for _key, filename in opened} == {"metadata.json"}
    assert sorted(key for key, _filename in opened) == sorted(mixed.all_keys)


# --- laziness -------------------------------------------------------------------------------------------


def write_raw_entries(storage_dir: Path, count: int) -> list[str]:
    """Quickly write ``count`` labtech-format entries of a type that does not import."""
    storage_dir.mkdir(parents=True, exist_ok=True)
    keys = []
    for index in range(count):
        key = f"pickle__Bulk__{index:040x}"
        (storage_dir / key).mkdir()
        metadata = {
            "labtech_version": "1.1.0",
            "cache": "PickleCache",
            "cache_key": key,
            "task": {"_is_task": True, "__class__": "bulk_tasks_not_importable.Bulk", "i": index},
            "start_timestamp": "2024-05-01T12:00:00",
            "duration_seconds": 0.5,
        }
        (storage_dir / key / "metadata.json").write_text(json.dumps(metadata))
        (storage_dir / key / "data.pickle").write_bytes(pickle.dumps(index))
        keys.append(key)
    return keys


class CountingStorage(LocalStorage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened: list[tuple[str, str]] = []

    def file_handle(self, key: str, filename: str, *, mode: str = "r") -> Any:
        self.opened.append((key, filename))
        return super().file_handle(key, filename, mode=mode)


def test_describing_the_first_page_reads_only_that_page(tmp_path: Path) -> None:
    keys = write_raw_entries(tmp_path / "bulk", 2000)
    storage = CountingStorage(tmp_path / "bulk")
    lab = labtech.Lab(storage=storage, runner_backend="serial", notebook=False)

    entries = lab.cache_entries()
    assert len(entries) == 2000
    assert entries.type_names() == ["Bulk"]
    assert storage.opened == []

    first_page = entries[:50]
    assert [entry.key for entry in first_page] == keys[:50]
    assert [entry.parameters for entry in first_page] == [{"i": index} for index in range(50)]
    assert len(storage.opened) == 50
    assert {key for key, _filename in storage.opened} == set(keys[:50])

    # Described entries are kept: looking again reads nothing.
    assert entries[10].parameters == {"i": 10}
    list(entries[:50])
    assert len(storage.opened) == 50
    assert entries[-1].parameters == {"i": 1999}
    assert len(storage.opened) == 51


# --- filter ---------------------------------------------------------------------------------------------


def test_filter_by_task_type(mixed: MixedStorage) -> None:
    entries = mixed.lab.cache_entries()

    assert {entry.key for entry in entries.filter(task_type="Alpha")} == set(mixed.alpha.values())
    assert {entry.key for entry in entries.filter(task_type="Beta")} == set(mixed.beta.values())
    assert {entry.key for entry in entries.filter(task_type="Gamma")} == set(mixed.gamma)
    assert entries.filter(task_type="Nope") == []
    assert {entry.key for entry in entries.filter()} == mixed.all_keys


def test_filter_by_text_searches_keys_types_and_parameters(mixed: MixedStorage) -> None:
    entries = mixed.lab.cache_entries()

    # Parameters, nested ones included, case-insensitively.
    assert {entry.key for entry in entries.filter(text="ZEBRA")} == {mixed.alpha["zebra"], mixed.beta["double"]}
    assert {entry.key for entry in entries.filter(text="0.5")} == {mixed.beta["half"]}
    # Type names.
    assert {entry.key for entry in entries.filter(text="gamma")} == set(mixed.gamma)
    # Keys.
    key = mixed.delta[0]
    assert [entry.key for entry in entries.filter(text=key[-12:])] == [key]
    # Blank text matches everything; unmatched text nothing.
    assert len(entries.filter(text="   ")) == 8
    assert entries.filter(text="no such thing") == []


def test_filter_by_type_and_text_together(mixed: MixedStorage) -> None:
    entries = mixed.lab.cache_entries()

    assert [entry.key for entry in entries.filter(task_type="Beta", text="zebra")] == [mixed.beta["double"]]
    assert entries.filter(task_type="Gamma", text="zebra") == []


def test_cache_entries_of_given_task_types(mixed: MixedStorage) -> None:
    entries = mixed.lab.cache_entries([mixed.main.Beta])

    assert set(entries.keys) == set(mixed.beta.values())
    assert entries.type_names() == ["Beta"]
    with pytest.raises(LabError, match="not a task type"):
        mixed.lab.cache_entries([int])


# --- rebuild_task ---------------------------------------------------------------------------------------


def test_rebuild_task_of_a_current_entry(mixed: MixedStorage) -> None:
    entries = mixed.lab.cache_entries()
    metadata = read_metadata(mixed.storage_dir, mixed.alpha["zebra"])

    task = entries.rebuild_task(mixed.alpha["zebra"])

    assert task == mixed.main.Alpha(n=3, label="Zebra")
    assert task.cache_key == mixed.alpha["zebra"]
    assert task.result_meta.start == datetime.fromisoformat(metadata["start_timestamp"])
    assert mixed.lab.run_task(task) == list(range(150))


def test_rebuild_task_of_a_stale_entry_keeps_its_stored_code_version(mixed: MixedStorage) -> None:
    task = mixed.lab.cache_entries().rebuild_task(mixed.beta["double"])

    assert type(task) is mixed.main.Beta
    assert task.code_version == "v1"
    assert task.current_code_version == "v2"
    assert task.alpha == mixed.main.Alpha(n=3, label="Zebra")
    assert task.cache_key == mixed.beta["double"]


@pytest.mark.parametrize("which", ["orphaned", "corrupted"])
def test_rebuild_task_of_an_unusable_entry_raises(mixed: MixedStorage, which: str) -> None:
    key = mixed.gamma[0] if which == "orphaned" else mixed.corrupted

    with pytest.raises(LabtechError, match=key):
        mixed.lab.cache_entries().rebuild_task(key)


# --- delete_entries -------------------------------------------------------------------------------------


def test_delete_entries_removes_exactly_the_given_keys(mixed: MixedStorage) -> None:
    doomed = [mixed.beta["half"], mixed.gamma[1], mixed.corrupted]
    before = listing(mixed.storage_dir)

    outcome = delete_entries(mixed.lab.storage, doomed)

    assert outcome == {key: None for key in doomed}
    assert listing(mixed.storage_dir) == before - set(doomed)
    assert set(mixed.lab.cache_entries().keys) == mixed.all_keys - set(doomed)


def test_delete_entries_reports_each_failure_and_goes_on(mixed: MixedStorage) -> None:
    failing = mixed.beta["double"]
    storage = FailingDeleteStorage(mixed.storage_dir, failing=failing)
    doomed = [mixed.alpha["two"], failing, mixed.gamma[0]]
    before = listing(mixed.storage_dir)

    outcome = delete_entries(storage, iter(doomed))

    assert list(outcome) == doomed
    assert outcome[mixed.alpha["two"]] is None
    assert outcome[mixed.gamma[0]] is None
    assert outcome[failing] == f"PermissionError: cannot remove {failing}: read-only"
    assert listing(mixed.storage_dir) == before - {mixed.alpha["two"], mixed.gamma[0]}


def test_delete_entries_of_nothing_deletes_nothing(mixed: MixedStorage) -> None:
    before = listing(mixed.storage_dir)

    assert delete_entries(mixed.lab.storage, []) == {}
    assert listing(mixed.storage_dir) == before


# --- a storage written by labtech 1.1.0 -----------------------------------------------------------------

EXPECTED_ENTRIES: list[dict[str, Any]] = json.loads((FIXTURES_DIR / "labtech_1_1_0_expected.json").read_text())


@pytest.fixture
def labtech_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[labtech.Lab, Path, ModuleType]:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(FIXTURES_DIR))
    module = importlib.import_module("labtech_fixture_tasks")
    copy = tmp_path / "labtech_storage"
    shutil.copytree(FIXTURES_DIR / "labtech_1_1_0_storage", copy)
    return labtech.Lab(storage=copy, runner_backend="serial", notebook=False), copy, module


def test_lists_a_storage_written_by_labtech(labtech_storage: tuple[labtech.Lab, Path, ModuleType]) -> None:
    lab, storage_dir, _module = labtech_storage
    entries = lab.cache_entries()

    assert len(entries) == len(EXPECTED_ENTRIES) == 21
    assert set(entries.keys) == {expected["cache_key"] for expected in EXPECTED_ENTRIES}
    for expected in EXPECTED_ENTRIES:
        key = expected["cache_key"]
        metadata = read_metadata(storage_dir, key)
        entry = entries.describe(key)
        assert entry.error is None, key
        assert entry.task_type == expected["qualname"]
        assert entry.module == expected["module"]
        assert entry.parameters == {
            name: value
            for name, value in expected["serialized_task"].items()
            if name not in ("_is_task", "__class__", "_code_version")
        }
        assert entry.code_version == expected["code_version"]
        assert entry.current_code_version == expected["code_version"]
        assert entry.stale is False
        assert entry.importable is True
        assert entry.start == datetime.fromisoformat(metadata["start_timestamp"])
        assert entry.duration == metadata["duration_seconds"]
        assert entry.size == entry_files_size(storage_dir / key)
        assert entry.mlflow_run_id is None
        assert entry.cache_class == "PickleCache"


def test_labtech_entries_rebuild_to_their_tasks(labtech_storage: tuple[labtech.Lab, Path, ModuleType]) -> None:
    lab, _storage_dir, _module = labtech_storage
    entries = lab.cache_entries()

    for expected in EXPECTED_ENTRIES:
        task = entries.rebuild_task(expected["cache_key"])
        assert repr(task) == expected["task_repr"]
        assert task.cache_key == expected["cache_key"]


def test_labtech_types_filter_by_exact_type_not_by_key_prefix(labtech_storage: tuple[labtech.Lab, Path, ModuleType]) -> None:
    lab, _storage_dir, module = labtech_storage
    entries = lab.cache_entries()
    exp_keys = {expected["cache_key"] for expected in EXPECTED_ENTRIES if expected["qualname"] == "Exp"}
    inner_keys = {expected["cache_key"] for expected in EXPECTED_ENTRIES if expected["qualname"] == "Outer.Inner"}

    assert len(exp_keys) == 2 and len(inner_keys) == 1
    assert {entry.key for entry in entries.filter(task_type="Exp")} == exp_keys
    assert {entry.key for entry in entries.filter(task_type="Outer.Inner")} == inner_keys
    assert "Outer.Inner" in entries.type_names()
    assert set(lab.cache_entries([module.Exp]).keys) == exp_keys
    inner_type = functools.reduce(getattr, ["Outer", "Inner"], module)
    assert set(lab.cache_entries([inner_type]).keys) == inner_keys


def test_labtech_entry_with_mlflow_run_id(labtech_storage: tuple[labtech.Lab, Path, ModuleType]) -> None:
    lab, storage_dir, _module = labtech_storage
    key = next(expected["cache_key"] for expected in EXPECTED_ENTRIES if expected["qualname"] == "Versioned")
    metadata = read_metadata(storage_dir, key)
    metadata["mlflow_run_id"] = "run-42"
    (storage_dir / key / "metadata.json").write_text(json.dumps(metadata, indent=2))

    entries = lab.cache_entries()

    assert entries.describe(key).mlflow_run_id == "run-42"
    assert entries.describe(key).size == entry_files_size(storage_dir / key)
    assert sum(1 for entry in entries if entry.mlflow_run_id) == 1


def test_cache_entry_sort_values_never_compare_none_with_values() -> None:
    rows = [
        CacheEntry(key="b", task_type="T", duration=2.0, start=datetime(2024, 1, 2)),
        CacheEntry(key="a", task_type="T"),
        CacheEntry(key="c", task_type="T", duration=1.0, start=datetime(2024, 1, 1)),
    ]
    for column in ("key", "task_type", "parameters", "code_version", "stale", "start", "duration", "size", "importable"):
        sorted(rows, key=lambda row, column=column: row.sort_value(column))  # must not raise
    assert [row.key for row in sorted(rows, key=lambda row: row.sort_value("duration"))] == ["c", "b", "a"]
    assert [row.key for row in sorted(rows, key=lambda row: row.sort_value("start"))] == ["c", "b", "a"]


def test_size_counts_every_file_of_the_entry(tmp_path: Path) -> None:
    keys = write_raw_entries(tmp_path / "few", 2)
    entry_dir = tmp_path / "few" / keys[1]
    (entry_dir / "extra.bin").write_bytes(b"x" * 5000)
    expected = 5000 + (entry_dir / "metadata.json").stat().st_size + (entry_dir / "data.pickle").stat().st_size

    entries = CacheEntries(LocalStorage(tmp_path / "few"))

    assert entries.describe(keys[1]).size == expected
    assert entries.describe(keys[0]).size == entry_files_size(tmp_path / "few" / keys[0])
