"""Attributing output to tasks: stdout, stderr and logger records from inside ``run()``.

While a task executes, a `TaskContext` is current (a context variable, so it is per thread). Writes
to ``sys.stdout``/``sys.stderr`` are routed to the current task's context, split into lines and
published as `TaskLogLine` events; writes from code outside any task pass straight through.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from labtech_nb.engine.events import Event, TaskLogLine, TaskProgress

_current: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar("labtech_nb_task", default=None)

#: The longest a partial line (no newline yet) is held before it is published anyway.
_PARTIAL_LINE_LIMIT = 64 * 1024


class TaskContext:
    """The task a thread is currently executing, and where its events go."""

    def __init__(self, task_name: str, publish: Callable[[Event], None]) -> None:
        self.task_name = task_name
        self._publish = publish
        self._partial: dict[str, str] = {}
        self._last_progress = 0.0

    def publish(self, event: Event) -> None:
        """Publish an event of this task, outside the task's capture (observers may print)."""
        token = _current.set(None)
        try:
            self._publish(event)
        finally:
            _current.reset(token)

    def write(self, stream: str, text: str) -> None:
        """Buffer output and publish each complete line."""
        buffered = self._partial.get(stream, "") + text
        *lines, rest = buffered.split("\n")
        if len(rest) > _PARTIAL_LINE_LIMIT:
            lines.append(rest)
            rest = ""
        self._partial[stream] = rest
        level = logging.ERROR if stream == "stderr" else logging.INFO
        for line in lines:
            self.publish(TaskLogLine(self.task_name, stream, level, line.rstrip("\r")))

    def flush(self) -> None:
        """Publish any partial lines (at the end of a task)."""
        for stream, rest in list(self._partial.items()):
            if rest:
                level = logging.ERROR if stream == "stderr" else logging.INFO
                self.publish(TaskLogLine(self.task_name, stream, level, rest))
        self._partial.clear()

    def progress(
        self, done: float, total: float | None, description: str | None, *, force: bool = False, min_interval: float = 0.1
    ) -> None:
        """Publish in-task progress, at most once per ``min_interval`` seconds unless ``force``."""
        now = time.monotonic()
        if not force and now - self._last_progress < min_interval:
            return
        self._last_progress = now
        self.publish(TaskProgress(self.task_name, done, total, description))


def current_task_context() -> TaskContext | None:
    """Return the context of the task executing in this thread, if any."""
    return _current.get()


class _StreamRouter(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr: sends task output to the task, the rest to the original."""

    def __init__(self, name: str, original: TextIO) -> None:
        self.name = name
        self.original = original

    def write(self, text: str) -> int:
        context = _current.get()
        if context is None:
            return self.original.write(text)
        context.write(self.name, text)
        return len(text)

    def flush(self) -> None:
        if _current.get() is None:
            self.original.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.original, "isatty", lambda: False)())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")

    def fileno(self) -> int:
        return self.original.fileno()

    def __getattr__(self, name: str) -> Any:
        if name == "original":
            # Not set yet (or being unpickled): never recurse looking for it.
            raise AttributeError(name)
        return getattr(self.original, name)


def original_stream(stream: Any) -> Any:
    """Return the real stream behind a router (so the parent's own output is never captured)."""
    while isinstance(stream, _StreamRouter):
        stream = stream.original
    return stream


_install_lock = threading.Lock()
_install_count = 0
_saved_streams: tuple[Any, Any] | None = None


@contextlib.contextmanager
def routed_output() -> Iterator[None]:
    """Route sys.stdout/sys.stderr through task-aware routers while the block runs (re-entrant)."""
    global _install_count, _saved_streams
    with _install_lock:
        if _install_count == 0:
            _saved_streams = (sys.stdout, sys.stderr)
            sys.stdout = _StreamRouter("stdout", sys.stdout)  # type: ignore[assignment]
            sys.stderr = _StreamRouter("stderr", sys.stderr)  # type: ignore[assignment]
        _install_count += 1
    try:
        yield
    finally:
        with _install_lock:
            _install_count -= 1
            if _install_count == 0 and _saved_streams is not None:
                # Only restore streams that are still ours: someone may have replaced them since.
                if isinstance(sys.stdout, _StreamRouter):
                    sys.stdout = _saved_streams[0]
                if isinstance(sys.stderr, _StreamRouter):
                    sys.stderr = _saved_streams[1]
                _saved_streams = None


@contextlib.contextmanager
def task_context(task_name: str, publish: Callable[[Event], None]) -> Iterator[TaskContext]:
    """Make ``task_name`` the current task of this thread while the block runs."""
    context = TaskContext(task_name, publish)
    token = _current.set(context)
    try:
        yield context
    finally:
        context.flush()
        _current.reset(token)


class CaptureFilter(logging.Filter):
    """On the labtech_nb logger: turns records logged inside a task into `TaskLogLine` events.

    Outside a task, it tags records with the process name so the handler can show it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "labtech_name"):
            # Already attributed (a task's line re-logged by the parent).
            return True
        context = _current.get()
        if context is None:
            record.labtech_name = record.processName
            return True
        context.publish(TaskLogLine(context.task_name, "log", record.levelno, record.getMessage()))
        return False
