"""`Lab`: runs tasks (and their dependencies) with caching, and manages the cache."""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labtech_nb.cache import BaseCache, NullCache
from labtech_nb.engine.events import Observer, TaskLogLine
from labtech_nb.engine.run import Run
from labtech_nb.exceptions import CacheEntryUnreadable, LabError
from labtech_nb.log import log_task_line, logger
from labtech_nb.params import is_task, is_task_type
from labtech_nb.runners import resolve_backend
from labtech_nb.runners.base import RunnerBackend, task_caches_results
from labtech_nb.serialization import rebuilding_equal_tasks_once
from labtech_nb.storage.base import Storage
from labtech_nb.storage.local import LocalStorage, deleting_together
from labtech_nb.storage.null import NullStorage

if TYPE_CHECKING:
    from labtech_nb.cache_entries import CacheEntries
    from labtech_nb.engine.background import BackgroundRun

DEFAULT_TOP_FORMAT = "$name $status since $start_time CPU: $cpu MEM: $rss"
TOP_FIELDS = ("name", "pid", "status", "start_time", "children", "threads", "cpu", "rss", "vms")


class _DefaultStorage:
    def __repr__(self) -> str:
        return "<labtech_storage>"


_DEFAULT_STORAGE: Any = _DefaultStorage()


class Lab:
    """Runs tasks with their dependencies, in parallel, caching every result in a storage.

    Args:
        storage: where results are cached. A path (str or Path) for a local directory (created with
            its parents), None to cache nothing, or a `Storage` instance. Omitted: a local
            ``labtech_storage`` directory, with a warning.
        continue_on_failure: when a task fails, skip its dependents and finish everything else
            (True), or stop at the first failure (False). Either way the raised `LabError` carries
            the results that completed.
        max_workers: the most tasks running at once (None: the backend's default, usually the CPU count).
        notebook: force (True) or disable (False) the notebook view; None detects a Jupyter kernel.
        context: values handed to every task as ``self.context`` (not part of cache keys).
        runner_backend: a backend name (``'serial'``, ``'thread'``, ...), a `RunnerBackend`
            instance, or None for the platform default.
        observers: callables that receive every event of every run of this lab.
    """

    def __init__(
        self,
        *,
        storage: str | Path | Storage | None = _DEFAULT_STORAGE,
        continue_on_failure: bool = True,
        max_workers: int | None = None,
        notebook: bool | None = None,
        context: dict[str, Any] | None = None,
        runner_backend: str | RunnerBackend | None = None,
        observers: Iterable[Observer] = (),
    ) -> None:
        self._storage = _resolve_storage(storage)
        if max_workers is not None and (type(max_workers) is not int or max_workers < 1):
            raise LabError(f"max_workers must be a positive int or None, got {max_workers!r}.")
        if context is not None and not isinstance(context, dict):
            raise LabError(f"context must be a dict, got {type(context).__qualname__}.")
        self.continue_on_failure = continue_on_failure
        self.max_workers = max_workers
        self.context: dict[str, Any] = {} if context is None else context
        self.notebook = _in_jupyter_kernel() if notebook is None else bool(notebook)
        self.runner_backend = resolve_backend(runner_backend, max_workers=max_workers)
        self._observers: list[Observer] = list(observers)
        #: The most recent run of this lab (its ``progress`` and ``timeline()``), or None.
        self.last_run: Run | None = None

    @property
    def storage(self) -> Storage:
        """The storage results are cached in."""
        return self._storage

    def __repr__(self) -> str:
        return (
            f"Lab(storage={self._storage!r}, runner_backend={type(self.runner_backend).__name__}, max_workers={self.max_workers})"
        )

    def add_observer(self, observer: Observer) -> None:
        """Send every event of this lab's future runs to ``observer``."""
        self._observers.append(observer)

    def remove_observer(self, observer: Observer) -> None:
        """Stop sending events to ``observer``."""
        self._observers.remove(observer)

    # --- running --------------------------------------------------------------------------------

    def run_tasks(
        self,
        tasks: Sequence[Any],
        *,
        bust_cache: bool = False,
        disable_progress: bool = False,
        disable_top: bool = False,
        top_format: str = DEFAULT_TOP_FORMAT,
        top_sort: str = "start_time",
        top_n: int = 10,
        observers: Iterable[Observer] = (),
    ) -> dict[Any, Any]:
        """Run tasks (loading cached results where possible) and return their results.

        Each distinct task runs once, however often it appears; dependencies run first. A cached
        task is loaded, and its own dependencies are neither run nor loaded.

        Args:
            tasks: the tasks to run.
            bust_cache: ignore cached results (dependencies included), re-run and overwrite them.
            disable_progress: hide the per-type progress bars.
            disable_top: hide the table of active tasks.
            top_format: a `string.Template` for each active-task line.
            top_sort: the field active tasks are sorted by (``-`` prefix: descending).
            top_n: the most active tasks shown.
            observers: callables that receive every event of this run.

        Returns:
            ``{task: result}`` for the given tasks, in input order (equal tasks collapse).

        Raises:
            LabError: an element is not a task, a task loaded from the cache is outdated, or a task
                did not complete. The error carries ``.results`` and ``.failures``.
        """
        _check_top_options(top_format, top_sort, top_n)
        from labtech_nb.views.selection import build_views

        run = self._new_run(
            tasks,
            bust_cache=bust_cache,
            views=build_views(
                notebook=self.notebook,
                disable_progress=disable_progress,
                disable_top=disable_top,
                top_format=top_format,
                top_sort=top_sort,
                top_n=top_n,
            ),
            observers=observers,
        )
        return run.execute(on_claimed=lambda: setattr(self, "last_run", run))

    def run_tasks_in_background(
        self,
        tasks: Sequence[Any],
        *,
        bust_cache: bool = False,
        observers: Iterable[Observer] = (),
    ) -> BackgroundRun:
        """Start a run in a background thread and return its handle at once.

        The kernel (or script) stays free while the run goes on. In a notebook the handle displays
        the live dashboard with a Stop button; its output never lands in other cells.

        Args:
            tasks: the tasks to run.
            bust_cache: ignore cached results (dependencies included), re-run and overwrite them.
            observers: callables that receive every event of this run (called in the run's thread).

        Returns:
            A `BackgroundRun`: ``wait()``, ``cancel()``, ``done``, ``results``, ``failures``, ``progress``.

        Raises:
            LabError: as `run_tasks` does for bad input, or when another run is using the same storage.
        """
        from labtech_nb.engine.background import BackgroundRun

        handle = BackgroundRun()
        run = self._new_run(tasks, bust_cache=bust_cache, views=[], observers=observers, log_line=handle.add_log_line)
        handle.start(run)
        self.last_run = run
        return handle

    def _new_run(
        self,
        tasks: Sequence[Any],
        *,
        bust_cache: bool,
        views: list[Observer],
        observers: Iterable[Observer],
        log_line: Any = None,
    ) -> Run:
        input_tasks = self._check_tasks(tasks, "run_tasks")
        for task in input_tasks:
            _check_code_version(task)
        if isinstance(self._storage, LocalStorage):
            self._storage.remove_abandoned_writes()
        output = _log_task_output if log_line is None else _TaskOutputToSink(log_line)
        return Run(
            self,
            input_tasks,
            use_cache=not bust_cache,
            observers=[output, *self._observers, *observers, *views],
            background=log_line is not None,
        )

    def run_task(self, task: Any, **kwargs: Any) -> Any:
        """Run one task (see `run_tasks` for the keyword options) and return its result."""
        if not is_task(task):
            raise LabError(_not_a_task_message(task))
        return self.run_tasks([task], **kwargs)[task]

    # --- the cache ------------------------------------------------------------------------------

    def _is_cached_quick(self, task: Any) -> bool:
        """One existence check: the scheduler's test (an unreadable entry is detected on load)."""
        if not task_caches_results(task, self._storage):
            return False
        return bool(type(task)._lt_options.cache.is_cached(self._storage, task))

    def is_cached(self, task: Any) -> bool:
        """Return whether a complete, readable entry for the task is in the storage.

        Raises:
            LabError: ``task`` is not a task.
        """
        if not is_task(task):
            raise LabError(_not_a_task_message(task))
        if not self._is_cached_quick(task):
            return False
        cache = type(task)._lt_options.cache
        if isinstance(cache, BaseCache):
            try:
                metadata = cache.load_metadata(self._storage, task.cache_key)
            except CacheEntryUnreadable:
                return False
            return metadata.get("cache") == type(cache).__qualname__ and cache.entry_is_complete(self._storage, task)
        return True

    def cached_tasks(self, task_types: Sequence[type]) -> list[Any]:
        """Return one task per cached entry of the given types, in storage key order.

        The tasks carry their parameters, ``code_version`` and ``result_meta`` (not their results:
        pass them to `run_tasks` to load those). Entries that cannot be rebuilt (e.g. their class
        no longer imports) are skipped with a warning.

        Raises:
            LabError: an element is not a task type.
        """
        types = list(task_types)
        for task_type in types:
            if not is_task_type(task_type):
                raise LabError(f"`{task_type!r}` is not a task type, please provide a class decorated with @labtech.task.")
        caching_types = [t for t in types if not isinstance(t._lt_options.cache, NullCache)]  # type: ignore[attr-defined]
        if not caching_types or isinstance(self._storage, NullStorage):
            return []
        found = []
        with rebuilding_equal_tasks_once():
            for key in self._storage.find_keys():
                for task_type in caching_types:
                    cache = task_type._lt_options.cache  # type: ignore[attr-defined]
                    if isinstance(cache, BaseCache) and not key.startswith(cache.key_prefix_for(task_type)):
                        continue
                    task = _load_listed_task(cache, self._storage, task_type, key)
                    if task is not None:
                        found.append(task)
                        break
        return found

    def cache_entries(self, task_types: Sequence[type] | None = None) -> CacheEntries:
        """Describe the cached entries (of the given types, or all) without loading any result.

        Keys are listed at once; each entry's metadata is read when the entry is first looked at.

        Returns:
            A `CacheEntries` sequence of `CacheEntry` rows: key, task type, parameters,
            code_version and whether it is stale, start, duration, size on disk, whether the class
            still imports, and the mlflow run id when one was recorded.
        """
        from labtech_nb.cache_entries import CacheEntries

        if task_types is not None:
            for task_type in task_types:
                if not is_task_type(task_type):
                    raise LabError(f"`{task_type!r}` is not a task type, please provide a class decorated with @labtech.task.")
        return CacheEntries(self._storage, task_types)

    def browse_cache(self, task_types: Sequence[type] | None = None) -> Any:
        """Open the cache browser widget (in a notebook): filter, sort, inspect, load and uncache entries."""
        from labtech_nb.notebook.browser import CacheBrowser

        return CacheBrowser(self, task_types=task_types)

    def uncache_tasks(self, tasks: Sequence[Any]) -> None:
        """Delete the cache entries of the given tasks (not of their dependencies); missing ones are ignored.

        Raises:
            LabError: an element is not a task.
        """
        with deleting_together():
            for task in self._check_tasks(tasks, "uncache_tasks"):
                if task_caches_results(task, self._storage):
                    type(task)._lt_options.cache.delete(self._storage, task)

    # --- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _check_tasks(tasks: Any, method: str) -> list[Any]:
        if is_task(tasks):
            raise LabError(f"{method}() takes a list of tasks, got the single task `{tasks!r}`; wrap it in a list.")
        try:
            task_list = list(tasks)
        except TypeError:
            raise LabError(f"{method}() takes a list of tasks, got {type(tasks).__qualname__}.") from None
        for task in task_list:
            if not is_task(task):
                raise LabError(_not_a_task_message(task))
        return task_list


def _load_listed_task(cache: Any, storage: Storage, task_type: type, key: str) -> Any:
    from labtech_nb.exceptions import TaskNotFound

    try:
        return cache.load_task(storage, task_type, key)
    except TaskNotFound:
        return None
    except Exception as error:
        logger.warning(f"Skipping cache entry '{key}' of {task_type.__qualname__}: {type(error).__name__}: {error}")
        return None


def _not_a_task_message(value: Any) -> str:
    if is_task_type(value):
        return (
            f"`{value!r}` is not a task, please provide a task object made from a class decorated with @labtech.task. "
            f"(It is a task type: construct a task from it, e.g. {value.__name__}(...).)"
        )
    return f"`{value!r}` is not a task, please provide a task object made from a class decorated with @labtech.task."


def _check_code_version(task: Any) -> None:
    if task.code_version != task.current_code_version:
        type_name = type(task).__qualname__
        raise LabError(
            f"`{task!r}` cannot be run, as it has code_version={task.code_version!r} while the current implementation "
            f"of {type_name} has code_version={task.current_code_version!r}. You should construct new {type_name} "
            "tasks to run instead of running tasks loaded from cache."
        )


def _check_top_options(top_format: str, top_sort: str, top_n: int) -> None:
    template = string.Template(top_format)
    for match in template.pattern.finditer(top_format):
        name = match.group("named") or match.group("braced")
        if match.group("invalid") is not None:
            raise LabError(f"top_format {top_format!r} has an invalid '$' placeholder; use $$ for a literal '$'.")
        if name is not None and name not in TOP_FIELDS:
            raise LabError(f"top_format uses unknown field '${name}'; valid fields are: {', '.join(TOP_FIELDS)}.")
    if top_sort.lstrip("-") not in TOP_FIELDS:
        raise LabError(f"top_sort {top_sort!r} is not a field; use one of: {', '.join(TOP_FIELDS)} (prefix '-' to reverse).")
    if type(top_n) is not int or top_n < 0:
        raise LabError(f"top_n must be a non-negative int, got {top_n!r}.")


def _resolve_storage(storage: Any) -> Storage:
    if storage is _DEFAULT_STORAGE:
        logger.warning(
            'Caching labtech results in a local "labtech_storage" directory. '
            "Construct Lab() with a storage argument to suppress this warning."
        )
        return LocalStorage("labtech_storage")
    if storage is None:
        return NullStorage()
    if isinstance(storage, (str, Path)):
        return LocalStorage(storage)
    if isinstance(storage, Storage) or all(hasattr(storage, name) for name in ("find_keys", "exists", "file_handle", "delete")):
        return storage  # type: ignore[no-any-return]
    raise LabError(f"storage must be a path, None or a Storage instance, got {storage!r}.")


def _in_jupyter_kernel() -> bool:
    """True inside a Jupyter kernel (never in terminal IPython).

    Which view a run gets is decided by `labtech_nb.views.selection.progress_mode`, from this and
    ``LABTECH_NB_PROGRESS``.
    """
    import sys

    ipython_module = sys.modules.get("IPython")
    shell = ipython_module.get_ipython() if ipython_module is not None else None
    return shell is not None and hasattr(shell, "kernel")


def _log_task_output(event: Any) -> None:
    if isinstance(event, TaskLogLine):
        log_task_line(event.task_name, event.stream, event.level, event.line)


class _TaskOutputToSink:
    """For background runs: task output goes to the run's handle, never to whichever cell is running."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink

    def __call__(self, event: Any) -> None:
        if isinstance(event, TaskLogLine):
            self.sink(f"{event.task_name}: {event.line}")


__all__ = ["Lab"]
