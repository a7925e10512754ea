"""The Ray runner backend: each task runs as a Ray task on a Ray cluster (``runner_backend='ray'``).

The Lab context enters the object store once. A result stays in the object store and reaches its
dependents by reference, as a top-level argument, so Ray resolves it zero-copy where possible and can
schedule dependents near the data. Output lines, in-task progress and start events travel to the
driver through a small queue actor, so the terminal view and the notebook dashboard work unchanged.

Requires ``pip install labtech_nb[ray]`` and a ``ray.init()`` before the run.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from labtech_nb.engine.capture import routed_output, task_context
from labtech_nb.engine.events import Event
from labtech_nb.exceptions import RunnerError, TaskDiedError
from labtech_nb.runners.base import Runner, RunnerBackend, attach_traceback, run_or_load_task
from labtech_nb.storage.base import Storage
from labtech_nb.types import LabContext, ResultMeta, TaskResult

try:
    import ray
except ImportError as error:  # pragma: no cover - exercised where ray is missing
    raise ImportError(
        "Failed to import the `ray` library, please run `pip install ray` to enable Labtech's Ray support."
    ) from error


@ray.remote
class _EventQueue:
    """Collects events from Ray workers until the driver fetches them."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def put(self, events: list[Event]) -> None:
        self.events.extend(events)

    def take(self) -> list[Event]:
        events, self.events = self.events, []
        return events


def _execute_remote(
    task: Any,
    task_name: str,
    context: LabContext,
    storage: Storage,
    queue: Any,
    dependency_tasks: list[Any],
    *dependency_values: Any,
) -> tuple[ResultMeta, Any]:
    results = {
        dependency: TaskResult(value, meta)
        for dependency, (meta, value) in zip(dependency_tasks, _pairs(dependency_values), strict=True)
    }
    for dependency in task._lt_dependencies():
        dependency._set_results_map(results)

    def publish(event: Event) -> None:
        queue.put.remote([event])

    with routed_output(), task_context(task_name, publish):
        result = run_or_load_task(task, False, task.filter_context(context), storage)
    return result.meta, result.value


def _pairs(values: Sequence[Any]) -> list[tuple[Any, Any]]:
    return [(values[index], values[index + 1]) for index in range(0, len(values), 2)]


_remote_execute = ray.remote(num_returns=2, max_retries=0)(_execute_remote)


class RayRunner(Runner):
    """Submits each task to Ray and keeps its result in the object store."""

    def __init__(self, *, context: LabContext, storage: Storage) -> None:
        self.storage = storage
        #: Where the driver loads cached results (the Lab's storage; workers may see it elsewhere).
        self.parent_storage = storage
        self._context_ref = ray.put(context)
        self._queue = _EventQueue.remote()  # type: ignore[attr-defined]
        self._results: dict[Any, tuple[Any, Any, Any]] = {}  # task -> (meta, meta ref, value ref)
        self._pending: dict[Any, tuple[Any, str]] = {}  # meta ref -> (task, name)
        self._value_refs: dict[Any, Any] = {}
        self._started: set[str] = set()
        self._cancelled: set[Any] = set()
        self._completed: deque[tuple[Any, ResultMeta | BaseException]] = deque()
        self._publish: Any = lambda event: None
        self.max_concurrency = int(ray.cluster_resources().get("CPU", 1)) or 1
        # Ray starts whatever it is given: hand it no more than it can run, so nothing sits queued
        # on the cluster where a stop could not reliably cancel it.
        self.max_in_flight = self.max_concurrency
        self._values: dict[Any, Any] = {}

    def set_event_publisher(self, publish: Any) -> None:
        self._publish = publish

    def submit_task(self, task: Any, task_name: str, use_cache: bool) -> None:
        if use_cache:
            self._load_in_driver(task, task_name)
            return
        dependencies = [dependency for dependency in dict.fromkeys(task._lt_dependencies()) if dependency in self._results]
        arguments: list[Any] = []
        for dependency in dependencies:
            _meta, meta_ref, value_ref = self._results[dependency]
            arguments += [meta_ref, value_ref]
        options = dict(task.runner_options().get("ray", {}).get("remote_options", {}))
        if type(task)._lt_options.mlflow_run:
            # Environment variables set after ray.init() never reach workers: send mlflow's along.
            mlflow_env = {
                name: value for name, value in os.environ.items() if name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")
            }
            runtime_env = dict(options.get("runtime_env") or {})
            runtime_env["env_vars"] = {**mlflow_env, **runtime_env.get("env_vars", {})}
            options["runtime_env"] = runtime_env
        remote = _remote_execute.options(name=task_name, **options) if options else _remote_execute.options(name=task_name)
        meta_ref, value_ref = remote.remote(
            task, task_name, self._context_ref, self.storage, self._queue, dependencies, *arguments
        )
        self._pending[meta_ref] = (task, task_name)
        self._value_refs[meta_ref] = value_ref

    def _load_in_driver(self, task: Any, task_name: str) -> None:
        try:
            with task_context(task_name, self._publish):
                result = run_or_load_task(task, True, None, self.parent_storage)
        except Exception as error:
            attach_traceback(error)
            self._completed.append((task, error))
            return
        self._results[task] = (result.meta, ray.put(result.meta), ray.put(result.value))
        self._completed.append((task, result.meta))

    def _drain_events(self) -> None:
        for event in ray.get(self._queue.take.remote()):
            name = getattr(event, "task_name", None)
            if name is not None and type(event).__name__ == "TaskStarted":
                self._started.add(name)
            self._publish(event)

    def wait(self, *, timeout_seconds: float | None) -> Iterator[tuple[Any, ResultMeta | BaseException]]:
        while self._completed:
            yield self._completed.popleft()
        self._drain_events()
        if not self._pending:
            return
        pending = list(self._pending)
        ready, _ = ray.wait(pending, num_returns=1, timeout=timeout_seconds or 0)
        if ready:
            # Collect everything else that is already finished, without waiting.
            ready, _ = ray.wait(pending, num_returns=len(pending), timeout=0)
            self._drain_events()
        for meta_ref in ready:
            task, _task_name = self._pending.pop(meta_ref)
            value_ref = self._value_refs.pop(meta_ref)
            outcome = self._outcome(task, meta_ref, value_ref)
            if outcome is not None:
                yield outcome

    def _outcome(self, task: Any, meta_ref: Any, value_ref: Any) -> tuple[Any, ResultMeta | BaseException] | None:
        """The outcome of a finished Ray task, or None for one this runner cancelled."""
        try:
            meta = ray.get(meta_ref)
        except Exception as error:
            _consume_error(value_ref)
            if isinstance(error, ray.exceptions.TaskCancelledError) and meta_ref in self._cancelled:
                return None
            failure = _task_failure(task, error)
            attach_traceback(failure)
            return task, failure
        self._results[task] = (meta, meta_ref, value_ref)
        return task, meta

    def cancel(self) -> None:
        for meta_ref, (_task, task_name) in list(self._pending.items()):
            if task_name not in self._started:
                self._cancelled.add(meta_ref)
                ray.cancel(meta_ref)

    def stop(self) -> None:
        for meta_ref in list(self._pending):
            self._cancelled.add(meta_ref)
            ray.cancel(meta_ref, force=True)

    def close(self) -> None:
        self.stop()
        self._pending.clear()
        self._results.clear()
        self._values.clear()
        ray.kill(self._queue)

    def pending_task_count(self) -> int:
        return len(self._pending) + len(self._completed)

    def get_result(self, task: Any) -> TaskResult[Any]:
        meta, _meta_ref, value_ref = self._results[task]
        if task not in self._values:
            self._values[task] = ray.get(value_ref)
        return TaskResult(self._values[task], meta)

    def remove_results(self, tasks: Sequence[Any]) -> None:
        for task in tasks:
            self._results.pop(task, None)
            self._values.pop(task, None)

    def get_task_infos(self) -> list[dict[str, Any]]:
        return [{"name": name, "status": "running"} for _task, name in self._pending.values() if name in self._started]


class RayRunnerBackend(RunnerBackend):
    """Runs each task as a Ray task (``runner_backend='ray'``); needs ``ray.init()`` first.

    Per-task Ray options (CPUs, GPUs, memory) come from the task's ``runner_options()``:
    ``{'ray': {'remote_options': {'num_cpus': 2}}}``.

    Args:
        monitor_interval_seconds: accepted for labtech compatibility (events replace polling).
        monitor_timeout_seconds: accepted for labtech compatibility.
    """

    def __init__(self, monitor_interval_seconds: float = 1, monitor_timeout_seconds: float = 5) -> None:
        self.monitor_interval_seconds = monitor_interval_seconds
        self.monitor_timeout_seconds = monitor_timeout_seconds

    def build_runner(self, *, context: LabContext, storage: Storage, max_workers: int | None) -> Runner:
        if not ray.is_initialized():
            raise RunnerError("Ray has not yet been initialized. Please call `ray.init()` to start or connect to a Ray cluster.")
        if max_workers is not None:
            raise RunnerError(
                "Remove max_workers from your Lab configuration, as RayRunnerBackend only supports max_workers=None. "
                "You can manage Ray concurrency by specifying required resources in the `runner_options` for a task: "
                "https://ben-denham.github.io/labtech/distributed/#ray-remote-function-options"
            )
        return RayRunner(context=context, storage=storage)


def _task_failure(task: Any, error: BaseException) -> BaseException:
    """The exception a task's failure on Ray is reported with: the task's own, or its death."""
    if isinstance(error, ray.exceptions.TaskCancelledError):
        return RunnerError(f"Task '{task}' was cancelled by Ray.")
    if isinstance(error, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.ActorDiedError)):
        return TaskDiedError(f"Task '{task}' died: its Ray worker crashed ({type(error).__name__}).")
    if isinstance(error, ray.exceptions.RayTaskError) and getattr(error, "cause", None) is not None:
        return error.cause  # type: ignore[no-any-return]
    return error


def _consume_error(value_ref: Any) -> None:
    """Fetch a failed task's second return too, so Ray does not report its error as unhandled."""
    try:
        ray.get(value_ref)
    except Exception:
        pass
