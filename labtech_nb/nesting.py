"""Walking tasks nested in tasks without Python recursion.

A task's parameters may hold tasks, which hold tasks, and so on: a chain of thousands of dependent
tasks is a legitimate experiment. Everything that looks at a task *through* its dependencies (its
identity, cache key, metadata, repr and pickle) goes through these helpers, which keep an explicit
stack, so how deep a chain can be is limited by memory rather than by Python's recursion limit.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from frozendict import frozendict

from labtech_nb.exceptions import LabError
from labtech_nb.params import is_task, iter_tasks_in_param

#: Texts (keys' JSON, reprs) of nested tasks up to this many characters are remembered on the task, so
#: a dependency shared by many tasks, or the lower part of a long chain, is assembled once.
TEXT_MEMO_LIMIT = 16_384

#: Every this many levels up a chain of dependencies (see `chain_depth`), a task is a *checkpoint*: its
#: texts are remembered even when long (up to `CHECKPOINT_TEXT_LIMIT` characters), so assembling the
#: text of a task walks only so far down before it meets a remembered text; and pickling a task first
#: pickles the checkpoints below it, so pickle never nests deeper than that either (see ``labtech_nb.tasks``).
CHECKPOINT_SPACING = 64
CHECKPOINT_TEXT_LIMIT = 1 << 20

#: A task's text in pieces: literal text, and the dependency tasks whose own text goes in between.
TextParts = Sequence[Any]

_NONCE = uuid.uuid4().hex
#: A placeholder as it appears in a repr, and as it appears in JSON text (quoted, its NULs escaped).
REPR_PLACEHOLDER = re.compile("\x00" + _NONCE + r":(\d+)\x00")
JSON_PLACEHOLDER = re.compile(r'"\\u0000' + _NONCE + r':(\d+)\\u0000"')


def cyclic_dependency_error(task: Any) -> LabError:
    """The error for a task that (through its parameters) depends on itself."""
    return LabError(f"Cyclic dependency: Task '{task}' depends on itself.")


def tasks_bottom_up(root: Any, is_done: Callable[[Any], bool] | None = None) -> Iterator[Any]:
    """Yield ``root`` and every task nested in it, each dependency before the tasks that hold it.

    Each task object is yielded once. Tasks for which ``is_done`` returns True are neither yielded
    nor looked into, so work already done for a sub-graph is not repeated.

    Args:
        root: a task.
        is_done: tells which tasks (and everything below them) to skip.

    Yields:
        The tasks, dependencies first; ``root`` last (unless it is done).

    Raises:
        LabError: a task depends on itself.
    """
    if is_done is not None and is_done(root):
        return
    finished: set[int] = set()
    on_path = {id(root)}
    stack = [(root, iter(scan_dependencies(root)))]
    while stack:
        task, dependencies = stack[-1]
        for dependency in dependencies:
            if id(dependency) in finished or (is_done is not None and is_done(dependency)):
                continue
            if id(dependency) in on_path:
                raise cyclic_dependency_error(dependency)
            on_path.add(id(dependency))
            stack.append((dependency, iter(scan_dependencies(dependency))))
            break
        else:
            stack.pop()
            on_path.discard(id(task))
            finished.add(id(task))
            yield task


def placeholder(index: int) -> str:
    """A string that stands for a task's ``index``-th dependency while the task's own text is produced.

    It cannot be confused with a parameter value: a repr escapes NUL characters, and JSON escapes them
    differently from this placeholder's text.
    """
    return f"\x00{_NONCE}:{index}\x00"


def split_at_placeholders(text: str, pattern: re.Pattern[str], dependencies: Sequence[Any]) -> TextParts:
    """Cut a task's own text at its placeholders (see `placeholder`) into `TextParts`.

    Args:
        text: the text, produced with ``placeholder(index)`` standing for ``dependencies[index]``.
        pattern: `REPR_PLACEHOLDER` or `JSON_PLACEHOLDER`, as the placeholders appear in ``text``.
        dependencies: the tasks the placeholders stand for.
    """
    parts: list[Any] = []
    for index, piece in enumerate(pattern.split(text)):
        if index % 2:
            parts.append(dependencies[int(piece)])
        elif piece:
            parts.append(piece)
    return tuple(parts)


def chain_depth(task: Any) -> int:
    """Return how deep the dependencies below ``task`` nest: 0 without dependencies, else the most, over
    its dependencies, of one more than the dependency's own depth plus the lists and dicts around it.

    Also settles the checkpoints of ``task`` and of every task below it: the tasks on its deepest chain
    of dependencies (its *spine*) where the depth passes a multiple of `CHECKPOINT_SPACING`.

    Raises:
        LabError: a task depends on itself.
    """
    if task._lt.depth is None:
        for pending in tasks_bottom_up(task, _has_depth):
            _settle_depth(pending)
    return task._lt.depth  # type: ignore[no-any-return]


def _has_depth(task: Any) -> bool:
    return task._lt.depth is not None


def _settle_depth(task: Any) -> None:
    state = task._lt
    deepest, depth = None, 0
    for name in type(task)._lt_field_names:
        for dependency, containers in _tasks_with_containers(getattr(task, name), 0):
            reach = dependency._lt.depth + 1 + containers
            if reach > depth:
                deepest, depth = dependency, reach
    state.depth = depth
    if deepest is None:
        return
    below = deepest._lt
    state.checkpoint_below = deepest if below.checkpoints_below is not None else below.checkpoint_below
    if depth // CHECKPOINT_SPACING > below.depth // CHECKPOINT_SPACING:
        lower = state.checkpoint_below
        state.checkpoints_below = () if lower is None else (*lower._lt.checkpoints_below, lower)


def _tasks_with_containers(value: Any, containers: int) -> Iterator[tuple[Any, int]]:
    """The tasks in a parameter value, each with the number of lists and dicts it is nested in."""
    if is_task(value):
        yield value, containers
    elif isinstance(value, tuple):
        for item in value:
            yield from _tasks_with_containers(item, containers + 1)
    elif isinstance(value, frozendict):
        for item in value.values():
            yield from _tasks_with_containers(item, containers + 1)


def is_checkpoint(task: Any) -> bool:
    """Whether a task is a checkpoint of its chain (see `chain_depth`)."""
    chain_depth(task)
    return task._lt.checkpoints_below is not None


def scan_dependencies(task: Any) -> list[Any]:
    """Return the tasks in a task's parameters, read afresh (duplicates included).

    Traversals read the parameters rather than the task's memo (``_lt_dependencies``), so that a task
    hashed and then made to hold itself (by ``object.__setattr__``) is still found to be in a cycle.
    """
    found = []
    for name in type(task)._lt_field_names:
        value = getattr(task, name)
        if is_task(value):
            found.append(value)
        elif isinstance(value, (tuple, frozendict)):
            found.extend(iter_tasks_in_param(value))
    return found


class TextMemo:
    """Where `assemble_text` keeps the texts of tasks it has assembled (a slot of each task's state)."""

    def __init__(self, slot: str) -> None:
        self.slot = slot

    def get(self, task: Any) -> str | None:
        return getattr(task._lt, self.slot)  # type: ignore[no-any-return]

    def wants(self, task: Any, length: int) -> bool:
        """Whether to remember a task's text of this length: when it is short or the task is a checkpoint."""
        return length <= TEXT_MEMO_LIMIT or (length <= CHECKPOINT_TEXT_LIMIT and is_checkpoint(task))

    def keep(self, task: Any, text: str) -> None:
        setattr(task._lt, self.slot, text)


def assemble_text(root: Any, parts_of: Callable[[Any], TextParts], memo: TextMemo | None, cycle_text: str | None) -> str:
    """Build the text of a task whose text contains the texts of its dependencies (JSON, repr).

    Args:
        root: a task.
        parts_of: a task's text in pieces: strings, and the dependency tasks whose text goes there.
        memo: where the texts of tasks are looked up, and remembered (see `TextMemo.wants`).
        cycle_text: written in place of a task met again inside its own text; None raises instead.

    Returns:
        The text.

    Raises:
        LabError: a task depends on itself and ``cycle_text`` is None.
    """
    remembered = memo.get(root) if memo is not None else None
    if remembered is not None:
        return remembered
    pieces: list[str] = []
    length = 0
    # Each frame: the task, its remaining parts, where its text starts in ``pieces``, and the length there.
    stack = [(root, iter(parts_of(root)), 0, 0)]
    on_path = {id(root)}
    in_a_cycle: set[int] = set()
    while stack:
        task, parts, first, start_length = stack[-1]
        for part in parts:
            if type(part) is str:
                pieces.append(part)
                length += len(part)
                continue
            text = memo.get(part) if memo is not None else None
            if text is None and id(part) in on_path:
                if cycle_text is None:
                    raise cyclic_dependency_error(part)
                # The texts being assembled depend on where the cycle was entered: never remember them.
                in_a_cycle.update(id(frame[0]) for frame in stack)
                text = cycle_text
            if text is not None:
                pieces.append(text)
                length += len(text)
                continue
            on_path.add(id(part))
            stack.append((part, iter(parts_of(part)), len(pieces), length))
            break
        else:
            stack.pop()
            on_path.discard(id(task))
            if memo is not None and id(task) not in in_a_cycle and memo.wants(task, length - start_length):
                text = "".join(pieces[first:])
                del pieces[first:]
                pieces.append(text)
                memo.keep(task, text)
    return "".join(pieces)


__all__ = [
    "CHECKPOINT_SPACING",
    "CHECKPOINT_TEXT_LIMIT",
    "JSON_PLACEHOLDER",
    "REPR_PLACEHOLDER",
    "TEXT_MEMO_LIMIT",
    "TextMemo",
    "TextParts",
    "assemble_text",
    "chain_depth",
    "cyclic_dependency_error",
    "is_checkpoint",
    "placeholder",
    "scan_dependencies",
    "split_at_placeholders",
    "tasks_bottom_up",
]
