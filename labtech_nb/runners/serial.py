"""The ``'serial'`` runner: one task at a time, in the calling thread. Useful for debugging."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from labtech_nb.runners.base import Runner, RunnerBackend
from labtech_nb.runners.local import InProcessRunner
from labtech_nb.storage.base import Storage
from labtech_nb.types import LabContext, ResultMeta


class SerialRunner(InProcessRunner):
    """Runs each submitted task, in order, when `wait` is called."""

    max_concurrency = 1

    def __init__(self, *, context: LabContext, storage: Storage) -> None:
        super().__init__(context=context, storage=storage)
        self._queue: deque[tuple[Any, str, bool]] = deque()

    def submit_task(self, task: Any, task_name: str, use_cache: bool) -> None:
        self._queue.append((task, task_name, use_cache))

    def wait(self, *, timeout_seconds: float | None) -> Iterator[tuple[Any, ResultMeta | BaseException]]:
        if not self._queue:
            return
        task, task_name, use_cache = self._queue.popleft()
        try:
            result = self.execute(task, task_name, use_cache)
        except Exception as error:
            yield task, error
        else:
            yield task, result.meta

    def cancel(self) -> None:
        self._queue.clear()

    def stop(self) -> None:
        self._queue.clear()

    def pending_task_count(self) -> int:
        return len(self._queue)


class SerialRunnerBackend(RunnerBackend):
    """Runs tasks one at a time in the calling thread (``runner_backend='serial'``)."""

    def build_runner(self, *, context: LabContext, storage: Storage, max_workers: int | None) -> Runner:
        return SerialRunner(context=context, storage=storage)
