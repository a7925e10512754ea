"""The task graph of one run: distinct tasks, their dependencies, and dependency counters.

Building it costs one pass over the tasks and one cache-existence check per distinct task. A task
found in the cache is a leaf: its own dependencies are neither visited nor loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

from labtech_nb.exceptions import LabError


class NodeState(Enum):
    """Where a task is in its run."""

    WAITING = "waiting"
    READY = "ready"
    SUBMITTED = "submitted"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


FINISHED_STATES = frozenset({NodeState.DONE, NodeState.FAILED, NodeState.SKIPPED})


class TaskNode:
    """One distinct task of a run."""

    __slots__ = (
        "cached",
        "dependencies",
        "dependents",
        "is_input",
        "name",
        "objects",
        "pending_dependents",
        "results_released",
        "state",
        "task",
        "waiting_on",
    )

    def __init__(self, task: Any, cached: bool) -> None:
        self.task = task
        #: Every object equal to the task met in this run (inputs and parameter occurrences).
        self.objects: list[Any] = [task]
        self.cached = cached
        self.is_input = False
        self.dependencies: list[TaskNode] = []
        self.dependents: list[TaskNode] = []
        #: Dependencies whose results are not yet available.
        self.waiting_on = 0
        #: Dependents that have not yet finished; the result is released when it reaches zero.
        self.pending_dependents = 0
        self.state = NodeState.WAITING
        self.name = ""
        self.results_released = False

    def __repr__(self) -> str:
        return f"TaskNode({self.task!r}, {self.state.value})"


class TaskGraph:
    """The distinct tasks of a run, connected by dependency edges.

    Args:
        is_cached: answers whether a task should be loaded from the cache instead of run.
    """

    def __init__(self, is_cached: Callable[[Any], bool]) -> None:
        self._is_cached = is_cached
        self.nodes: dict[Any, TaskNode] = {}
        self.inputs: list[TaskNode] = []

    def add_inputs(self, tasks: Iterable[Any]) -> None:
        """Add the tasks a run was asked for, and everything they (transitively) need."""
        for task in tasks:
            node = self._visit(task)
            if not node.is_input:
                node.is_input = True
                self.inputs.append(node)

    def _node_for(self, task: Any) -> tuple[TaskNode, bool]:
        node = self.nodes.get(task)
        if node is not None:
            if node.task is not task:
                node.objects.append(task)
            return node, False
        node = TaskNode(task, self._is_cached(task))
        self.nodes[task] = node
        return node, True

    def _visit(self, root: Any) -> TaskNode:
        root_node, created = self._node_for(root)
        if created and not root_node.cached:
            self._expand(root_node)
        return root_node

    def expand(self, node: TaskNode) -> list[TaskNode]:
        """Link a node to its dependencies (for a node whose cache entry proved unreadable).

        Returns:
            The nodes this created.
        """
        return self._expand(node)

    def _expand(self, start: TaskNode) -> list[TaskNode]:
        """Depth-first, without recursion, detecting cycles; links each node to its dependencies."""
        created_nodes: list[TaskNode] = []
        on_path: set[int] = {id(start)}
        stack: list[tuple[TaskNode, Any, set[int]]] = [(start, iter(start.task._lt_dependencies()), set())]
        while stack:
            node, dependencies, linked = stack[-1]
            dependency = next(dependencies, None)
            if dependency is None:
                stack.pop()
                on_path.discard(id(node))
                continue
            child, created = self._node_for(dependency)
            if id(child) in on_path:
                raise LabError(f"Cyclic dependency: Task '{child.task}' depends on itself.")
            if id(child) in linked:
                continue
            linked.add(id(child))
            node.dependencies.append(child)
            child.dependents.append(node)
            child.pending_dependents += 1
            if created:
                created_nodes.append(child)
                if not child.cached:
                    on_path.add(id(child))
                    stack.append((child, iter(child.task._lt_dependencies()), set()))
        return created_nodes
