"""The exceptions labtech_nb raises.

Every error derives from :class:`LabtechError`, so ``except LabtechError`` catches all of them. The
hierarchy and names match labtech 1.x, so existing ``except`` clauses keep working.
"""

from __future__ import annotations

from typing import Any


class LabtechError(Exception):
    """Base class of every labtech_nb error."""


class LabError(LabtechError):
    """A problem with how a `Lab` was configured or used, or a run that did not complete.

    When a run fails, the error also carries what the run did achieve, so nothing computed is lost.

    Attributes:
        results: completed input tasks mapped to their results, in input order.
        failures: every task of the run that failed or was skipped, mapped to its exception.
    """

    def __init__(
        self,
        *args: Any,
        results: dict[Any, Any] | None = None,
        failures: dict[Any, BaseException] | None = None,
    ) -> None:
        super().__init__(*args)
        self.results: dict[Any, Any] = {} if results is None else results
        self.failures: dict[Any, BaseException] = {} if failures is None else failures


class TaskError(LabtechError):
    """A problem with a task definition, a parameter value, or a task's result."""


class CacheError(LabtechError):
    """A problem with reading or writing a cache entry."""


class TaskNotFound(CacheError):
    """A cache entry does not hold a task of the requested type."""


class StorageError(LabtechError):
    """A storage was asked for a key or file name it cannot hold."""


class SerializationError(LabtechError):
    """A task or parameter value cannot be serialized to, or rebuilt from, its cache form."""


class RunnerError(LabtechError):
    """A runner backend cannot be used or failed to run a task."""


class TaskDiedError(RunnerError):
    """The process running a task died before the task finished."""


class DependencyFailedError(LabtechError):
    """Recorded for a task that was skipped because one of its dependencies failed."""

    def __init__(self, task: Any, dependency: Any) -> None:
        super().__init__(f"Task '{task}' was skipped because its dependency '{dependency}' failed.")
        self.task = task
        self.dependency = dependency

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.task, self.dependency))


class CacheEntryUnreadable(CacheError):
    """A cache entry exists but is incomplete or corrupted; it is treated as not cached."""


__all__ = [
    "CacheEntryUnreadable",
    "CacheError",
    "DependencyFailedError",
    "LabError",
    "LabtechError",
    "RunnerError",
    "SerializationError",
    "StorageError",
    "TaskDiedError",
    "TaskError",
    "TaskNotFound",
]
