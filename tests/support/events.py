"""Recording the events of real runs, and building event streams stamped at fixed times."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any, TypeVar

from labtech_nb.engine.events import (
    Event,
    Observer,
    ResourceSample,
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
from labtech_nb.engine.progress import RunProgress

T0 = 1_767_621_775.0  # any fixed time: views and the progress model must take every time from events (and a clock)

EventT = TypeVar("EventT", bound=Event)


class EventRecorder:
    """An observer that keeps a run's events and folds them into a `RunProgress`.

    Resource samples are left out of ``events`` (they are periodic, so their number depends on timing),
    but reach ``progress`` like every other event.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.progress = RunProgress()
        self.threads: set[int] = set()

    def __call__(self, event: Event) -> None:
        self.threads.add(threading.get_ident())
        self.progress.observe(event)
        if not isinstance(event, ResourceSample):
            self.events.append(event)

    def types(self) -> list[str]:
        """The names of the recorded events' types, in order."""
        return [type(event).__name__ for event in self.events]

    def name_of(self, task: Any) -> str:
        """The name the run gave ``task`` (from its queued or skipped event)."""
        names = {event.task_name for event in self.events if isinstance(event, (TaskQueued, TaskSkipped)) and event.task == task}
        assert len(names) == 1, names
        return names.pop()


class EventFeed:
    """Builds the events of one run, each stamped ``base + offset`` seconds, and hands each to an observer.

    Every builder returns its event, so a feed without an observer just builds event streams. A task
    given by name only is stood in for by the string ``"task <name>"``.
    """

    def __init__(self, base: float = T0, *, run_id: str = "run1", observer: Observer | None = None) -> None:
        self.base = base
        self.run_id = run_id
        self.observer = observer

    def __call__(self, *events: Event) -> None:
        """Hand events built elsewhere to the observer."""
        for event in events:
            if self.observer is not None:
                self.observer(event)

    def at(self, offset: float) -> float:
        return self.base + offset

    def _emit(self, event: EventT) -> EventT:
        self(event)
        return event

    # --- one event ---------------------------------------------------------------------------------

    def start(self, counts: dict[str, int], offset: float = 0.0, cached: int = 0) -> RunStarted:
        total = sum(counts.values())
        return self._emit(RunStarted(self.run_id, total=total, counts_by_type=counts, cached=cached, time=self.at(offset)))

    def queue(self, name: str, task_type: str, offset: float = 0.0, *, task: Any = None, cached: bool = False) -> TaskQueued:
        return self._emit(TaskQueued(name, task_type, _task(name, task), cached, time=self.at(offset)))

    def begin(
        self, name: str, offset: float = 0.0, *, kind: str = "run", pid: int = 4242, start: datetime | None = None
    ) -> TaskStarted:
        """A task starts (``kind`` ``'load'``: starts loading); ``start`` defaults to the event's own time."""
        start = datetime.fromtimestamp(self.at(offset)) if start is None else start
        return self._emit(TaskStarted(name, kind, start, pid, time=self.at(offset)))

    def succeed(self, name: str, offset: float = 0.0, *, duration: float | None = None, task: Any = None) -> TaskSucceeded:
        return self._emit(TaskSucceeded(name, _task(name, task), duration, time=self.at(offset)))

    def load(self, name: str, offset: float = 0.0, *, task: Any = None) -> TaskLoaded:
        return self._emit(TaskLoaded(name, _task(name, task), time=self.at(offset)))

    def fail(self, name: str, error: BaseException, traceback: str, offset: float = 0.0, *, task: Any = None) -> TaskFailed:
        return self._emit(TaskFailed(name, _task(name, task), error, traceback, time=self.at(offset)))

    def skip(self, name: str, task: Any, reason: BaseException, offset: float = 0.0) -> TaskSkipped:
        return self._emit(TaskSkipped(name, task, reason, time=self.at(offset)))

    def sample(
        self, name: str, cpu_percent: float, rss_bytes: int, offset: float = 0.0, *, children: int = 0, threads: int = 0
    ) -> ResourceSample:
        return self._emit(ResourceSample(name, cpu_percent, rss_bytes, children=children, threads=threads, time=self.at(offset)))

    def log(self, name: str, line: str, offset: float = 0.0, stream: str = "stdout", level: int = logging.INFO) -> TaskLogLine:
        return self._emit(TaskLogLine(name, stream, level, line, time=self.at(offset)))

    def finish(self, state: str, offset: float = 10.0, counts: dict[str, int] | None = None) -> RunFinished:
        """The run ends (by default ten seconds after ``base``)."""
        return self._emit(RunFinished(self.run_id, state, {} if counts is None else counts, time=self.at(offset)))

    # --- a whole task ------------------------------------------------------------------------------

    def run_ok(self, name: str, task_type: str, start: float = 0.0, end: float = 1.0) -> None:
        self.queue(name, task_type, start)
        self.begin(name, start)
        self.succeed(name, end, duration=end - start)

    def run_loaded(self, name: str, task_type: str, start: float = 0.0, end: float = 0.1) -> None:
        self.queue(name, task_type, start, cached=True)
        self.begin(name, start, kind="load")
        self.load(name, end)

    def run_failed(self, name: str, task_type: str, message: str, trace: str, start: float = 0.0, end: float = 1.0) -> None:
        self.queue(name, task_type, start)
        self.begin(name, start)
        self.fail(name, ValueError(message), trace, end)


def _task(name: str, task: Any) -> Any:
    return f"task {name}" if task is None else task
