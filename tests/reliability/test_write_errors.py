"""The disk fills up halfway through writing a cache entry in a worker process.

The storage's file handle accepts 64 KiB of the 1 MiB pickle and then raises ENOSPC. Under every
process backend that task must fail with an error naming it and the cause, its dependents must be
skipped, everything else must finish and be cached, and nothing of the failed write may remain.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import labtech_nb as labtech
from labtech_nb.exceptions import CacheError, DependencyFailedError, LabError
from tests.reliability.helpers import FIGURES, raw_names, read_pickle_entry
from tests.reliability.rel_tasks import (
    Follow,
    FullDiskLocalStorage,
    FullDiskStagedStorage,
    Heavy,
    Steady,
    execution_count,
)

STORAGES = {"in-place": FullDiskLocalStorage, "staged": FullDiskStagedStorage}


@pytest.mark.parametrize("storage_kind", STORAGES)
@pytest.mark.parametrize("backend", ["fork", "spawn", "fork-per-task"])
def test_disk_full_mid_write_fails_that_task_clearly_and_the_run_goes_on(
    backend: str, storage_kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage_dir, markers = tmp_path / "storage", tmp_path / "markers"
    markers.mkdir()
    storage: Any = STORAGES[storage_kind](storage_dir)
    doomed = Heavy(1)
    storage.full_key = doomed.cache_key
    blocked = Follow(source=doomed)
    after = [Heavy(2), Steady(3), Follow(source=Steady(4))]

    def lab() -> labtech.Lab:
        return labtech.Lab(storage=storage, runner_backend=backend, max_workers=1, context={"marker_dir": str(markers)})

    with caplog.at_level(logging.ERROR, logger="labtech_nb"), pytest.raises(LabError) as raised:
        lab().run_tasks([doomed, blocked, *after])

    FIGURES["disk-full errors injected mid-write"] += 1
    error = raised.value
    assert str(error) == "Failed to complete 2 submitted task(s)"
    failure = error.failures[doomed]
    assert isinstance(failure, CacheError)
    assert str(failure).startswith(
        f"Task '{doomed}' ran, but its result could not be cached (OSError: [Errno 28] No space left on device)."
    )
    assert isinstance(error.failures[blocked], DependencyFailedError)
    assert error.results == {Heavy(2): bytes([2]) * 1024 * 1024, Steady(3): 30, after[2]: "followed int"}
    assert any(
        message.startswith(f"Task '{doomed}' failed. Skipping task. Failure cause: {failure}")
        for message in (record.getMessage() for record in caplog.records)
    )
    # No trace of the failed write: neither a partial entry nor a staging directory.
    expected_keys = {task.cache_key for task in [Heavy(2), Steady(3), Steady(4), after[2]]}
    assert raw_names(storage_dir) == expected_keys
    assert not lab().is_cached(doomed)
    for key in expected_keys:
        read_pickle_entry(storage_dir, key)
    assert [execution_count(markers, task) for task in [doomed, blocked, *after]] == [1, 0, 1, 1, 1]

    # With room on the disk again, a new run computes exactly the two missing tasks.
    storage.full_key = ""
    results = lab().run_tasks([doomed, blocked, *after])
    assert results[doomed] == bytes([1]) * 1024 * 1024
    assert results[blocked] == "followed bytes"
    assert [execution_count(markers, task) for task in [doomed, blocked, *after]] == [2, 1, 1, 1, 1]
    assert raw_names(storage_dir) == expected_keys | {doomed.cache_key, blocked.cache_key}
    assert read_pickle_entry(storage_dir, doomed.cache_key)[1] == bytes([1]) * 1024 * 1024
