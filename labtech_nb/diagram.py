"""Diagrams of task graphs: labtech-compatible mermaid class diagrams, and graphviz graphs of task
types or task instances (coloured by status).

    from labtech_nb.diagram import display_task_diagram
    display_task_diagram([evaluation_task], direction="BT")
"""

from __future__ import annotations

import dataclasses
import html
import shutil
import sys
import types
import typing
from collections import deque
from collections.abc import Iterable
from typing import Any

from labtech_nb.params import is_task

DIRECTIONS = ("BT", "TB", "RL", "LR")
MANY = '"many" '

#: Characters that would let a type text change a mermaid diagram's structure, and their entity codes.
_MERMAID_ESCAPES = {
    "<": "#lt;",
    ">": "#gt;",
    '"': "#quot;",
    "`": "#96;",
    "%": "#37;",
    ";": "#59;",
    "{": "#123;",
    "}": "#125;",
    "\n": " ",
    "\r": " ",
}


def _walk(tasks: Iterable[Any]) -> list[Any]:
    """Every distinct task reached from ``tasks``, breadth-first through parameters, once each."""
    seen: dict[Any, None] = {}
    queue = deque(tasks)
    while queue:
        task = queue.popleft()
        if task in seen:
            continue
        seen[task] = None
        queue.extend(task._lt_dependencies())
    return list(seen)


def _format_type(annotation: Any) -> str:
    if annotation is None or annotation is type(None):
        return "None" if annotation is None else "NoneType"
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, typing.ForwardRef):
        return annotation.__forward_arg__
    if isinstance(annotation, list):
        return "[" + ", ".join(_format_type(item) for item in annotation) + "]"
    if typing.get_origin(annotation) is typing.Literal:
        return f"Literal[{', '.join(repr(argument) for argument in typing.get_args(annotation))}]"
    origin = typing.get_origin(annotation)
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        return " | ".join(
            "None" if argument is type(None) else _format_type(argument) for argument in typing.get_args(annotation)
        )
    if origin is not None and isinstance(annotation, (types.GenericAlias, typing._GenericAlias)):  # type: ignore[attr-defined]
        arguments = typing.get_args(annotation)
        name = getattr(origin, "__name__", None) or str(origin)
        return f"{name}[{', '.join(_format_type(argument) for argument in arguments)}]" if arguments else name
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


def _escape(text: str) -> str:
    return "".join(_MERMAID_ESCAPES.get(char, char) for char in text)


def _name(task_type: type) -> str:
    """A task type's name as a mermaid identifier (class names that are not identifiers are made safe)."""
    name = task_type.__name__
    if name.isidentifier():
        return name
    return "".join(char if char.isalnum() or char == "_" else "_" for char in name) or "_"


def _diagram_model(tasks: Iterable[Any]) -> tuple[list[type], list[tuple[type, str, type]], set[tuple[type, str, type]]]:
    """Task types in order of discovery, edges (dependent, parameter, dependency) and the "many" edges."""
    task_types: dict[type, None] = {}
    edges: dict[tuple[type, str, type], None] = {}
    many: set[tuple[type, str, type]] = set()
    for task in _walk(tasks):
        task_type = type(task)
        task_types.setdefault(task_type, None)
        for name in task_type._lt_field_names:
            value = getattr(task, name)
            is_collection = not is_task(value)
            from labtech_nb.params import iter_tasks_in_param

            for dependency in iter_tasks_in_param(value):
                edge = (task_type, name, type(dependency))
                edges.setdefault(edge, None)
                if is_collection:
                    many.add(edge)
    # Types first reached as dependencies come after their dependents, breadth-first.
    return list(task_types), list(edges), many


def build_task_diagram(tasks: Iterable[Any], *, direction: str = "BT") -> str:
    """Return a mermaid class diagram of the task types reached from ``tasks`` and their dependencies.

    Args:
        tasks: the tasks to start from.
        direction: ``'BT'``, ``'TB'``, ``'RL'`` or ``'LR'``.

    Returns:
        The diagram's mermaid source (the same text labtech produces for the same tasks).
    """
    task_types, edges, many = _diagram_model(tasks)
    blocks = []
    for task_type in task_types:
        name = _name(task_type)
        lines = [f"    class {name}"]
        for field in dataclasses.fields(task_type):
            lines.append(f"    {name} : {_escape(_format_type(field.type))} {field.name}")
        run_method: Any = task_type.run  # type: ignore[attr-defined]
        return_type = typing.get_type_hints(run_method).get("return", dataclasses.MISSING)
        lines.append(
            f"    {name} : run()"
            if return_type is dataclasses.MISSING
            else f"    {name} : run() {_escape(_format_type(return_type))}"
        )
        blocks.append("\n".join(lines))
    edge_blocks = []
    for task_type in task_types:
        lines = [
            f"    {_name(dependent)} <-- {MANY if edge in many else ''}{_name(dependency)}: {parameter}"
            for edge in edges
            for dependent, parameter, dependency in [edge]
            if dependent is task_type
        ]
        if lines:
            edge_blocks.append("\n".join(lines))
    return f"classDiagram\n    direction {direction}\n\n" + "\n\n".join(blocks) + "\n\n\n" + "\n\n".join(edge_blocks)


class MermaidDiagram:
    """A mermaid diagram that renders in JupyterLab and reads as its source everywhere else."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __repr__(self) -> str:
        return self.source

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {
            "text/markdown": f"```mermaid\n{self.source}\n```",
            "text/vnd.mermaid": self.source,
            "text/plain": self.source,
        }


def _in_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")


def display_task_diagram(tasks: Iterable[Any], **kwargs: Any) -> None:
    """Show `build_task_diagram` in a notebook (rendered), or print its source elsewhere."""
    source = build_task_diagram(tasks, **kwargs)
    if _in_kernel():
        from IPython.display import display

        display(MermaidDiagram(source))
    else:
        print(source)


# --- graphviz ---------------------------------------------------------------------------------

STATUS_COLOURS = {
    "cached": "#d0e7ff",
    "pending": "#f6f8fa",
    "queued": "#f6f8fa",
    "running": "#fff3b0",
    "loading": "#e7f5ff",
    "done": "#b7f0c0",
    "loaded": "#d0e7ff",
    "failed": "#ffb3b3",
    "skipped": "#e0e0e0",
}


def _label(text: str) -> str:
    return html.escape(text, quote=True)


def _plain_label(text: str) -> str:
    """A DOT plain-string label showing ``text`` as written (DOT reads backslashes as escapes)."""
    return html.escape(text, quote=True).replace("\\", "\\\\")


def graphviz_available() -> bool:
    """Whether the graphviz package and its ``dot`` program are both installed."""
    try:
        import graphviz  # noqa: F401
    except ImportError:
        return False
    return shutil.which("dot") is not None


def build_graphviz_type_diagram(tasks: Iterable[Any], *, direction: str = "BT") -> Any:
    """Return a ``graphviz.Digraph`` of task types: the same information as the mermaid diagram."""
    import graphviz

    task_types, edges, many = _diagram_model(tasks)
    graph = graphviz.Digraph(
        "task_types", graph_attr={"rankdir": direction}, node_attr={"shape": "plaintext", "fontname": "Helvetica"}
    )
    type_ids = {task_type: f"type{index}" for index, task_type in enumerate(task_types)}
    for task_type in task_types:
        rows = "".join(
            f"<tr><td align='left'>{_label(_format_type(field.type))} {_label(field.name)}</td></tr>"
            for field in dataclasses.fields(task_type)
        )
        graph.node(
            type_ids[task_type],
            f"<<table border='1' cellborder='0' cellspacing='0'><tr><td bgcolor='#eeeeee'><b>{_label(task_type.__name__)}</b></td></tr>{rows}</table>>",
        )
    for edge in edges:
        dependent, parameter, dependency = edge
        graph.edge(type_ids[dependency], type_ids[dependent], label=_label(parameter + (" (many)" if edge in many else "")))
    return graph


def _distinguishing_parameters(task: Any) -> str:
    parts = []
    from labtech_nb.params import iter_tasks_in_param

    for name in type(task)._lt_field_names:
        value = getattr(task, name)
        if next(iter_tasks_in_param(value), None) is not None:
            continue
        text = repr(value)
        parts.append(f"{name}={text if len(text) <= 30 else text[:27] + '...'}")
    return ", ".join(parts)


def build_graphviz_instance_diagram(
    tasks: Iterable[Any], *, statuses: dict[Any, str] | None = None, direction: str = "BT", max_per_type: int = 25
) -> Any:
    """Return a ``graphviz.Digraph`` with one node per task, coloured by status when ``statuses`` is given.

    Args:
        tasks: the tasks to start from.
        statuses: task -> ``cached``/``pending``/``running``/``done``/``failed``/``skipped`` (or labels
            of a run's progress); tasks without a status are drawn uncoloured.
        direction: the graph's rank direction.
        max_per_type: beyond this many tasks of one type, they are drawn as one summarised node.
    """
    import graphviz

    all_tasks = _walk(tasks)
    per_type: dict[type, list[Any]] = {}
    for task in all_tasks:
        per_type.setdefault(type(task), []).append(task)
    node_of: dict[Any, str] = {}
    graph = graphviz.Digraph(
        "task_instances",
        graph_attr={"rankdir": direction},
        node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica"},
    )
    for type_index, (task_type, members) in enumerate(per_type.items()):
        if len(members) > max_per_type:
            counts: dict[str, int] = {}
            for task in members:
                status = (statuses or {}).get(task, "")
                counts[status] = counts.get(status, 0) + 1
            node_id = f"type{type_index}_group"
            summary = ", ".join(f"{count} {status}" for status, count in counts.items() if status)
            graph.node(
                node_id,
                "\n".join(
                    _plain_label(line) for line in [f"{task_type.__name__} x{len(members)}", *([summary] if summary else [])]
                ),
                fillcolor="#ffffff",
                shape="box3d",
            )
            for task in members:
                node_of[task] = node_id
            continue
        for index, task in enumerate(members):
            node_id = f"type{type_index}_{index}"
            node_of[task] = node_id
            task_status = (statuses or {}).get(task)
            parameters = _distinguishing_parameters(task)
            lines = [task_type.__name__, *([parameters] if parameters else []), *([f"[{task_status}]"] if task_status else [])]
            graph.node(
                node_id,
                "\n".join(_plain_label(line) for line in lines),
                fillcolor=STATUS_COLOURS.get(task_status or "", "#ffffff"),
            )
    drawn: set[tuple[str, str]] = set()
    for task in all_tasks:
        for dependency in task._lt_dependencies():
            edge = (node_of[dependency], node_of[task])
            if edge not in drawn and edge[0] != edge[1]:
                drawn.add(edge)
                graph.edge(*edge)
    return graph


__all__ = [
    "MermaidDiagram",
    "build_graphviz_instance_diagram",
    "build_graphviz_type_diagram",
    "build_task_diagram",
    "display_task_diagram",
    "graphviz_available",
]
