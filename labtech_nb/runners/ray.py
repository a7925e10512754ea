"""The Ray runner backend: each task runs as a Ray task on a Ray cluster (``runner_backend='ray'``).

The Lab context enters the object store once. A result stays in the object store and reaches its
dependents by reference, as a top-level argument, so Ray resolves it zero-copy where possible and can
schedule dependents near the data. Output lines, in-task progress and start events travel to the
driver through a small queue actor, so the terminal view and the notebook dashboard work unchanged.

Stopping has two stages, as with the local backends. The first lets running tasks finish and cancels
those Ray has not started: each Ray task asks the queue actor for leave to begin, and the driver
cancels through the same actor, so a task is either cancelled before it begins or left to finish,
however late its start event reaches the driver. The second force-cancels the running tasks, which
kills their Ray workers.

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


#: What a Ray task returns (as its metadata) when the run was stopped before it could begin.
_NOT_STARTED = "labtech_nb:not-started"

#: How long closing the runner waits for Ray to confirm that force-cancelled tasks ended.
_CANCEL_TIMEOUT_SECONDS = 5.0

#: How a Ray task this runner cancelled ends (a forced cancel kills the worker: WorkerCrashedError).
_CANCELLED_ERRORS = (ray.exceptions.TaskCancelledError, ray.exceptions.WorkerCrashedError)


@ray.remote
class _EventQueue:
    """Collects events from Ray workers until the driver fetches them, and decides which tasks begin.

    Its methods run one at a time, so a submission either begins (and is then left to finish by a
    first stop) or is cancelled (and then never runs its task), never both.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.begun: set[int] = set()
        self.cancelled: set[int] = set()

    def put(self, events: list[Event]) -> None:
        self.events.extend(events)

    def take(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    def begin(self, submission: int) -> bool:
        """Whether a Ray task about to run a task may do so (False once the driver cancelled it)."""
        if submission in self.cancelled:
            return False
        self.begun.add(submission)
        return True

    def cancel(self, submissions: list[int]) -> list[int]:
        """Cancel those of ``submissions`` that have not begun; returns them."""
        waiting = [submission for submission in submissions if submission not in self.begun]
        self.cancelled.update(waiting)
        return waiting


def _execute_remote(
    task: Any,
    task_name: str,
    submission: int,
    context: LabContext,
    storage: Storage,
    queue: Any,
    dependency_tasks: list[Any],
    *dependency_values: Any,
) -> tuple[ResultMeta | str, Any]:
    # Wait on a future rather than with ray.get: a task blocked in ray.get lends its CPUs to other
    # Ray tasks meanwhile, which could start a task the cluster has no room for.
    if not queue.begin.remote(submission).future().result():
        return _NOT_STARTED, None
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
        self._pending: dict[Any, tuple[Any, str, int]] = {}  # meta ref -> (task, name, submission number)
        self._submissions = 0
        self._value_refs: dict[Any, Any] = {}
        self._started: set[str] = set()
        self._cancelled: set[Any] = set()
        self._completed: deque[tuple[Any, ResultMeta | BaseException]] = deque()
        self._publish: Any = lambda event: None
        self.max_concurrency = int(ray.cluster_resources().get("CPU", 1)) or 1
        # Hand Ray no more than it can run: the rest waits in the lab's queue, where the views count
        # it as queued and a stop drops it without asking the cluster.
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
        self._submissions += 1
        meta_ref, value_ref = remote.remote(
            task, task_name, self._submissions, self._context_ref, self.storage, self._queue, dependencies, *arguments
        )
        self._pending[meta_ref] = (task, task_name, self._submissions)
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
            task, _task_name, _submission = self._pending.pop(meta_ref)
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
            if meta_ref in self._cancelled and isinstance(error, _CANCELLED_ERRORS):
                return None
            failure = _task_failure(task, error)
            attach_traceback(failure)
            return task, failure
        if isinstance(meta, str) and meta == _NOT_STARTED:
            return None
        self._results[task] = (meta, meta_ref, value_ref)
        return task, meta

    def cancel(self) -> None:
        """Cancel the Ray tasks that have not begun; running ones finish (and cache) as usual."""
        submissions = {submission: meta_ref for meta_ref, (_task, _name, submission) in self._pending.items()}
        if not submissions:
            return
        # The queue actor decides: whatever it reports as not begun never runs its task, even if
        # Ray already placed it on a worker, so the (non-forced) Ray cancel cannot interrupt a task.
        for submission in ray.get(self._queue.cancel.remote(list(submissions))):
            meta_ref = submissions[submission]
            self._cancelled.add(meta_ref)
            ray.cancel(meta_ref)

    def stop(self) -> None:
        """Force-cancel every Ray task of the run: running ones end with their workers killed."""
        for meta_ref in list(self._pending):
            self._cancelled.add(meta_ref)
            ray.cancel(meta_ref, force=True)

    def close(self) -> None:
        try:
            self.stop()
            if self._pending:
                # Return once Ray has ended the cancelled tasks (after a second Ctrl-C, for instance).
                pending = list(self._pending)
                ended, _ = ray.wait(pending, num_returns=len(pending), timeout=_CANCEL_TIMEOUT_SECONDS)
                for meta_ref in ended:
                    _consume_error(meta_ref)
                    _consume_error(self._value_refs[meta_ref])
        finally:
            self._pending.clear()
            self._value_refs.clear()
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
        return [
            {"name": name, "status": "running"} for _task, name, _submission in self._pending.values() if name in self._started
        ]


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
