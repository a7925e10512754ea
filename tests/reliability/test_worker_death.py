"""A worker process SIGKILLed while its task runs, or halfway through writing the task's cache entry.

Each test kills at an exact point: the task (or its result's pickling, or a custom cache between
two files) stops at a gate and announces its pid; a thread of the test kills that pid. The run must
report the task as dead (naming it and the signal), finish everything else exactly once, leave no
entry for the dead task, and a later run must produce everything correctly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import labtech_nb as labtech
from labtech_nb.exceptions import DependencyFailedError, LabError, TaskDiedError
from labtech_nb.storage import LocalStorage
from tests.reliability.helpers import KillAtGate, entry_keys, raw_names, read_pickle_entry
from tests.reliability.rel_tasks import (
    BLOB,
    RELEASE,
    CustomVictim,
    Follow,
    Steady,
    Victim,
    execution_count,
    victim_value,
)

BACKENDS = ["fork", "spawn", "fork-per-task"]


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("storage", "markers", "control")}
    for path in paths.values():
        path.mkdir()
    return paths


def make_lab(storage: Any, backend: str, markers: Path) -> labtech.Lab:
    return labtech.Lab(
        storage=storage, runner_backend=backend, max_workers=1, context={"marker_dir": str(markers)}, notebook=False
    )


def error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]


@pytest.mark.parametrize("stage", ["run", "write"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkilled_worker_fails_only_its_task_and_leaves_no_entry(
    backend: str, stage: str, places: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    storage_dir, markers, control = places["storage"], places["markers"], places["control"]
    victim = Victim(control=str(control), stage=stage)
    dependent = Follow(source=victim)
    others = [Steady(i) for i in range(5)]
    other_follow = Follow(source=Steady(4))
    # With one worker the victim runs first and Steady(0) waits in the same worker's pipe: after the
    # kill, every other task has to run in a replacement worker (or a new per-task process).
    tasks = [victim, dependent, *others, other_follow]
    killer = KillAtGate(control, "running" if stage == "run" else "writing", storage_dir)
    killer.start()

    with caplog.at_level(logging.ERROR, logger="labtech_nb"), pytest.raises(LabError) as raised:
        make_lab(storage_dir, backend, markers).run_tasks(tasks)
    killer.join(timeout=10)

    assert killer.killed_pid is not None, "no process reached the gate"
    if stage == "write":
        # The kill landed halfway through the write: 2 MiB of the pickle were already staged.
        assert any(name.endswith("/data.pickle") and size >= len(BLOB) for name, size in killer.staged_files.items()), (
            killer.staged_files
        )
    error = raised.value
    assert str(error) == "Failed to complete 2 submitted task(s)"
    assert set(error.failures) == {victim, dependent}
    died = error.failures[victim]
    assert type(died) is TaskDiedError
    assert str(died) == f"Task '{victim}' died: its process was killed by signal 9 (SIGKILL)."
    assert isinstance(error.failures[dependent], DependencyFailedError)
    assert error.results == {**{task: task.i * 10 for task in others}, other_follow: "followed int"}
    assert any(line.startswith(f"Task '{victim}' failed. Skipping task. Failure cause: {died}") for line in error_lines(caplog))
    # Nothing lost and nothing repeated: jobs queued behind the dead task ran exactly once.
    assert [execution_count(markers, task) for task in [victim, dependent, *others, other_follow]] == [1, 0, 1, 1, 1, 1, 1, 1]

    lab = make_lab(storage_dir, backend, markers)
    assert victim.cache_key not in entry_keys(storage_dir)
    assert not lab.is_cached(victim)
    assert lab.cached_tasks([Victim]) == []
    assert victim.cache_key not in lab.cache_entries().keys
    assert entry_keys(storage_dir) == {task.cache_key for task in [*others, other_follow]}
    for key in entry_keys(storage_dir):
        read_pickle_entry(storage_dir, key)

    # A new run (gate open) computes the dead task and its dependent, loads the rest, and removes
    # what the killed write left behind.
    (control / RELEASE).touch()
    results = lab.run_tasks(tasks)

    expected = victim_value(stage, str(control))
    assert results[victim] == expected
    assert results[dependent] == "followed tuple"
    assert [results[task] for task in others] == [0, 10, 20, 30, 40]
    assert [execution_count(markers, task) for task in [victim, dependent, *others]] == [2, 1, 1, 1, 1, 1, 1]
    assert raw_names(storage_dir) == {task.cache_key for task in tasks}
    _metadata, stored = read_pickle_entry(storage_dir, victim.cache_key)
    assert stored == expected


def test_sigkill_between_the_files_of_a_custom_cache_leaves_no_entry(places: dict[str, Path]) -> None:
    storage_dir, markers, control = places["storage"], places["markers"], places["control"]
    victim = CustomVictim(control=str(control))
    killer = KillAtGate(control, "writing", storage_dir)
    killer.start()

    with pytest.raises(LabError) as raised:
        make_lab(storage_dir, "fork", markers).run_tasks([victim, Steady(1)])
    killer.join(timeout=10)

    assert killer.killed_pid is not None
    assert any(name.endswith("/part1.bin") for name in killer.staged_files), killer.staged_files
    assert not any(name.endswith("/part2.bin") for name in killer.staged_files)
    assert str(raised.value.failures[victim]) == f"Task '{victim}' died: its process was killed by signal 9 (SIGKILL)."
    assert raised.value.results == {Steady(1): 10}
    lab = make_lab(storage_dir, "fork", markers)
    assert entry_keys(storage_dir) == {Steady(1).cache_key}
    assert lab.cached_tasks([CustomVictim]) == []

    (control / RELEASE).touch()
    assert lab.run_tasks([victim]) == {victim: ("custom", 11)}
    assert raw_names(storage_dir) == {Steady(1).cache_key, victim.cache_key}
    assert sorted(path.name for path in (storage_dir / victim.cache_key).iterdir()) == ["metadata.json", "part1.bin", "part2.bin"]
    assert make_lab(storage_dir, "fork", markers).run_tasks([victim]) == {victim: ("custom", 11)}
    assert execution_count(markers, victim) == 2


class InPlaceLocalStorage(LocalStorage):
    """A storage written for labtech's contract: it overrides ``file_handle``, so entries are written
    in place (metadata last) instead of staged."""

    def file_handle(self, key: str, filename: str, *, mode: str = "r") -> Any:
        return super().file_handle(key, filename, mode=mode)


def test_sigkill_mid_write_to_an_in_place_storage_is_never_reported_cached_and_is_recomputed(
    places: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    storage_dir, markers, control = places["storage"], places["markers"], places["control"]
    storage = InPlaceLocalStorage(storage_dir)
    victim = Victim(control=str(control), stage="write")
    killer = KillAtGate(control, "writing")
    killer.start()

    with pytest.raises(LabError) as raised:
        make_lab(storage, "fork", markers).run_tasks([victim, Steady(2)])
    killer.join(timeout=10)

    assert killer.killed_pid is not None
    assert type(raised.value.failures[victim]) is TaskDiedError
    # Written in place, the interrupted entry's directory exists, holding a partial pickle and no metadata...
    assert sorted(path.name for path in (storage_dir / victim.cache_key).iterdir()) == ["data.pickle"]
    assert (storage_dir / victim.cache_key / "data.pickle").stat().st_size >= len(BLOB)
    # ...but it is never taken for a result.
    lab = make_lab(storage, "fork", markers)
    assert not lab.is_cached(victim)
    assert lab.cached_tasks([Victim]) == []
    described = lab.cache_entries().describe(victim.cache_key)
    assert described.error is not None and described.error.startswith("unreadable metadata")

    (control / RELEASE).touch()
    with caplog.at_level(logging.WARNING, logger="labtech_nb"):
        results = lab.run_tasks([victim, Steady(2)])

    assert results == {victim: victim_value("write", str(control)), Steady(2): 20}
    assert any(
        record.levelno == logging.WARNING and f"Cached result of task '{victim}' is unreadable" in record.getMessage()
        for record in caplog.records
    )
    assert execution_count(markers, victim) == 2
    assert execution_count(markers, Steady(2)) == 1
    _metadata, stored = read_pickle_entry(storage_dir, victim.cache_key)
    assert stored == victim_value("write", str(control))
