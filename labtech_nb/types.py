"""Types shared across labtech_nb: results, their metadata, and the backend contracts.

``Cache``, ``Storage``, ``Runner`` and ``RunnerBackend`` are defined next to their implementations
(``labtech_nb.cache``, ``labtech_nb.storage``, ``labtech_nb.runners``) and re-exported here for code
written against labtech's ``labtech.types``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from labtech_nb.params import is_task, is_task_type

if TYPE_CHECKING:
    from labtech_nb.cache import Cache
    from labtech_nb.runners.base import Runner, RunnerBackend
    from labtech_nb.storage.base import Storage

ResultT = TypeVar("ResultT")
ResultT_co = TypeVar("ResultT_co", covariant=True)

#: The Lab context handed to tasks (after ``filter_context``).
LabContext = dict[str, Any]


@dataclass(frozen=True)
class ResultMeta:
    """When a result was computed and how long it took.

    Attributes:
        start: naive local time at which ``run()`` started, or None when unknown.
        duration: how long ``run()`` took, or None when unknown.
    """

    start: datetime | None
    duration: timedelta | None


@dataclass(frozen=True)
class TaskResult(Generic[ResultT]):
    """A task's result value together with its `ResultMeta`.

    Attributes:
        value: the result.
        meta: when it was computed and how long it took.
        extra_metadata: keys added to the entry's ``metadata.json`` (e.g. ``mlflow_run_id``).
    """

    value: ResultT
    meta: ResultMeta
    extra_metadata: dict[str, Any] | None = None


class Task(Protocol[ResultT_co]):
    """What every task instance provides (the ``@task`` decorator adds these members)."""

    @property
    def cache_key(self) -> str: ...

    @property
    def result(self) -> ResultT_co: ...

    @property
    def result_meta(self) -> ResultMeta | None: ...

    @property
    def context(self) -> LabContext | None: ...

    @property
    def code_version(self) -> str | None: ...

    @property
    def current_code_version(self) -> str | None: ...

    def run(self) -> ResultT_co: ...

    def filter_context(self, context: LabContext) -> LabContext: ...

    def runner_options(self) -> dict[str, Any]: ...


#: Information about one active task, as shown by the terminal "top" table.
TaskMonitorInfo = dict[str, Any]
TaskInfo = dict[str, Any]


def __getattr__(name: str) -> Any:
    if name == "Cache":
        from labtech_nb.cache import Cache

        return Cache
    if name == "Storage":
        from labtech_nb.storage.base import Storage

        return Storage
    if name in ("Runner", "RunnerBackend"):
        from labtech_nb.runners import base

        return getattr(base, name)
    raise AttributeError(f"module 'labtech_nb.types' has no attribute {name!r}")


__all__ = [
    "Cache",
    "LabContext",
    "ResultMeta",
    "ResultT",
    "Runner",
    "RunnerBackend",
    "Storage",
    "Task",
    "TaskInfo",
    "TaskMonitorInfo",
    "TaskResult",
    "is_task",
    "is_task_type",
]
