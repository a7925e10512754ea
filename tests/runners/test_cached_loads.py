"""On the process pools, cached results load in the parent: slow loads side by side on threads."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

import labtech_nb as labtech
from tests.runners.pool_tasks import QuickLoad, RecordingLoadCache, SlowLoad

SLOW_CACHE: RecordingLoadCache = SlowLoad._lt_options.cache  # type: ignore[attr-defined]
QUICK_CACHE: RecordingLoadCache = QuickLoad._lt_options.cache  # type: ignore[attr-defined]


def _tasks() -> list[object]:
    return [*(SlowLoad(n=n) for n in range(5)), *(QuickLoad(n=n) for n in range(30))]


def _expected() -> dict[object, int]:
    return {**{SlowLoad(n=n): n * 2 for n in range(5)}, **{QuickLoad(n=n): n * 3 for n in range(30)}}


@pytest.mark.parametrize("backend", ["fork", "spawn"])
def test_slow_loads_run_side_by_side_and_quick_ones_stay_on_the_run_thread(
    backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    labtech.Lab(storage=tmp_path, runner_backend=backend, max_workers=2).run_tasks(
        _tasks(), disable_progress=True, disable_top=True
    )
    SLOW_CACHE.forget_loads()
    QUICK_CACHE.forget_loads()

    lab = labtech.Lab(storage=tmp_path, runner_backend=backend, max_workers=2)
    with caplog.at_level(logging.WARNING, logger="labtech_nb"):
        results = lab.run_tasks(_tasks(), disable_progress=True, disable_top=True)

    assert results == _expected()
    run_thread = threading.current_thread().name
    # The first slow load is timed on the run's thread; the other four load in pairs on two threads.
    assert SLOW_CACHE.load_threads[0] == run_thread
    assert len(SLOW_CACHE.load_threads) == 5
    assert all(name.startswith("labtech_nb-load") for name in SLOW_CACHE.load_threads[1:]), SLOW_CACHE.load_threads
    assert SLOW_CACHE.lone_loads == 0
    assert QUICK_CACHE.load_threads == [run_thread] * 30
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_an_unreadable_entry_met_on_a_load_thread_is_computed_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    labtech.Lab(storage=tmp_path, runner_backend="fork", max_workers=2).run_tasks(
        _tasks(), disable_progress=True, disable_top=True
    )
    damaged = SlowLoad(n=3)
    result_file = tmp_path / damaged.cache_key / "data.pickle"
    result_file.write_bytes(result_file.read_bytes()[:-1])
    SLOW_CACHE.forget_loads()

    lab = labtech.Lab(storage=tmp_path, runner_backend="fork", max_workers=2)
    with caplog.at_level(logging.WARNING, logger="labtech_nb"):
        results = lab.run_tasks(_tasks(), disable_progress=True, disable_top=True)

    assert results == _expected()
    assert SLOW_CACHE.load_threads[3].startswith("labtech_nb-load")
    assert any(str(damaged) in record.getMessage() for record in caplog.records if record.levelno == logging.WARNING)
    assert lab.is_cached(damaged)
