"""The scheduler of one run: ready queues, dependency counters, failure policy and interrupts.

Each completion costs time proportional to the task's own edges, never to the size of the run: no
rescans of pending tasks and no list-membership tests.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from typing import Any

from labtech_nb.engine.events import (
    EventBus,
    RunFinished,
    RunStarted,
    TaskFailed,
    TaskLoaded,
    TaskQueued,
    TasksAdded,
    TaskSkipped,
    TaskSucceeded,
)
from labtech_nb.engine.graph import NodeState, TaskGraph, TaskNode
from labtech_nb.exceptions import CacheEntryUnreadable, DependencyFailedError
from labtech_nb.log import logger
from labtech_nb.runners.base import Runner, traceback_text
from labtech_nb.types import ResultMeta, TaskResult

#: How long one wait for completions lasts before queued events are delivered again.
WAIT_SECONDS = 0.05


class RunScheduler:
    """Drives one run: submits ready tasks to the runner and reacts to their outcomes.

    Args:
        graph: the run's task graph (inputs added).
        runner: where tasks execute.
        bus: where events go.
        continue_on_failure: skip a failed task's dependents and go on, instead of stopping.
        max_in_flight: the most tasks handed to the runner at once.
        is_cached: re-checks the cache for a task whose result must be produced again.
    """

    def __init__(
        self,
        *,
        graph: TaskGraph,
        runner: Runner,
        bus: EventBus,
        continue_on_failure: bool,
        max_in_flight: int,
        is_cached: Callable[[Any], bool],
    ) -> None:
        self.graph = graph
        self.runner = runner
        self.bus = bus
        self.continue_on_failure = continue_on_failure
        self.max_in_flight = max(1, max_in_flight)
        self._is_cached = is_cached
        self.run_id = uuid.uuid4().hex[:12]
        self.failures: dict[Any, BaseException] = {}
        #: Results of input tasks completed so far, with their metadata (written by the coordinating
        #: thread); the runner need not keep an input's result once it is here.
        self.input_task_results: dict[Any, TaskResult[Any]] = {}
        self.stop_cause: BaseException | None = None
        self.interrupted = False
        #: The run was stopped on request (a Stop button, ``cancel()``), not by a failure.
        self.stopped_by_request = False
        self._stop_requests = 0
        self._handled_stop_requests = 0
        self._ready: deque[TaskNode] = deque()
        self._held: dict[type, deque[TaskNode]] = defaultdict(deque)
        self._active_by_type: Counter[type] = Counter()
        self._in_flight = 0
        self._unfinished = 0
        self._stopping = False
        self._name_counters: Counter[type] = Counter()
        self._name_digits: dict[type, int] = {}
        self.counts: Counter[str] = Counter()
        set_hint = getattr(runner, "set_result_needed_hint", None)
        if set_hint is not None:
            set_hint(self._result_needed)

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        """Run every task of the graph; returns when all are finished or the run was stopped.

        Raises:
            KeyboardInterrupt: after a Ctrl-C, once running tasks finished (or were terminated).
        """
        self._start()
        try:
            while not self._finished():
                self._handle_stop_requests()
                self._submit_ready()
                self._collect()
        except KeyboardInterrupt:
            self._interrupt()
            raise
        finally:
            self.bus.drain()
        if self.stopped_by_request:
            state = "interrupted"
        else:
            state = "failed" if self.failures else "finished"
        self.bus.publish(RunFinished(self.run_id, state, dict(self.counts)))

    def request_stop(self, requests: int) -> None:
        """Record stop requests (from any thread): 1 finishes running tasks, 2 or more terminates them."""
        self._stop_requests = max(self._stop_requests, requests)

    def _handle_stop_requests(self) -> None:
        requests = self._stop_requests
        if requests <= self._handled_stop_requests:
            return
        if self._handled_stop_requests == 0:
            self.stopped_by_request = True
            self._stopping = True
            self.runner.cancel()
            # Said once nothing new can start, so whoever reads it knows the stop took effect.
            logger.info("Stop requested. Finishing running tasks; stop again to terminate them.")
        if requests >= 2:
            logger.info("Terminating running tasks.")
            self.runner.stop()
        self._handled_stop_requests = requests

    def _finished(self) -> bool:
        if self._stopping:
            return self.runner.pending_task_count() == 0
        return self._unfinished == 0

    def _start(self) -> None:
        nodes = list(self.graph.nodes.values())
        per_type = Counter(type(node.task) for node in nodes)
        self._name_digits = {task_type: len(str(count)) for task_type, count in per_type.items()}
        self.bus.publish(
            RunStarted(
                self.run_id,
                total=len(nodes),
                counts_by_type={task_type.__qualname__: count for task_type, count in per_type.items()},
                cached=sum(1 for node in nodes if node.cached),
            )
        )
        self._unfinished = len(nodes)
        for node in nodes:
            self._prepare(node)

    def _collect(self) -> None:
        for task, outcome in self.runner.wait(timeout_seconds=WAIT_SECONDS):
            node = self.graph.nodes[task]
            self._in_flight -= 1
            self._active_by_type[type(task)] -= 1
            held = self._held.get(type(task))
            if held:
                self._ready.appendleft(held.popleft())
            if isinstance(outcome, BaseException):
                self._on_failure(node, outcome)
            else:
                self._on_success(node, outcome)
        self.bus.drain()

    def _interrupt(self) -> None:
        self.interrupted = True
        logger.info(
            "Interrupted. Finishing running tasks. Press Ctrl-C again to terminate running tasks immediately "
            "(may disrupt result caching or other important actions)."
        )
        self._stopping = True
        self.runner.cancel()
        try:
            while self.runner.pending_task_count() > 0:
                self._collect()
        except KeyboardInterrupt:
            logger.info("Terminating running tasks.")
            self.runner.stop()
        self.bus.publish(RunFinished(self.run_id, "interrupted", dict(self.counts)))

    # --- scheduling -----------------------------------------------------------------------------

    def _prepare(self, node: TaskNode) -> None:
        """Count what a waiting node still needs; queue it when nothing."""
        waiting = 0
        failed_dependency: TaskNode | None = None
        if not node.cached:
            for dependency in node.dependencies:
                if dependency.state is NodeState.DONE:
                    if dependency.results_released:
                        self._reopen(dependency)
                        waiting += 1
                elif dependency.state in (NodeState.FAILED, NodeState.SKIPPED):
                    failed_dependency = dependency
                else:
                    waiting += 1
        node.waiting_on = waiting
        if failed_dependency is not None:
            self._skip_from(failed_dependency, [node])
        elif waiting == 0:
            self._make_ready(node)

    def _reopen(self, node: TaskNode) -> None:
        """Produce a released result again, because a task that now needs it was added."""
        self.bus.publish(TasksAdded({type(node.task).__qualname__: 1}))
        node.state = NodeState.WAITING
        node.results_released = False
        node.cached = self._is_cached(node.task)
        self._unfinished += 1
        if not node.cached:
            if node.dependencies:
                for dependency in node.dependencies:
                    dependency.pending_dependents += 1
            else:
                self._add_nodes(self.graph.expand(node))
        self._prepare(node)

    def _make_ready(self, node: TaskNode) -> None:
        node.state = NodeState.READY
        self._ready.append(node)

    def _submit_ready(self) -> None:
        while self._ready and self._in_flight < self.max_in_flight and not self._stopping:
            node = self._ready.popleft()
            if node.state is not NodeState.READY:
                continue
            task_type = type(node.task)
            limit = task_type._lt_options.max_parallel
            if limit is not None and self._active_by_type[task_type] >= limit:
                self._held[task_type].append(node)
                continue
            self._submit(node)

    def _assign_name(self, node: TaskNode) -> str:
        """Name a task ``Type[n]``: n counts per type in submission order, padded to the type's total."""
        if not node.name:
            task_type = type(node.task)
            self._name_counters[task_type] += 1
            digits = self._name_digits.get(task_type, 1)
            node.name = f"{task_type.__name__}[{self._name_counters[task_type]:0{digits}d}]"
        return node.name

    def _submit(self, node: TaskNode) -> None:
        task_type = type(node.task)
        self._assign_name(node)
        node.state = NodeState.SUBMITTED
        self._in_flight += 1
        self._active_by_type[task_type] += 1
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(f"Loading from cache: '{node.task}'" if node.cached else f"Running: '{node.task}'")
        self.bus.publish(TaskQueued(node.name, task_type.__qualname__, node.task, node.cached))
        self.runner.submit_task(node.task, node.name, node.cached)

    # --- outcomes -------------------------------------------------------------------------------

    def _on_success(self, node: TaskNode, meta: ResultMeta) -> None:
        node.state = NodeState.DONE
        self._unfinished -= 1
        for task_object in node.objects:
            task_object._set_result_meta(meta)
        if node.is_input:
            self.input_task_results[node.task] = self.runner.get_result(node.task)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(f"Completed: '{node.task}'")
        if node.cached:
            self.counts["loaded"] += 1
            self.bus.publish(TaskLoaded(node.name, node.task))
        else:
            self.counts["done"] += 1
            duration = meta.duration.total_seconds() if meta.duration is not None else None
            self.bus.publish(TaskSucceeded(node.name, node.task, duration))
        for dependent in node.dependents:
            if dependent.state is NodeState.WAITING:
                dependent.waiting_on -= 1
                if dependent.waiting_on == 0:
                    self._make_ready(dependent)
        self._release_dependencies(node)
        if node.pending_dependents == 0:
            self._release(node)

    def _on_failure(self, node: TaskNode, error: BaseException) -> None:
        if node.cached and isinstance(error, CacheEntryUnreadable):
            self._recompute(node, error)
            return
        node.state = NodeState.FAILED
        self._unfinished -= 1
        self.failures[node.task] = error
        self.counts["failed"] += 1
        trace = traceback_text(error)
        self.bus.publish(TaskFailed(node.name, node.task, error, trace))
        self._release_dependencies(node)
        if not self.continue_on_failure:
            logger.error(f"Task '{node.task}' failed.")
            if self.stop_cause is None:
                self.stop_cause = error
                self._stopping = True
                self.runner.cancel()
            return
        logger.error(f"Task '{node.task}' failed. Skipping task. Failure cause: {error}\n{trace.rstrip()}")
        self._skip_from(node, node.dependents)

    def _recompute(self, node: TaskNode, error: BaseException) -> None:
        # The entry is not deleted: the recomputed result replaces it, and if the failure came from
        # this environment (say, a module missing here) another environment can still read it.
        logger.warning(f"Cached result of task '{node.task}' is unreadable, so it will be recomputed: {error}")
        node.cached = False
        node.state = NodeState.WAITING
        self._add_nodes(self.graph.expand(node))
        self._prepare(node)

    def _add_nodes(self, created: list[TaskNode]) -> None:
        """Announce and schedule nodes that joined the run."""
        if not created:
            return
        per_type = Counter(type(new).__qualname__ for new in (node.task for node in created))
        self.bus.publish(TasksAdded(dict(per_type)))
        for new_node in created:
            self._unfinished += 1
            self._prepare(new_node)

    def _skip_from(self, failed: TaskNode, dependents: list[TaskNode]) -> None:
        """Skip, transitively, the dependents of a failed (or skipped) task that have not started."""
        stack = [(failed, dependent) for dependent in dependents]
        while stack:
            cause, node = stack.pop()
            if node.state not in (NodeState.WAITING, NodeState.READY):
                continue
            node.state = NodeState.SKIPPED
            self._unfinished -= 1
            reason = DependencyFailedError(node.task, cause.task)
            self.failures[node.task] = reason
            self.counts["skipped"] += 1
            logger.error(str(reason))
            self.bus.publish(TaskSkipped(self._assign_name(node), node.task, reason))
            self._release_dependencies(node)
            stack.extend((node, dependent) for dependent in node.dependents)

    def _release_dependencies(self, node: TaskNode) -> None:
        for dependency in node.dependencies:
            dependency.pending_dependents -= 1
            if dependency.pending_dependents == 0 and dependency.state is NodeState.DONE:
                self._release(dependency)

    def _result_needed(self, task: Any) -> bool:
        """Whether a task's result will be read by a dependent (a runner may then skip keeping a copy)."""
        node = self.graph.nodes.get(task)
        return node is None or node.pending_dependents > 0

    def _release(self, node: TaskNode) -> None:
        if node.results_released:
            return
        node.results_released = True
        self.runner.remove_results([node.task])
