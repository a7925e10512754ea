"""Loading cached results in the parent process: quick loads inline, slow ones side by side on threads.

Reading a large result file spends its time in the system's file reads and in filling fresh memory,
both done without the GIL, so two large loads on two threads take about half as long as one after
the other. A small result loads in tens of microseconds, less than handing it to a thread would
cost, so each task type's loads stay inline until one of them has been seen to be slow.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

from labtech_nb.types import TaskResult

#: A task type whose last cached load took at least this long has its next loads done on threads.
THREADED_LOAD_SECONDS = 0.005

#: What a load ends with: the task and its result, or the error it raised.
LoadOutcome = tuple[Any, "TaskResult[Any] | BaseException"]


class CachedLoads:
    """Runs ``load(task, task_name)`` for cached tasks, inline or on up to ``threads`` threads.

    Finished threaded loads are handed back by `finished` on the calling thread; `wakeup_descriptor`
    becomes readable whenever one finishes, so a poll over worker pipes can wait for loads too.
    """

    def __init__(self, load: Callable[[Any, str], TaskResult[Any]], threads: int) -> None:
        self._load = load
        self._threads = max(1, threads)
        self._seconds_by_type: dict[type, float] = {}
        self._executor: futures.ThreadPoolExecutor | None = None
        self._running: dict[futures.Future[TaskResult[Any]], Any] = {}
        self._finished: deque[futures.Future[TaskResult[Any]]] = deque()
        self._wakeup: tuple[int, int] | None = None
        self._lock = threading.Lock()

    @property
    def wakeup_descriptor(self) -> int | None:
        """A descriptor that is readable while threaded loads have finished (None before any started)."""
        return None if self._wakeup is None else self._wakeup[0]

    @property
    def pending(self) -> int:
        """Threaded loads not handed back by `finished` yet."""
        return len(self._running)

    def submit(self, task: Any, task_name: str) -> LoadOutcome | None:
        """Load ``task``'s result: returns the outcome of an inline load, or None when a thread loads it."""
        if self._seconds_by_type.get(type(task), 0.0) < THREADED_LOAD_SECONDS:
            return self._timed_load(task, task_name)
        if self._executor is None:
            self._wakeup = os.pipe()
            for descriptor in self._wakeup:
                os.set_blocking(descriptor, False)
            self._executor = futures.ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="labtech_nb-load")
        future = self._executor.submit(self._load, task, task_name)
        self._running[future] = task
        future.add_done_callback(self._on_done)
        return None

    def _timed_load(self, task: Any, task_name: str) -> LoadOutcome:
        start = time.perf_counter()
        try:
            outcome: TaskResult[Any] | BaseException = self._load(task, task_name)
        except Exception as error:
            outcome = error
        self._seconds_by_type[type(task)] = time.perf_counter() - start
        return task, outcome

    def _on_done(self, future: futures.Future[TaskResult[Any]]) -> None:
        with self._lock:
            self._finished.append(future)
        if self._wakeup is not None:
            try:
                os.write(self._wakeup[1], b"!")
            except BlockingIOError:
                pass  # the pipe is full of earlier wake-ups: it is readable already

    def finished(self) -> Iterator[LoadOutcome]:
        """Hand back the threaded loads that have finished since the last call."""
        if self._wakeup is not None:
            try:
                while os.read(self._wakeup[0], 4096):
                    pass
            except BlockingIOError:
                pass
        while True:
            with self._lock:
                if not self._finished:
                    return
                future = self._finished.popleft()
            task = self._running.pop(future, None)
            if task is None or future.cancelled():
                continue
            error = future.exception()
            yield task, (error if error is not None else future.result())

    def wait_for_all(self) -> None:
        """Block until every threaded load has finished (their outcomes stay for `finished`)."""
        futures.wait(list(self._running))

    def cancel(self) -> None:
        """Drop the threaded loads that have not started; the ones under way finish."""
        for future in list(self._running):
            if future.cancel():
                del self._running[future]

    def close(self) -> None:
        """Cancel loads not started, wait for the others, and release the threads and the pipe."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._running.clear()
        if self._wakeup is not None:
            for descriptor in self._wakeup:
                os.close(descriptor)
            self._wakeup = None
