"""One run of a lab: its task graph, event bus, runner and scheduler, executed in the calling thread.

`Lab.run_tasks` executes a `Run` in the caller's thread; `Lab.run_tasks_in_background` executes it in
a thread of its own (see `labtech_nb.engine.background`).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import Any

from labtech_nb.engine.events import EventBus, Observer
from labtech_nb.engine.graph import NodeState, TaskGraph
from labtech_nb.engine.progress import RunProgress
from labtech_nb.engine.scheduler import RunScheduler
from labtech_nb.exceptions import LabError

#: The most recent runs of this process, newest last (for ``%labtech status``).
RECENT_RUNS: deque[Run] = deque(maxlen=20)

_active_lock = threading.Lock()
#: Storage identity -> the run using it: two runs writing one storage at once are refused.
_active_runs: dict[Any, Run] = {}


def storage_identity(storage: Any) -> Any:
    """What makes two storage objects the same place (a local directory's path, else the object)."""
    root = getattr(storage, "_root", None)
    return ("local", root) if root is not None else ("object", id(storage))


class Run:
    """Everything one run needs; `execute` runs it to the end and returns the input tasks' results."""

    def __init__(
        self, lab: Any, input_tasks: list[Any], *, use_cache: bool, observers: list[Observer], background: bool = False
    ) -> None:
        self.lab = lab
        self.input_tasks = input_tasks
        self.background = background
        self.graph = TaskGraph(lambda task: use_cache and lab._is_cached_quick(task))
        self.graph.add_inputs(input_tasks)
        #: The run's progress model, kept up to date whatever views are attached.
        self.progress = RunProgress()
        self.bus = EventBus([self.progress, *observers])
        self.scheduler: RunScheduler | None = None
        #: The `BackgroundRun` controlling this run, if it runs in the background.
        self.handle: Any = None
        self.results: dict[Any, Any] = {}
        self._stop_requests = 0
        self._storage_key: Any = None

    def timeline(self) -> Any:
        """A matplotlib figure of this run: one lane per worker, bars coloured by task type."""
        from labtech_nb.notebook.timeline import plot_timeline

        return plot_timeline(self.progress)

    def request_stop(self, *, force: bool = False) -> None:
        """Ask the run to stop: first finish running tasks, or (``force``/a second request) terminate them.

        Safe to call from any thread.
        """
        self._stop_requests = max(self._stop_requests + 1, 2 if force else 1)
        if self.scheduler is not None:
            self.scheduler.request_stop(self._stop_requests)

    def execute(self, on_claimed: Any = None) -> dict[Any, Any]:
        """Run every task; return ``{input task: result}`` or raise `LabError` carrying partial results."""
        self._claim_storage()
        if on_claimed is not None:
            on_claimed()
        try:
            return self._execute()
        finally:
            self._release_storage()
            self._remove_abandoned_writes()

    def _remove_abandoned_writes(self) -> None:
        # Writes left by processes that died (including workers of a lab process that was killed) go too.
        remove = getattr(self.lab.storage, "remove_abandoned_writes", None)
        if remove is not None:
            try:
                remove()
            except OSError:
                pass

    def _execute(self) -> dict[Any, Any]:
        RECENT_RUNS.append(self)
        lab = self.lab
        from labtech_nb.mlflow_support import prepare_tracking

        prepare_tracking(node.task for node in self.graph.nodes.values() if not node.cached)
        self.bus.set_coordinator()
        runner = lab.runner_backend.build_runner(
            context=lab.context, storage=lab.storage.get_runner_storage(), max_workers=lab.max_workers
        )
        if hasattr(runner, "parent_storage"):
            runner.parent_storage = lab.storage
        set_publisher = getattr(runner, "set_event_publisher", None)
        if set_publisher is not None:
            set_publisher(self.bus.publish)
        concurrency = getattr(runner, "max_concurrency", None) or lab.max_workers or os.cpu_count() or 1
        scheduler = RunScheduler(
            graph=self.graph,
            runner=runner,
            bus=self.bus,
            continue_on_failure=lab.continue_on_failure,
            max_in_flight=getattr(runner, "max_in_flight", None) or 2 * concurrency,
            is_cached=lab._is_cached_quick,
        )
        self.scheduler = scheduler
        if self._stop_requests:
            scheduler.request_stop(self._stop_requests)
        try:
            scheduler.run()
            self.results = collect_results(self.graph, scheduler.input_task_results, self.input_tasks)
        except KeyboardInterrupt:
            self.results = collect_results(self.graph, scheduler.input_task_results, self.input_tasks)
            raise
        finally:
            runner.close()

        if scheduler.stop_cause is not None:
            raise LabError(
                str(scheduler.stop_cause), results=self.results, failures=dict(scheduler.failures)
            ) from scheduler.stop_cause
        failed_inputs = sum(1 for node in self.graph.inputs if node.state is not NodeState.DONE)
        if scheduler.stopped_by_request and failed_inputs:
            raise LabError(
                f"Run stopped before completing {failed_inputs} submitted task(s)",
                results=self.results,
                failures=dict(scheduler.failures),
            )
        if failed_inputs:
            raise LabError(
                f"Failed to complete {failed_inputs} submitted task(s)", results=self.results, failures=dict(scheduler.failures)
            )
        return self.results

    def _claim_storage(self) -> None:
        from labtech_nb.storage.null import NullStorage

        if isinstance(self.lab.storage, NullStorage):
            return
        key = storage_identity(self.lab.storage)
        with _active_lock:
            other = _active_runs.get(key)
            if other is not None:
                raise LabError(
                    f"Another run is already using storage {self.lab.storage!r}. Wait for it to finish "
                    "(handle.wait()) or stop it (handle.cancel()) before starting a new run on the same storage."
                )
            _active_runs[key] = self
            self._storage_key = key

    def _release_storage(self) -> None:
        if self._storage_key is not None:
            with _active_lock:
                _active_runs.pop(self._storage_key, None)
            self._storage_key = None


def storage_is_busy(storage: Any) -> bool:
    """Whether a run is currently using this storage (e.g. to disable deleting from it)."""
    with _active_lock:
        return storage_identity(storage) in _active_runs


def collect_results(graph: TaskGraph, input_task_results: dict[Any, Any], input_tasks: list[Any]) -> dict[Any, Any]:
    """Attach the inputs' results to the run's task objects and return them by input task."""
    final_map: dict[Any, Any] = {}
    for node in graph.inputs:
        if node.state is NodeState.DONE and node.task in input_task_results:
            final_map[node.task] = input_task_results[node.task]
    # Every task object of the run gets the final map: inputs find their results in it, and a
    # released dependency reports "not available in memory" under every runner.
    for node in graph.nodes.values():
        for task_object in node.objects:
            task_object._set_results_map(final_map)
    results: dict[Any, Any] = {}
    for task in input_tasks:
        if task in final_map and task not in results:
            results[task] = final_map[task].value
    return results
