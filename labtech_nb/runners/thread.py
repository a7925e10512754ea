"""The ``'thread'`` runner: a pool of threads in this process, sharing the context and results."""

from __future__ import annotations

import ctypes
import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent import futures
from typing import Any

from labtech_nb.runners.base import Runner, RunnerBackend
from labtech_nb.runners.local import InProcessRunner
from labtech_nb.storage.base import Storage
from labtech_nb.types import LabContext, ResultMeta


class _Job:
    __slots__ = ("task", "task_name", "thread_id", "use_cache")

    def __init__(self, task: Any, task_name: str, use_cache: bool) -> None:
        self.task = task
        self.task_name = task_name
        self.use_cache = use_cache
        self.thread_id: int | None = None


class ThreadRunner(InProcessRunner):
    """Runs tasks on a thread pool; suits IO-bound tasks (the GIL serializes Python code)."""

    def __init__(self, *, context: LabContext, storage: Storage, max_workers: int) -> None:
        super().__init__(context=context, storage=storage)
        self.max_concurrency = max_workers
        self._executor = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="labtech_nb")
        self._jobs: dict[futures.Future[Any], _Job] = {}
        # Jobs wait here, not in the executor's queue, until a thread is free: a worker thread that
        # finishes a failing task must not pick up the next one before the run can cancel it.
        self._waiting: deque[_Job] = deque()

    def submit_task(self, task: Any, task_name: str, use_cache: bool) -> None:
        self._waiting.append(_Job(task, task_name, use_cache))

    def _dispatch(self) -> None:
        while self._waiting and len(self._jobs) < self.max_concurrency:
            job = self._waiting.popleft()
            self._jobs[self._executor.submit(self._execute_job, job)] = job

    def _execute_job(self, job: _Job) -> ResultMeta:
        job.thread_id = threading.get_ident()
        try:
            return self.execute(job.task, job.task_name, job.use_cache).meta
        finally:
            job.thread_id = None

    def wait(self, *, timeout_seconds: float | None) -> Iterator[tuple[Any, ResultMeta | BaseException]]:
        self._dispatch()
        if not self._jobs:
            return
        done, _ = futures.wait(list(self._jobs), timeout=timeout_seconds, return_when=futures.FIRST_COMPLETED)
        for future in done:
            job = self._jobs.pop(future)
            error = future.exception()
            yield job.task, (error if error is not None else future.result())

    def cancel(self) -> None:
        self._waiting.clear()
        for future in list(self._jobs):
            if future.cancel():
                del self._jobs[future]

    def stop(self) -> None:
        self.cancel()
        for job in list(self._jobs.values()):
            thread_id = job.thread_id
            if thread_id is not None:
                # CPython only: raise KeyboardInterrupt inside the running task's thread.
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(KeyboardInterrupt))

    def pending_task_count(self) -> int:
        return len(self._jobs) + len(self._waiting)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        super().close()


class ThreadRunnerBackend(RunnerBackend):
    """Runs tasks on a pool of threads (``runner_backend='thread'``); ``max_workers`` defaults to CPUs + 4."""

    def build_runner(self, *, context: LabContext, storage: Storage, max_workers: int | None) -> Runner:
        workers = max_workers if max_workers is not None else (os.cpu_count() or 1) + 4
        return ThreadRunner(context=context, storage=storage, max_workers=workers)
