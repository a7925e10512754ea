"""The events a run publishes, and how observers receive them."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

import labtech_nb as labtech
from labtech_nb.engine.events import (
    Event,
    RunFinished,
    RunStarted,
    TaskFailed,
    TaskLoaded,
    TaskLogLine,
    TaskQueued,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
)
from labtech_nb.exceptions import DependencyFailedError, LabError
from tests.support.events import EventRecorder
from tests.support.tasks import Explodes, Number, Scaled


@labtech.task
class ThreadReporter:
    n: int

    def run(self) -> int:
        print(f"reporter {self.n}")
        labtech.logger.info(f"reporter {self.n} logged")
        return threading.get_ident()


def summary(event: Event) -> tuple[str, ...]:
    """An event's type with the fields that identify what happened to which task."""
    name = type(event).__name__
    if isinstance(event, TaskQueued):
        return (name, event.task_name, "cached" if event.cached else "to run")
    if isinstance(event, TaskStarted):
        return (name, event.task_name, event.kind)
    if isinstance(event, TaskLogLine):
        return (name, event.task_name, event.stream, event.line)
    if isinstance(event, RunFinished):
        return (name, event.state)
    if isinstance(event, RunStarted):
        return (name,)
    return (name, event.task_name)  # type: ignore[attr-defined]


def test_event_sequence_of_a_run_with_cached_failing_and_skipped_tasks(tmp_path: Path) -> None:
    lab = labtech.Lab(storage=tmp_path, runner_backend="serial")
    cached = Scaled(source=Number(5), factor=10)
    lab.run_tasks([cached])
    lab.uncache_tasks([Number(5)])
    doubled = Scaled(source=cached, factor=2)
    exploding = Explodes(source=doubled)
    top = Scaled(source=exploding, factor=3)
    recorder = EventRecorder()

    with pytest.raises(LabError):
        lab.run_tasks([top], observers=[recorder])

    assert [summary(event) for event in recorder.events] == [
        ("RunStarted",),
        ("TaskQueued", "Scaled[1]", "cached"),
        ("TaskStarted", "Scaled[1]", "load"),
        ("TaskLoaded", "Scaled[1]"),
        ("TaskQueued", "Scaled[2]", "to run"),
        ("TaskStarted", "Scaled[2]", "run"),
        ("TaskLogLine", "Scaled[2]", "stdout", "scaling 50 by 2"),
        ("TaskSucceeded", "Scaled[2]"),
        ("TaskQueued", "Explodes[1]", "to run"),
        ("TaskStarted", "Explodes[1]", "run"),
        ("TaskFailed", "Explodes[1]"),
        ("TaskSkipped", "Scaled[3]"),
        ("RunFinished", "failed"),
    ]
    started = recorder.events[0]
    assert isinstance(started, RunStarted)
    # The cached task's own dependency (Number) is not part of the run.
    assert (started.total, started.counts_by_type, started.cached) == (4, {"Scaled": 3, "Explodes": 1}, 1)

    events = recorder.events
    assert isinstance(events[3], TaskLoaded)
    assert [events[1].task, events[3].task] == [cached, cached]  # type: ignore[attr-defined]
    assert events[4].task == doubled  # type: ignore[attr-defined]
    succeeded = events[7]
    assert isinstance(succeeded, TaskSucceeded)
    assert succeeded.task == doubled
    assert succeeded.duration is not None and succeeded.duration >= 0
    failed = events[10]
    assert isinstance(failed, TaskFailed)
    assert failed.task == exploding
    assert type(failed.error) is ValueError
    assert str(failed.error) == "cannot use 100"
    assert failed.traceback.startswith("Traceback (most recent call last):")
    assert 'raise ValueError(f"cannot use {self.source.result}")' in failed.traceback
    assert failed.traceback.rstrip().endswith("ValueError: cannot use 100")
    skipped = events[11]
    assert isinstance(skipped, TaskSkipped)
    assert skipped.task == top
    assert isinstance(skipped.reason, DependencyFailedError)
    assert str(skipped.reason) == f"Task '{top}' was skipped because its dependency '{exploding}' failed."
    assert not any(isinstance(event, TaskStarted) and event.task_name == "Scaled[3]" for event in recorder.events)


def test_a_clean_run_finishes_in_state_finished() -> None:
    recorder = EventRecorder()
    task = Scaled(source=Number(2), factor=2)

    labtech.Lab(storage=None, runner_backend="serial").run_tasks([task], observers=[recorder])

    assert recorder.types()[0] == "RunStarted"
    assert summary(recorder.events[-1]) == ("RunFinished", "finished")
    assert recorder.types().count("TaskSucceeded") == 2


def test_an_observer_that_raises_is_logged_and_detached(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[Event] = []

    def broken(event: Event) -> None:
        calls.append(event)
        raise RuntimeError("the view broke")

    recorder = EventRecorder()
    tasks = [Scaled(source=Number(n), factor=3) for n in range(4)]
    lab = labtech.Lab(storage=tmp_path, runner_backend="serial", observers=[broken, recorder])

    results = lab.run_tasks(tasks)

    assert list(results.values()) == [0, 3, 6, 9]
    assert all(lab.is_cached(task) for task in tasks)
    assert len(calls) == 1
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING and "detached" in record.getMessage()]
    assert len(warnings) == 1
    assert "broken" in warnings[0].getMessage()
    assert warnings[0].exc_info is not None and "the view broke" in str(warnings[0].exc_info[1])
    # The other observer missed nothing.
    assert recorder.types()[0] == "RunStarted"
    assert recorder.types().count("TaskSucceeded") == 8
    assert summary(recorder.events[-1]) == ("RunFinished", "finished")


def test_events_are_delivered_on_the_coordinating_thread_with_the_thread_runner() -> None:
    recorder = EventRecorder()
    tasks = [ThreadReporter(n) for n in range(6)]
    lab = labtech.Lab(storage=None, runner_backend="thread", max_workers=3)

    results = lab.run_tasks(tasks, observers=[recorder])

    coordinator = threading.get_ident()
    # The tasks really ran on other threads, which produced the start and output events.
    assert coordinator not in set(results.values())
    assert recorder.types().count("TaskStarted") == 6
    assert recorder.types().count("TaskLogLine") == 12
    assert recorder.threads == {coordinator}


def test_an_observer_that_prints_during_a_serial_run_is_not_captured_as_task_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    printed: list[str] = []

    def printing_view(event: Event) -> None:
        line = f"view saw {type(event).__name__}"
        printed.append(line)
        print(line)

    recorder = EventRecorder()
    task = Scaled(source=Number(1), factor=4)

    results = labtech.Lab(storage=None, runner_backend="serial").run_tasks([task], observers=[printing_view, recorder])

    assert results == {task: 4}
    task_lines = [event.line for event in recorder.events if isinstance(event, TaskLogLine)]
    assert task_lines == ["scaling 1 by 4"]
    assert capsys.readouterr().out.splitlines() == printed


def test_lab_add_observer_and_run_observers_all_receive_the_run() -> None:
    from_constructor, added, for_one_run = EventRecorder(), EventRecorder(), EventRecorder()
    lab = labtech.Lab(storage=None, runner_backend="serial", observers=[from_constructor])
    lab.add_observer(added)

    lab.run_tasks([Number(1), Number(2)], observers=[for_one_run])

    expected = ["RunStarted", *["TaskQueued", "TaskStarted", "TaskSucceeded"] * 2, "RunFinished"]
    assert sorted(from_constructor.types()) == sorted(expected)
    assert from_constructor.types() == added.types() == for_one_run.types()

    lab.run_tasks([Number(3)])
    assert len(for_one_run.events) == len(expected)
    assert len(from_constructor.events) == len(added.events) == len(expected) + 5

    lab.remove_observer(added)
    lab.run_tasks([Number(4)])
    assert len(added.events) == len(expected) + 5
    assert len(from_constructor.events) == len(expected) + 10
