"""Two lab processes write overlapping tasks to one LocalStorage at once while this process lists it.

Each process runs its 60 tasks (30 shared with the other) and then runs them again with
``bust_cache=True``, so every shared entry is written up to four times, twice as a replacement,
while this process lists the storage as fast as it can.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import labtech_nb as labtech
from labtech_nb.exceptions import CacheEntryUnreadable
from labtech_nb.storage import LocalStorage
from labtech_nb.types import ResultMeta, TaskResult
from tests.reliability.helpers import FIGURES, finish, lab_process, last_json_line, raw_names, read_pickle_entry
from tests.reliability.rel_tasks import Cell, cell_value, execution_count

FIRST = (0, 59)
SECOND = (30, 89)


def _vanished(error: str | None) -> bool:
    """An entry listed a moment ago whose directory is gone now (another writer was replacing it)."""
    return error is not None and error.startswith("unreadable metadata: FileNotFoundError")


def test_overlapping_writers_leave_every_entry_whole_and_listings_never_show_a_partial_one(tmp_path: Path) -> None:
    storage_dir, go = tmp_path / "storage", tmp_path / "go"
    LocalStorage(storage_dir)
    markers = [tmp_path / "markers-a", tmp_path / "markers-b"]
    for path in markers:
        path.mkdir()
    processes = [
        lab_process(tmp_path / "logs", "concurrent", str(storage_dir), str(marker), str(go), str(first), str(last), "fork")
        for marker, (first, last) in zip(markers, (FIRST, SECOND), strict=True)
    ]
    lab = labtech.Lab(storage=storage_dir, runner_backend="serial")
    cache = Cell._lt_options.cache
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("go.ready-*"))) < 2:
        assert all(process.poll() is None for process, _ in processes), "a lab process ended early"
        assert time.monotonic() < deadline, "the lab processes never got ready"
        time.sleep(0.01)

    go.touch()
    listings = loads = vanished = 0
    rng = random.Random(0)
    while any(process.poll() is None for process, _ in processes) and time.monotonic() < deadline + 60:
        listed = lab.cached_tasks([Cell])
        assert all(type(task) is Cell and 0 <= task.i <= 89 and task.result_meta is not None for task in listed)
        for entry in lab.cache_entries():
            if entry.error is None:
                assert (entry.task_type, entry.cache_class, set(entry.parameters)) == ("Cell", "PickleCache", {"i"})
                assert entry.start is not None and entry.duration is not None
            else:
                assert _vanished(entry.error), entry.error
                vanished += 1
        for task in rng.sample(listed, min(5, len(listed))):
            try:
                loaded = cache.load_result_with_meta(lab.storage, task)
            except CacheEntryUnreadable as error:
                assert isinstance(error.__cause__, FileNotFoundError) or "FileNotFoundError" in str(error), error
                vanished += 1
            else:
                assert loaded.value == cell_value(task.i)
                loads += 1
        listings += 1

    outcomes = [finish(process, watch, timeout=30) for process, watch in processes]
    for (code, out, err, survivors), (first, last) in zip(outcomes, (FIRST, SECOND), strict=True):
        assert code == 0, err
        assert survivors == []
        assert last_json_line(out) == {"False": list(range(first, last + 1)), "True": list(range(first, last + 1))}
    assert listings >= 3, "the writers finished before the storage could be listed during their writes"

    # Every entry is whole and right, and nothing hidden is left behind.
    keys = {Cell(i).cache_key: i for i in range(90)}
    assert raw_names(storage_dir) == set(keys)
    for key, i in keys.items():
        metadata, value = read_pickle_entry(storage_dir, key)
        assert value == cell_value(i)
        assert metadata["task"] == {"_is_task": True, "__class__": "tests.reliability.rel_tasks.Cell", "i": i}
    # ...and a third run loads all 90 without running any.
    reader_markers = tmp_path / "markers-c"
    reader_markers.mkdir()
    reader = labtech.Lab(storage=storage_dir, runner_backend="fork", max_workers=2, context={"marker_dir": str(reader_markers)})
    assert reader.run_tasks([Cell(i) for i in range(90)]) == {Cell(i): cell_value(i) for i in range(90)}
    assert sum(execution_count(reader_markers, Cell(i)) for i in range(90)) == 0
    writes = sum(execution_count(marker, Cell(i)) for marker in markers for i in range(90))
    assert writes == 240
    FIGURES["concurrent entry writes"] += writes
    FIGURES["storage listings taken during concurrent writes"] += listings
    FIGURES["results loaded during concurrent writes"] += loads
    FIGURES["entries seen vanishing mid-replacement"] += vanished


def test_an_entry_being_replaced_stays_readable_throughout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = LocalStorage(tmp_path / "storage")
    markers = tmp_path / "markers"
    markers.mkdir()
    lab = labtech.Lab(storage=storage, runner_backend="serial", context={"marker_dir": str(markers)})
    task = Cell(1)
    lab.run_tasks([task])
    listing = lab.cache_entries()

    import labtech_nb.storage.local as local_module

    real_rename, real_remove_tree = local_module.os.rename, local_module._remove_tree
    paused, resume = threading.Event(), threading.Event()

    def pause() -> None:
        if not paused.is_set():
            paused.set()
            resume.wait(10)

    # Pause the commit at its midpoint: after the old entry was moved aside (a two-step replacement),
    # or after an atomic exchange, before the old entry is deleted.
    def rename(source: Any, destination: Any) -> None:
        real_rename(source, destination)
        if Path(destination).name.startswith(".trash-"):
            pause()

    def remove_tree(path: str) -> None:
        pause()
        real_remove_tree(path)

    monkeypatch.setattr(local_module.os, "rename", rename)
    monkeypatch.setattr(local_module, "_remove_tree", remove_tree)
    # A second writer (another process, in real life) commits a new entry for the same task.
    writer = threading.Thread(
        target=lambda: Cell._lt_options.cache.save(storage, task, TaskResult(cell_value(1), ResultMeta(None, None)))
    )
    writer.start()
    try:
        while not paused.wait(0.01):
            assert writer.is_alive(), "the replacement finished without reaching its midpoint"
        visible = storage.exists(task.cache_key)
        cached = lab.is_cached(task)
        described = listing.describe(task.cache_key)
    finally:
        resume.set()
        writer.join(10)

    assert lab.is_cached(task)
    assert (visible, cached, described.error) == (True, True, None)
