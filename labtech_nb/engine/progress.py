"""`RunProgress`: one model of a run, folded from its events, that every view renders."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from labtech_nb.engine.events import (
    Event,
    ResourceSample,
    RunFinished,
    RunStarted,
    TaskFailed,
    TaskLoaded,
    TaskLogLine,
    TaskMlflowRun,
    TaskProgress,
    TaskQueued,
    TasksAdded,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
)

#: Lines of output kept per task for log viewers.
LOG_LINES_PER_TASK = 500


@dataclass
class TypeCounts:
    """How the tasks of one type stand."""

    total: int = 0
    queued: int = 0
    running: int = 0
    loaded: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def finished(self) -> int:
        """Tasks that will not change again: done, loaded, failed or skipped."""
        return self.done + self.loaded + self.failed + self.skipped

    @property
    def remaining(self) -> int:
        """Tasks not yet finished."""
        return max(self.total - self.finished, 0)


@dataclass
class ActiveTask:
    """A task that is running or loading."""

    name: str
    task_type: str
    task: Any
    status: str
    start: datetime | None = None
    started_at: float | None = None
    pid: int | None = None
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    vms_bytes: int | None = None
    children: int | None = None
    threads: int | None = None
    progress_done: float | None = None
    progress_total: float | None = None
    progress_description: str | None = None
    last_line: str | None = None
    counted_running: bool = False


@dataclass(frozen=True)
class TaskSpan:
    """When and where a finished task ran: for timelines. ``outcome`` is done, loaded or failed."""

    name: str
    task_type: str
    pid: int | None
    start: float
    end: float
    outcome: str


@dataclass(frozen=True)
class Failure:
    """A failed or skipped task."""

    name: str
    task: Any
    message: str
    traceback: str
    skipped: bool


@dataclass
class RunProgress:
    """The state of one run, updated by feeding it the run's events (`RunProgress.observe`).

    Attributes:
        state: ``'pending'``, ``'running'``, ``'finished'``, ``'failed'`` or ``'interrupted'``.
        types: counts per task type name, in the order types were announced.
        active: running or loading tasks by name.
        failures: failed and skipped tasks, in order.
        logs: the last lines of output of every task of the run, by task name.
        version: increases with every event, so views can tell whether anything changed.
    """

    state: str = "pending"
    run_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    types: dict[str, TypeCounts] = field(default_factory=dict)
    active: dict[str, ActiveTask] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    logs: dict[str, deque[str]] = field(default_factory=dict)
    task_types: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, Any] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    spans: list[TaskSpan] = field(default_factory=list)
    mlflow_runs: dict[str, str] = field(default_factory=dict)
    version: int = 0
    _first_run_start: float | None = None

    def __call__(self, event: Event) -> None:
        self.observe(event)

    def observe(self, event: Event) -> None:
        """Fold one event into the model."""
        self.version += 1
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    # --- derived figures ------------------------------------------------------------------------

    @property
    def totals(self) -> TypeCounts:
        """Counts summed over all types."""
        total = TypeCounts()
        for counts in self.types.values():
            for name in ("total", "queued", "running", "loaded", "done", "failed", "skipped"):
                setattr(total, name, getattr(total, name) + getattr(counts, name))
        return total

    def statuses(self) -> dict[Any, str]:
        """Each task of the run by its status: queued, running, loading, done, loaded, failed or skipped."""
        statuses: dict[Any, str] = {}
        for span in self.spans:
            task = self.tasks.get(span.name)
            if task is not None:
                statuses[task] = span.outcome
        for failure in self.failures:
            statuses[failure.task] = "skipped" if failure.skipped else "failed"
        for active in self.active.values():
            statuses[active.task] = active.status
        return statuses

    def elapsed(self, now: float | None = None) -> float:
        """Seconds since the run started (until it finished)."""
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.finished_at is not None else (time.time() if now is None else now)
        return max(end - self.started_at, 0.0)

    def eta(self, now: float | None = None) -> float | None:
        """Estimated seconds until the run finishes, from the pace of tasks executed so far."""
        if self.state != "running" or self._first_run_start is None:
            return None
        totals = self.totals
        executed = totals.done + totals.failed
        remaining = totals.remaining
        if remaining == 0:
            return 0.0
        if executed == 0:
            return None
        current = time.time() if now is None else now
        pace = (current - self._first_run_start) / executed
        return pace * remaining

    def summary(self, now: float | None = None) -> str:
        """One line: state, counts, elapsed time and ETA."""
        totals = self.totals
        parts = [
            f"{self.state}",
            f"{totals.done + totals.loaded}/{totals.total} done",
            f"{totals.loaded} from cache",
            f"{totals.running} running",
            f"{totals.failed} failed",
            f"{totals.skipped} skipped",
            f"elapsed {format_seconds(self.elapsed(now))}",
        ]
        if self.state in ("failed", "interrupted") and totals.remaining:
            parts.append(f"{totals.remaining} not run")
        eta = self.eta(now)
        if eta is not None:
            parts.append(f"ETA {format_seconds(eta)}")
        return ", ".join(parts)


def format_seconds(seconds: float) -> str:
    """``H:MM:SS`` for a duration."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def format_bytes(count: int | None) -> str:
    """A byte count in the largest fitting unit, e.g. ``1.5 GiB``."""
    if count is None:
        return ""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


# --- event handlers ---------------------------------------------------------------------------


def _run_started(progress: RunProgress, event: RunStarted) -> None:
    # A model observing several runs (a Lab-wide observer) shows each run on its own.
    fresh = RunProgress()
    for name in fresh.__dataclass_fields__:
        setattr(progress, name, getattr(fresh, name))
    progress.version += 1
    progress.state = "running"
    progress.run_id = event.run_id
    progress.started_at = event.time
    for type_name, count in event.counts_by_type.items():
        progress.types[type_name] = TypeCounts(total=count)


def _counts(progress: RunProgress, name: str) -> TypeCounts:
    return progress.types.setdefault(progress.task_types.get(name, "?"), TypeCounts())


def _tasks_added(progress: RunProgress, event: TasksAdded) -> None:
    for type_name, count in event.counts_by_type.items():
        progress.types.setdefault(type_name, TypeCounts()).total += count


def _queued(progress: RunProgress, event: TaskQueued) -> None:
    previous = progress.active.pop(event.task_name, None)
    if previous is not None:
        # Queued again (its cache entry proved unreadable): the first attempt is over.
        counts = progress.types.setdefault(previous.task_type, TypeCounts())
        if previous.counted_running:
            counts.running -= 1
        else:
            counts.queued -= 1
    progress.task_types[event.task_name] = event.task_type
    progress.tasks[event.task_name] = event.task
    counts = progress.types.setdefault(event.task_type, TypeCounts())
    counts.queued += 1
    progress.active[event.task_name] = ActiveTask(event.task_name, event.task_type, event.task, "queued")


def _started(progress: RunProgress, event: TaskStarted) -> None:
    active = progress.active.get(event.task_name)
    if active is None:
        return
    if not active.counted_running:
        counts = _counts(progress, event.task_name)
        counts.queued -= 1
        counts.running += 1
        active.counted_running = True
    active.status = "loading" if event.kind == "load" else "running"
    active.start = event.start
    active.started_at = event.time
    active.pid = event.pid
    if event.kind == "run" and progress._first_run_start is None:
        progress._first_run_start = event.time


def _finish_active(progress: RunProgress, name: str, outcome: str, at: float) -> TypeCounts:
    counts = _counts(progress, name)
    active = progress.active.pop(name, None)
    if active is not None:
        if active.started_at is not None:
            progress.spans.append(TaskSpan(name, active.task_type, active.pid, active.started_at, at, outcome))
        if active.counted_running:
            counts.running -= 1
        else:
            counts.queued -= 1
    return counts


def _loaded(progress: RunProgress, event: TaskLoaded) -> None:
    _finish_active(progress, event.task_name, "loaded", event.time).loaded += 1


def _succeeded(progress: RunProgress, event: TaskSucceeded) -> None:
    _finish_active(progress, event.task_name, "done", event.time).done += 1
    if event.duration is not None:
        progress.durations[event.task_name] = event.duration


def _failed(progress: RunProgress, event: TaskFailed) -> None:
    _finish_active(progress, event.task_name, "failed", event.time).failed += 1
    progress.failures.append(Failure(event.task_name, event.task, str(event.error), event.traceback, skipped=False))


def _skipped(progress: RunProgress, event: TaskSkipped) -> None:
    progress.task_types.setdefault(event.task_name, type(event.task).__qualname__)
    progress.tasks.setdefault(event.task_name, event.task)
    _counts(progress, event.task_name).skipped += 1
    progress.failures.append(Failure(event.task_name, event.task, str(event.reason), "", skipped=True))


def _progress(progress: RunProgress, event: TaskProgress) -> None:
    active = progress.active.get(event.task_name)
    if active is not None:
        active.progress_done = event.done
        active.progress_total = event.total
        active.progress_description = event.description


def _log_line(progress: RunProgress, event: TaskLogLine) -> None:
    lines = progress.logs.get(event.task_name)
    if lines is None:
        lines = progress.logs[event.task_name] = deque(maxlen=LOG_LINES_PER_TASK)
    lines.append(event.line)
    active = progress.active.get(event.task_name)
    if active is not None:
        active.last_line = event.line


def _sample(progress: RunProgress, event: ResourceSample) -> None:
    active = progress.active.get(event.task_name)
    if active is not None:
        active.cpu_percent = event.cpu_percent
        active.rss_bytes = event.rss_bytes
        active.vms_bytes = event.vms_bytes
        active.children = event.children
        active.threads = event.threads


def _mlflow_run(progress: RunProgress, event: TaskMlflowRun) -> None:
    progress.mlflow_runs[event.task_name] = event.run_id


def _run_finished(progress: RunProgress, event: RunFinished) -> None:
    progress.state = event.state
    progress.finished_at = event.time
    progress.active.clear()
    for counts in progress.types.values():
        counts.running = counts.queued = 0


_HANDLERS: dict[type, Any] = {
    RunStarted: _run_started,
    TaskQueued: _queued,
    TaskStarted: _started,
    TaskLoaded: _loaded,
    TaskSucceeded: _succeeded,
    TaskFailed: _failed,
    TaskSkipped: _skipped,
    TaskProgress: _progress,
    TaskLogLine: _log_line,
    ResourceSample: _sample,
    RunFinished: _run_finished,
    TaskMlflowRun: _mlflow_run,
    TasksAdded: _tasks_added,
}
