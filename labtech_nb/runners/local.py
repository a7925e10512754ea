"""Shared machinery of the runners that execute tasks inside this process (serial and thread)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from labtech_nb.engine.capture import routed_output, task_context
from labtech_nb.engine.events import Event
from labtech_nb.runners.base import Runner, run_or_load_task
from labtech_nb.runners.sampling import ResourceSampler
from labtech_nb.storage.base import Storage
from labtech_nb.types import LabContext, TaskResult


def _discard(event: Event) -> None:
    pass


class InProcessRunner(Runner):
    """Holds results in a dict shared with the tasks, and executes tasks with output capture."""

    def __init__(self, *, context: LabContext, storage: Storage) -> None:
        self.context = context
        self.storage = storage
        self.results: dict[Any, TaskResult[Any]] = {}
        self.publish: Callable[[Event], None] = _discard
        self._active: dict[str, datetime] = {}
        self._output = routed_output()
        self._output.__enter__()
        # In-process tasks share one process: their samples are whole-process figures.
        self._sampler = ResourceSampler(
            lambda: [(name, os.getpid()) for name in list(self._active)], lambda event: self.publish(event)
        )

    def set_event_publisher(self, publish: Callable[[Event], None]) -> None:
        """Send in-task events (output lines, progress, start) to ``publish``."""
        self.publish = publish

    def execute(self, task: Any, task_name: str, use_cache: bool) -> TaskResult[Any]:
        """Run or load ``task`` in the calling thread, with its dependencies' results reachable."""
        for dependency in task._lt_dependencies():
            dependency._set_results_map(self.results)
        filtered_context = None
        if not use_cache:
            self._sampler.ensure_started()
            filtered_context = task.filter_context(self.context)
        self._active[task_name] = datetime.now()
        try:
            with task_context(task_name, self.publish):
                result = run_or_load_task(task, use_cache, filtered_context, self.storage)
        finally:
            self._active.pop(task_name, None)
        self.results[task] = result
        return result

    def get_result(self, task: Any) -> TaskResult[Any]:
        return self.results[task]

    def remove_results(self, tasks: Sequence[Any]) -> None:
        for task in tasks:
            self.results.pop(task, None)

    def get_task_infos(self) -> list[dict[str, Any]]:
        pid = os.getpid()
        return [
            {"name": name, "pid": pid, "status": "running", "start_time": start} for name, start in list(self._active.items())
        ]

    def close(self) -> None:
        self._output.__exit__(None, None, None)
