"""Background runs: a run executed in its own thread, controlled through a `BackgroundRun` handle."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from labtech_nb import log
from labtech_nb.engine.progress import RunProgress
from labtech_nb.engine.run import Run
from labtech_nb.exceptions import LabError

#: Log lines a handle keeps (the oldest are dropped first).
MAX_LOG_LINES = 5000


class BackgroundRun:
    """A run going on in a background thread.

    In a notebook it displays as the live dashboard with a Stop button. Anywhere, it offers:

    Attributes:
        progress: the live `RunProgress` model of the run.
        log_lines: the run's log and task output lines (bounded).
    """

    def __init__(self) -> None:
        self.progress = RunProgress()
        self.log_lines: deque[str] = deque(maxlen=MAX_LOG_LINES)
        self.started_at = time.time()
        self._run: Run | None = None
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._results: dict[Any, Any] | None = None
        self._error: BaseException | None = None
        self._stop_count = 0
        self._listeners: list[Any] = []

    def start(self, run: Run) -> None:
        """Begin executing ``run`` in a new thread (called by `Lab.run_tasks_in_background`)."""
        self._run = run
        self.progress = run.progress
        run.handle = self
        # Claimed here, in the caller's thread, so a conflicting run is refused at once.
        run._claim_storage()
        self._thread = threading.Thread(target=self._execute, name="labtech_nb-background-run", daemon=True)
        self._thread.start()

    def _execute(self) -> None:
        assert self._run is not None
        token = log.set_line_writer(self.add_log_line)
        try:
            self._results = self._run._execute()
        except BaseException as error:
            self._error = error
        finally:
            self._run._release_storage()
            self._run._remove_abandoned_writes()
            log.reset_line_writer(token)
            self._done.set()
            for listener in list(self._listeners):
                try:
                    listener(self)
                except Exception:
                    log.logger.warning("A background-run listener failed.", exc_info=True)

    def add_log_line(self, line: str) -> None:
        """Record a line of the run's output (thread-safe)."""
        self.log_lines.append(line)

    def add_done_listener(self, listener: Any) -> None:
        """Call ``listener(handle)`` when the run ends (in the run's thread)."""
        self._listeners.append(listener)
        if self._done.is_set():
            listener(self)

    # --- state ----------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Whether the run has ended (finished, failed or stopped)."""
        return self._done.is_set()

    @property
    def state(self) -> str:
        """``'running'``, ``'finished'``, ``'failed'`` or ``'interrupted'``."""
        return self.progress.state if self.progress.state != "pending" else "running"

    @property
    def results(self) -> dict[Any, Any]:
        """Results of the input tasks completed so far (all of them once the run finished)."""
        if self._results is not None:
            return dict(self._results)
        if isinstance(self._error, LabError):
            return dict(self._error.results)
        run = self._run
        scheduler = run.scheduler if run is not None else None
        if run is None or scheduler is None or self.done:
            return {}
        completed = dict(scheduler.input_task_results)
        return {task: completed[task].value for task in run.input_tasks if task in completed}

    @property
    def failures(self) -> dict[Any, BaseException]:
        """Failed and skipped tasks with their exceptions."""
        if isinstance(self._error, LabError):
            return dict(self._error.failures)
        scheduler = self._run.scheduler if self._run is not None else None
        return dict(scheduler.failures) if scheduler is not None else {}

    @property
    def error(self) -> BaseException | None:
        """The exception the run ended with, if any."""
        return self._error

    # --- control --------------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> dict[Any, Any]:
        """Block until the run ends and return ``{task: result}``.

        Raises:
            TimeoutError: the run did not end within ``timeout`` seconds.
            LabError: the run failed or was stopped (carrying ``.results`` and ``.failures``).
        """
        if not self._done.wait(timeout):
            raise TimeoutError(f"The run did not finish within {timeout} seconds; it goes on in the background.")
        if self._error is not None:
            raise self._error
        assert self._results is not None
        return self._results

    def cancel(self, *, force: bool = False) -> None:
        """Stop the run: the first call lets running tasks finish and cache; a second (or ``force``) terminates them."""
        self._stop_count += 1
        if self._run is not None:
            self._run.request_stop(force=force or self._stop_count >= 2)

    @property
    def stop_requests(self) -> int:
        """How many times a stop was requested."""
        return self._stop_count

    def timeline(self) -> Any:
        """A matplotlib figure of the run so far: one lane per worker, bars coloured by task type."""
        from labtech_nb.notebook.timeline import plot_timeline

        return plot_timeline(self.progress)

    # --- display --------------------------------------------------------------------------------

    def summary(self) -> str:
        """One line describing the run."""
        text = self.progress.summary()
        if self.progress.state == "pending":
            text = "running" + text[len("pending") :]
        return f"Background run: {text}"

    def __repr__(self) -> str:
        return f"<{self.summary()}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from labtech_nb.notebook.dashboard import background_run_bundle

        return background_run_bundle(self)
