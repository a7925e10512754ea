"""The events a run publishes, and how they reach observers.

Every event is a small frozen dataclass. Observers are plain callables taking one event; they are
called on the run's coordinating thread, in order. An observer that raises is logged and detached for
the rest of the run, so a broken view never breaks a run or loses a result.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

logger = logging.getLogger("labtech_nb.events")

#: An observer receives every event of a run.
Observer = Callable[["Event"], Any]


@dataclass(frozen=True)
class Event:
    """Base class of all run events; each event class has a ``time`` field (``time.time()`` at creation)."""


@dataclass(frozen=True)
class RunStarted(Event):
    """A run began. ``counts_by_type`` maps each task type's name to its number of distinct tasks."""

    run_id: str
    total: int
    counts_by_type: dict[str, int]
    cached: int
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class TasksAdded(Event):
    """Tasks joined a running run (dependencies of a task whose cache entry proved unreadable)."""

    counts_by_type: dict[str, int]
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class TaskQueued(Event):
    """A task's dependencies are done and it was handed to the runner (to run, or to load if ``cached``)."""

    task_name: str
    task_type: str
    task: Any
    cached: bool
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class TaskStarted(Event):
    """A worker began a task: ``kind`` is ``'run'`` or ``'load'`` (from cache)."""

    task_name: str
    kind: str
    start: datetime
    pid: int
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class TaskProgress(Event):
    """Progress reported from inside a task's ``run()``."""

    task_name: str
    done: float
    total: float | None
    description: str | None = None
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class TaskLogLine(Event):
    """One line of a task's output: ``stream`` is ``'stdout'``, ``'stderr'`` or ``'log'``."""

    task_name: str
    stream: str
    level: int
    line: str
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ResourceSample(Event):
    """CPU (100.0 = one core, children included) and resident memory of a running task."""

    task_name: str
    cpu_percent: float
    rss_bytes: int
    vms_bytes: int = 0
    children: int = 0
    threads: int = 0
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class TaskMlflowRun(Event):
    """A task's execution was recorded as the mlflow run ``run_id``."""

    task_name: str
    run_id: str
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class TaskLoaded(Event):
    """A task's result was loaded from the cache."""

    task_name: str
    task: Any
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class TaskSucceeded(Event):
    """A task ran and its result was cached (when its type and the storage cache)."""

    task_name: str
    task: Any
    duration: float | None
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class TaskFailed(Event):
    """A task raised (or its process died); ``traceback`` is the formatted traceback text."""

    task_name: str
    task: Any
    error: BaseException
    traceback: str
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class TaskSkipped(Event):
    """A task was never started because a dependency failed."""

    task_name: str
    task: Any
    reason: BaseException
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class RunFinished(Event):
    """A run ended: ``state`` is ``'finished'``, ``'failed'`` or ``'interrupted'``."""

    run_id: str
    state: str
    counts: dict[str, int]
    time: float = field(default_factory=time.time)


class EventBus:
    """Delivers events to observers on the coordinating thread; any thread may publish.

    Events published on the coordinating thread are delivered at once (after anything queued by other
    threads, to keep order); events from other threads wait in a queue until `drain` is called.
    """

    def __init__(self, observers: Iterable[Observer]) -> None:
        self._observers = list(observers)
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._coordinator = threading.get_ident()

    def set_coordinator(self) -> None:
        """Make the calling thread the one that delivers events (the thread executing the run)."""
        self._coordinator = threading.get_ident()

    def publish(self, event: Event) -> None:
        """Publish an event from any thread."""
        if threading.get_ident() == self._coordinator:
            self.drain()
            self._deliver(event)
        else:
            self._queue.put(event)

    def drain(self) -> None:
        """Deliver queued events (call on the coordinating thread)."""
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                return
            self._deliver(event)

    def _deliver(self, event: Event) -> None:
        for observer in list(self._observers):
            try:
                observer(event)
            except Exception:
                logger.warning(
                    "Observer %r raised on %s and was detached from this run.", observer, type(event).__name__, exc_info=True
                )
                self._observers.remove(observer)
