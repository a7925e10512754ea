"""Reporting progress from inside a task's ``run()``, in every runner.

    for fold in labtech_nb.progress(folds, desc="folds"):
        ...

    labtech_nb.report_progress(done=3, total=10, description="epochs")

Updates are throttled where they originate (at most ten a second per task) and travel to the
parent like any other event; outside a running task both functions do nothing but iterate.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from labtech_nb.engine.capture import current_task_context

T = TypeVar("T")


def report_progress(done: float, total: float | None = None, description: str | None = None) -> None:
    """Report how far the running task has got.

    Args:
        done: units completed so far.
        total: units in all, when known.
        description: what the units are, e.g. ``"folds"``.
    """
    context = current_task_context()
    if context is not None:
        context.progress(done, total, description, force=total is not None and done >= total)


def progress(iterable: Iterable[T], desc: str | None = None, total: int | None = None) -> Iterator[T]:
    """Iterate over ``iterable`` while reporting progress for the running task (like ``tqdm``).

    Args:
        iterable: the items.
        desc: what the items are, shown beside the task's progress.
        total: the number of items, if ``len(iterable)`` does not work.

    Yields:
        The items of ``iterable``.
    """
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    report_progress(0, total, desc)
    done = 0
    for item in iterable:
        yield item
        done += 1
        report_progress(done, total, desc)
