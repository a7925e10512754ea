"""The runner contract, and `run_or_load_task` which every runner uses to execute one task.

A `RunnerBackend` builds a `Runner` for each run. The Lab's scheduler decides *what* runs and when
(dependencies, ``max_parallel``, failures); the runner decides *where*: in this thread, in threads,
in processes or on a cluster. The contract is labtech 1.x's, so custom backends written for labtech
work unchanged.
"""

from __future__ import annotations

import os
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from labtech_nb.engine.capture import current_task_context
from labtech_nb.engine.events import TaskMlflowRun, TaskStarted
from labtech_nb.exceptions import CacheEntryUnreadable, CacheError
from labtech_nb.storage.base import Storage
from labtech_nb.storage.null import NullStorage
from labtech_nb.types import LabContext, ResultMeta, TaskResult

#: Attribute holding the formatted traceback of an exception raised by a task (survives pickling).
TRACEBACK_ATTRIBUTE = "_labtech_nb_traceback"


class Runner(ABC):
    """Executes submitted tasks and holds their results until told to release them."""

    @abstractmethod
    def submit_task(self, task: Any, task_name: str, use_cache: bool) -> None:
        """Start (or queue) a task: load it from the cache if ``use_cache``, otherwise run it."""

    @abstractmethod
    def wait(self, *, timeout_seconds: float | None) -> Iterator[tuple[Any, ResultMeta | BaseException]]:
        """Yield ``(task, meta_or_exception)`` for tasks that completed, waiting up to the timeout."""

    @abstractmethod
    def cancel(self) -> None:
        """Cancel tasks that have not started; they are never yielded by `wait`."""

    @abstractmethod
    def stop(self) -> None:
        """Terminate running tasks."""

    @abstractmethod
    def close(self) -> None:
        """Release the runner's resources (workers, threads); called once at the end of a run."""

    @abstractmethod
    def pending_task_count(self) -> int:
        """Return how many submitted tasks have not yet been yielded by `wait` (cancelled ones excluded)."""

    @abstractmethod
    def get_result(self, task: Any) -> TaskResult[Any]:
        """Return a completed task's result; raise `KeyError` if the runner holds none."""

    @abstractmethod
    def remove_results(self, tasks: Sequence[Any]) -> None:
        """Release the results of tasks that no pending task needs."""

    @abstractmethod
    def get_task_infos(self) -> list[dict[str, Any]]:
        """Return one row per active task (name, pid, status, start_time, cpu, rss), as labtech's contract asks.

        labtech_nb's own views use run events instead; custom runners may return an empty list.
        """


class RunnerBackend(ABC):
    """Builds a `Runner` for one run."""

    @abstractmethod
    def build_runner(self, *, context: LabContext, storage: Storage, max_workers: int | None) -> Runner:
        """Return a runner for a run with the given Lab context, storage and worker limit."""


def task_caches_results(task: Any, storage: Any) -> bool:
    """Return whether a task's result is stored: its type caches and the storage keeps anything."""
    from labtech_nb.cache import NullCache

    return not isinstance(storage, NullStorage) and not isinstance(type(task)._lt_options.cache, NullCache)


def run_or_load_task(task: Any, use_cache: bool, filtered_context: LabContext | None, storage: Storage) -> TaskResult[Any]:
    """Execute one task where the runner placed it: load it from the cache, or run and cache it.

    Args:
        task: the task, whose dependencies' results are already reachable through ``.result``.
        use_cache: load the cached entry instead of running (the Lab found one).
        filtered_context: the Lab context after the task's ``filter_context``.
        storage: the storage to load from or save to.

    Returns:
        The result with its metadata.

    Raises:
        CacheEntryUnreadable: ``use_cache`` was set but the entry is incomplete or corrupted.
        BaseException: whatever ``run()`` raised, with its formatted traceback attached.
    """
    cache = type(task)._lt_options.cache
    context = current_task_context()
    if use_cache:
        if context is not None:
            context.publish(TaskStarted(context.task_name, "load", datetime.now(), os.getpid()))
        return cache.load_result_with_meta(storage, task)

    task.set_context(filtered_context)
    start = datetime.now()
    if context is not None:
        context.publish(TaskStarted(context.task_name, "run", start, os.getpid()))
    started = time.perf_counter()
    extra: dict[str, Any] | None = None
    try:
        if type(task)._lt_options.mlflow_run:
            from labtech_nb.mlflow_support import task_run

            with task_run(task, context.task_name if context is not None else None) as active:
                if context is not None:
                    # Announced at once, so a failed execution is linked to its (FAILED) run too.
                    context.publish(TaskMlflowRun(context.task_name, active.info.run_id))
                value = _execute(task)
            extra = {"mlflow_run_id": active.info.run_id}
        else:
            value = _execute(task)
    except BaseException as error:
        attach_traceback(error)
        raise
    meta = ResultMeta(start=start, duration=timedelta(seconds=time.perf_counter() - started))
    result = TaskResult(value=value, meta=meta, extra_metadata=extra)
    if task_caches_results(task, storage):
        try:
            cache.save(storage, task, result)
        except Exception as error:
            failure = CacheError(
                f"Task '{task}' ran, but its result could not be cached ({type(error).__name__}: {error}). "
                "Nothing was stored for it; make the result serializable by its cache, or use cache=None."
            )
            failure.__cause__ = error
            attach_traceback(failure, error)
            raise failure from error
    return result


def _execute(task: Any) -> Any:
    return task.run()


def attach_traceback(error: BaseException, source: BaseException | None = None) -> None:
    """Store the formatted traceback on the exception, so it survives being sent between processes."""
    if getattr(error, TRACEBACK_ATTRIBUTE, None):
        return
    origin = source if source is not None else error
    text = "".join(traceback.format_exception(type(origin), origin, origin.__traceback__))
    try:
        setattr(error, TRACEBACK_ATTRIBUTE, text)
    except (AttributeError, TypeError):
        pass


def traceback_text(error: BaseException) -> str:
    """Return the traceback attached to a task's exception (or format the exception itself)."""
    text = getattr(error, TRACEBACK_ATTRIBUTE, None)
    if text:
        return str(text)
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


__all__ = ["CacheEntryUnreadable", "Runner", "RunnerBackend", "run_or_load_task"]
