"""Progress reported from inside ``run()`` reaches observers live, throttled, in every runner backend."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

import labtech_nb as labtech
from labtech_nb.engine.events import Event, TaskProgress, TaskQueued, TaskSucceeded
from labtech_nb.views.run_progress import RunProgress

from .progress_tasks import IterateFolds, IterateUnsized, ReportEpochs

BACKENDS = ["serial", "thread", "fork", "spawn", "fork-per-task"]
STEPS = 30
STEP_SECONDS = 0.02  # each task takes about 0.6 s
MIN_INTERVAL = 0.1  # documented: at most ten updates a second per task


class Arrivals:
    """Records each event with the moment it reached the observer, and folds it into a RunProgress."""

    def __init__(self) -> None:
        self.events: list[tuple[float, Event]] = []
        self.progress = RunProgress()
        self.snapshots: dict[str, list[tuple[float | None, float | None, str | None]]] = {}

    def __call__(self, event: Event) -> None:
        self.events.append((time.monotonic(), event))
        self.progress.observe(event)
        if isinstance(event, TaskProgress) and event.task_name in self.progress.active:
            row = self.progress.active[event.task_name]
            self.snapshots.setdefault(event.task_name, []).append(
                (row.progress_done, row.progress_total, row.progress_description)
            )

    def name_of(self, task: Any) -> str:
        (name,) = {event.task_name for _, event in self.events if isinstance(event, TaskQueued) and event.task == task}
        return name


def run_with_arrivals(backend: str, tasks: list[Any], monkeypatch: pytest.MonkeyPatch) -> tuple[dict[Any, Any], Arrivals]:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    arrivals = Arrivals()
    lab = labtech.Lab(storage=None, runner_backend=backend, max_workers=2)
    results = lab.run_tasks(tasks, observers=[arrivals])
    return results, arrivals


@pytest.mark.parametrize("backend", BACKENDS)
def test_in_task_progress_arrives_live_before_success_and_throttled(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    folds = IterateFolds(n=STEPS, step_seconds=STEP_SECONDS)
    epochs = ReportEpochs(n=STEPS, step_seconds=STEP_SECONDS)
    results, arrivals = run_with_arrivals(backend, [folds, epochs], monkeypatch)
    assert results == {folds: STEPS, epochs: STEPS}

    for task, description in ((folds, "folds"), (epochs, "epochs")):
        name = arrivals.name_of(task)
        indexed = list(enumerate(arrivals.events))
        updates = [
            (index, arrived, event)
            for index, (arrived, event) in indexed
            if isinstance(event, TaskProgress) and event.task_name == name
        ]
        successes = [
            (index, arrived, event)
            for index, (arrived, event) in indexed
            if isinstance(event, TaskSucceeded) and event.task_name == name
        ]
        assert len(successes) == 1
        success_index, _success_arrived, success = successes[0]
        assert updates, f"{backend}: no progress reached the observer for {name}"
        context = f"{backend} {name}: {[(event.done, round(event.time % 100, 3)) for _, _, event in updates]}"

        # Every update names the task and what is counted, and arrives before the task's success.
        assert all(event.description == description for _, _, event in updates), context
        assert all(event.total == STEPS for _, _, event in updates), context
        assert all(index < success_index for index, _, _ in updates), context
        dones = [event.done for _, _, event in updates]
        assert dones == sorted(dones), context
        assert dones[-1] == STEPS, context
        if task is folds:
            assert dones[0] == 0, context  # progress() announces the total before the first item

        # Live: updates during the run, and the first one reached the observer long before the task ended.
        assert len([done for done in dones if 0 < done < STEPS]) >= 3, context
        assert success.duration is not None
        # Live, not at the end: intermediate updates were delivered before the success (checked above by
        # delivery order), which holds however busy the machine is; wall-clock gaps do not.

        # Throttled where it originates: at most one update per 0.1 s, plus the forced final one.
        times = [event.time for _, _, event in updates]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times[:-1])]
        assert all(gap >= MIN_INTERVAL * 0.95 for gap in gaps), context
        assert len(updates) <= success.duration / MIN_INTERVAL + 2, context

        # The model shows each update on the task's row while it runs.
        assert arrivals.snapshots[name] == [(event.done, event.total, event.description) for _, _, event in updates]


def test_progress_of_unsized_iterables_has_no_total_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    unsized = IterateUnsized(n=5, give_total=False)
    sized = IterateUnsized(n=5, give_total=True)
    results, arrivals = run_with_arrivals("serial", [unsized, sized], monkeypatch)
    assert results == {unsized: [0, 1, 4, 9, 16], sized: [0, 1, 4, 9, 16]}
    by_task: dict[str, list[TaskProgress]] = {}
    for _, event in arrivals.events:
        if isinstance(event, TaskProgress):
            by_task.setdefault(event.task_name, []).append(event)
    unsized_updates = by_task[arrivals.name_of(unsized)]
    sized_updates = by_task[arrivals.name_of(sized)]
    # The loop is fast: the first update gets through, the rest are throttled, except a final one with a total.
    assert [(event.done, event.total, event.description) for event in unsized_updates] == [(0, None, "items")]
    assert [(event.done, event.total, event.description) for event in sized_updates] == [(0, 5, "items"), (5, 5, "items")]


def test_reporting_outside_a_task_does_nothing() -> None:
    assert labtech.report_progress(1, 2, "steps") is None
    assert list(labtech.progress(range(3), desc="outside")) == [0, 1, 2]
    assert list(labtech.progress(iter("abc"))) == ["a", "b", "c"]
