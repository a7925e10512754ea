"""The plain functions behind the ``%labtech`` magics (each magic subcommand is a thin layer over one)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from labtech_nb.engine.lab import Lab
from labtech_nb.engine.run import RECENT_RUNS, Run
from labtech_nb.params import is_task, is_task_type
from labtech_nb.runners import resolve_backend


class CommandError(Exception):
    """Bad input to a command: the message says what was wrong and what to do."""


def find_lab(namespace: Mapping[str, Any], name: str | None = None) -> Lab:
    """Return the Lab named ``name``, or the only Lab in ``namespace``.

    Raises:
        CommandError: the name is missing or not a Lab, or there is no Lab or more than one.
    """
    if name is not None:
        if name not in namespace:
            raise CommandError(f"No variable named '{name}'. Pass --lab with the name of a Lab, e.g. --lab lab.")
        if not isinstance(namespace[name], Lab):
            raise CommandError(f"'{name}' is a {type(namespace[name]).__qualname__}, not a Lab.")
        return namespace[name]
    labs = sorted(key for key, value in namespace.items() if isinstance(value, Lab) and not key.startswith("_"))
    if not labs:
        raise CommandError("No Lab found in the notebook. Create one first, e.g. lab = labtech.Lab(storage='storage').")
    if len(labs) > 1:
        raise CommandError(f"Several Labs found ({', '.join(labs)}); choose one with --lab NAME.")
    return namespace[labs[0]]


def as_task_list(value: Any, expression: str) -> list[Any]:
    """Turn the value of a TASKS expression (a task or an iterable of tasks) into a list.

    Raises:
        CommandError: the value is not a task or an iterable of tasks.
    """
    if is_task(value):
        return [value]
    if is_task_type(value):
        raise CommandError(f"'{expression}' is a task type, not a task: construct tasks from it, e.g. {value.__name__}(...).")
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise CommandError(f"'{expression}' is a {type(value).__qualname__}, not a task or a list of tasks.")
    tasks = list(value)
    for item in tasks:
        if not is_task(item):
            raise CommandError(f"'{expression}' contains {item!r}, which is not a task.")
    return tasks


def lab_with(lab: Lab, *, backend: str | None = None, workers: int | None = None) -> Lab:
    """A copy of ``lab`` with another runner backend and/or worker limit (same storage and context)."""
    if backend is None and workers is None:
        return lab
    if workers is not None and workers < 1:
        raise CommandError(f"--workers must be at least 1, got {workers}.")
    changed = copy.copy(lab)
    changed.max_workers = workers if workers is not None else lab.max_workers
    try:
        changed.runner_backend = resolve_backend(backend, max_workers=changed.max_workers) if backend else lab.runner_backend
    except Exception as error:
        raise CommandError(str(error)) from None
    return changed


def run_tasks(lab: Lab, tasks: list[Any], *, bust_cache: bool = False, background: bool = False) -> Any:
    """Run tasks in the foreground (returning results) or the background (returning the handle)."""
    if background:
        return lab.run_tasks_in_background(tasks, bust_cache=bust_cache)
    return lab.run_tasks(tasks, bust_cache=bust_cache)


def status_rows() -> list[dict[str, Any]]:
    """One row per recent run of this process, oldest first: number, where, state and counts."""
    rows = []
    for number, run in enumerate(RECENT_RUNS, start=1):
        totals = run.progress.totals
        rows.append(
            {
                "run": number,
                "mode": "background" if run.background else "foreground",
                "state": run.progress.state,
                "done": totals.done,
                "cached": totals.loaded,
                "failed": totals.failed,
                "skipped": totals.skipped,
                "remaining": totals.remaining,
                "total": totals.total,
            }
        )
    return rows


def format_status(rows: list[dict[str, Any]]) -> str:
    """The status rows as an aligned text table."""
    if not rows:
        return "No runs yet in this kernel."
    columns = list(rows[0])
    widths = {column: max(len(column), *(len(str(row[column])) for row in rows)) for column in columns}
    lines = ["  ".join(column.ljust(widths[column]) for column in columns)]
    lines += ["  ".join(str(row[column]).ljust(widths[column]) for column in columns) for row in rows]
    return "\n".join(lines)


def find_run(identifier: str | None, *, active_only: bool) -> Run:
    """The run numbered ``identifier`` in `status_rows`, or the only active background run.

    Raises:
        CommandError: no such run, or no single active run to choose.
    """
    runs = list(RECENT_RUNS)
    if identifier is not None:
        try:
            return runs[int(identifier) - 1]
        except (ValueError, IndexError):
            raise CommandError(f"No run numbered {identifier!r}; see %labtech status for the run numbers.") from None
    candidates = [run for run in runs if run.progress.state in ("pending", "running")] if active_only else runs[-1:]
    if not candidates:
        raise CommandError("There is no active run." if active_only else "There is no run yet.")
    if len(candidates) > 1:
        raise CommandError(f"{len(candidates)} runs are active; name one, e.g. %labtech stop {runs.index(candidates[-1]) + 1}.")
    return candidates[0]


def stop_run(run: Run, *, force: bool = False) -> str:
    """Ask a run to stop (first: finish running tasks; again or ``force``: terminate them)."""
    if run.handle is not None:
        run.handle.cancel(force=force)
    else:
        run.request_stop(force=force)
    return (
        "Stopping: running tasks will finish and be cached."
        if not force and run._stop_requests == 1
        else "Terminating running tasks."
    )


def uncache(lab: Lab, tasks: list[Any], *, confirm: Callable[[str], bool] | None) -> str:
    """Delete the cache entries of ``tasks`` after ``confirm(question)`` agrees (None: no question)."""
    cached = [task for task in dict.fromkeys(tasks) if lab.is_cached(task)]
    if not cached:
        return "None of these tasks is cached; nothing to delete."
    if confirm is not None and not confirm(f"Delete {len(cached)} cache entr{'y' if len(cached) == 1 else 'ies'}?"):
        return "Nothing deleted."
    lab.uncache_tasks(cached)
    return f"Deleted {len(cached)} cache entr{'y' if len(cached) == 1 else 'ies'}."


def cache_listing(lab: Lab, types: list[type]) -> str:
    """A text table of the cached tasks of ``types``."""
    lines = []
    for task in lab.cached_tasks(types):
        meta = task.result_meta
        started = meta.start.strftime("%Y-%m-%d %H:%M:%S") if meta is not None and meta.start else "-"
        lines.append(f"{task!r}  started {started}")
    return "\n".join(lines) if lines else "No cached tasks of these types."
