"""``labtech_nb.logger``: the library's logger, and how task output is logged in the parent."""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Callable

from labtech_nb.engine.capture import CaptureFilter, original_stream

LOG_FORMAT = "%(asctime)s/%(labtech_name)s/%(levelname)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


#: Where this thread's log lines go instead of stderr: through the terminal view while it draws bars
#: (so lines never garble them), or into a background run's handle (so they never land in another cell).
_line_writer: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar(
    "labtech_nb_line_writer", default=None
)


def set_line_writer(writer: Callable[[str], None] | None) -> contextvars.Token[Callable[[str], None] | None]:
    """Send this thread's labtech_nb log lines to ``writer`` (None: back to stderr)."""
    return _line_writer.set(writer)


def reset_line_writer(token: contextvars.Token[Callable[[str], None] | None]) -> None:
    """Undo `set_line_writer`."""
    _line_writer.reset(token)


class _FallbackHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Prints records to the current stderr, but only while the application configured no handlers.

    Once the application configures logging (e.g. ``logging.basicConfig()``), records reach its
    handlers through propagation, and this handler stays quiet so each record appears once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        if not hasattr(record, "labtech_name"):
            record.labtech_name = record.processName
        writer = _line_writer.get()
        if writer is not None:
            writer(self.format(record))
            return
        self.stream = original_stream(sys.stderr)
        super().emit(record)


def _build_logger() -> logging.Logger:
    built = logging.getLogger("labtech_nb")
    if built.level == logging.NOTSET:
        built.setLevel(logging.INFO)
    if not any(isinstance(handler, _FallbackHandler) for handler in built.handlers):
        built.addHandler(_FallbackHandler())
    if not any(isinstance(existing, CaptureFilter) for existing in built.filters):
        built.addFilter(CaptureFilter())
    return built


logger = _build_logger()


def log_task_line(task_name: str, stream: str, level: int, line: str) -> None:
    """Log one line of a task's output in the parent, tagged with the task's name."""
    if stream == "stdout":
        message = f"Captured STDOUT:\n{line}"
    elif stream == "stderr":
        message = f"Captured STDERR:\n{line}"
    else:
        message = line
    logger.log(level, message, extra={"labtech_name": task_name})
