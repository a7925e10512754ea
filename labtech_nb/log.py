"""``labtech_nb.logger``: the library's logger, and how task output is logged in the parent."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from labtech_nb.engine.capture import CaptureFilter, original_stream

LOG_FORMAT = "%(asctime)s/%(labtech_name)s/%(levelname)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


#: While a terminal view draws progress bars, log lines go through it so they never garble the bars.
line_writer: Callable[[str], None] | None = None


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
        writer = line_writer
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
