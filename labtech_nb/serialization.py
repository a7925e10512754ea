"""Converting tasks to and from the JSON form stored in cache metadata and hashed into cache keys.

The form is labtech 1.x's, so keys are byte-identical and cache directories are shared (see the
cache-format notes in the docs). A task's serialized form nests those of its dependencies; it is
built dependencies first, without recursion, so a chain of thousands of tasks serializes too.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Any

from frozendict import frozendict

from labtech_nb.exceptions import SerializationError, TaskError
from labtech_nb.json_text import MAX_INDENTED_LEVELS, dumps_indented
from labtech_nb.nesting import (
    JSON_PLACEHOLDER,
    TextMemo,
    TextParts,
    assemble_text,
    placeholder,
    split_at_placeholders,
    tasks_bottom_up,
)
from labtech_nb.params import UnsettledDependency, is_task, is_task_type, param_identity

#: A serialized task: ``{"_is_task": true, "__class__": ..., ["_code_version": ...,] <fields>}``.
SerializedTask = dict[str, Any]

_JSON_MEMO = TextMemo("json_text")
_SPACES = re.compile(" *")


class _Done(threading.local):
    """What the current thread has already converted in the `serialize_task` or `deserialize_task` under way,
    and the tasks it rebuilt within `rebuilding_equal_tasks_once`."""

    serialized: dict[int, Any] | None = None
    #: While a task's own form is produced: its dependencies met so far, by id, with their placeholder index.
    stand_ins: dict[int, tuple[int, Any]] | None = None
    deserialized: dict[int, Any] | None = None
    rebuilt: dict[tuple[Any, ...], Any] | None = None


_done = _Done()


@contextmanager
def rebuilding_equal_tasks_once() -> Iterator[None]:
    """Within this block, `Serializer.deserialize_task` rebuilds equal tasks once, as one object.

    Listing the cache entries of a chain of tasks then rebuilds each link once, instead of once in the
    entry of every task above it (whose metadata nests the whole chain below).
    """
    outer = _done.rebuilt
    _done.rebuilt = {} if outer is None else outer
    try:
        yield
    finally:
        _done.rebuilt = outer


@contextmanager
def _serializing(serialized: dict[int, Any]) -> Iterator[dict[int, Any]]:
    outer = _done.serialized
    _done.serialized = serialized
    try:
        yield serialized
    finally:
        _done.serialized = outer


class Serializer:
    """Serializes tasks (and their parameter values) to JSON-compatible dicts, and back."""

    def serialize_task(self, task: Any) -> SerializedTask:
        """Return the JSON-compatible form of a task, nested dependency tasks included.

        Args:
            task: a task.

        Returns:
            A dict with ``_is_task``, ``__class__``, ``_code_version`` (when set) and every field.
            A dependency that occurs several times is one dict, occurring several times.

        Raises:
            SerializationError: the task's class was defined inside a function.
            LabError: the task depends on itself.
        """
        stand_ins = _done.stand_ins
        if stand_ins is not None:
            stand_in = stand_ins.get(id(task))
            if stand_in is None:
                stand_in = stand_ins[id(task)] = (len(stand_ins), task)
            return placeholder(stand_in[0])  # type: ignore[return-value]
        serialized = _done.serialized
        if serialized is not None and id(task) in serialized:
            return serialized[id(task)]  # type: ignore[no-any-return]
        if serialized is None:
            own, dependencies = self._serialize_with_placeholders(task)
            if not dependencies:
                return own
        with _serializing({} if serialized is None else serialized) as serialized:
            for pending in tasks_bottom_up(task, lambda dependency: id(dependency) in serialized):
                serialized[id(pending)] = self._serialize_fields(pending)
            return serialized[id(task)]  # type: ignore[no-any-return]

    def _serialize_fields(self, task: Any) -> SerializedTask:
        """A task's serialized form, its dependencies taken from what `serialize_task` has done so far."""
        serialized: SerializedTask = {"_is_task": True, "__class__": self.serialize_class(type(task))}
        if task.code_version is not None:
            serialized["_code_version"] = task.code_version
        for name in type(task)._lt_field_names:
            serialized[name] = self.serialize_value(getattr(task, name))
        return serialized

    def dumps_task(self, task: Any) -> str:
        """Return ``json.dumps(self.serialize_task(task))``: the text hashed into the task's cache key.

        The text is assembled from the texts of the task's dependencies (remembered on each task,
        for this class of serializer), so a task's dependencies are never serialized again.

        Raises:
            SerializationError: a task's class was defined inside a function.
            LabError: the task depends on itself.
        """
        remember = type(self) is Serializer
        if remember and task._lt.json_text is not None:
            return task._lt.json_text  # type: ignore[no-any-return]
        parts = self._json_parts(task)
        if len(parts) == 1 and type(parts[0]) is str:
            return parts[0]  # type: ignore[no-any-return]
        return assemble_text(task, self._json_parts, _JSON_MEMO if remember else None, None)

    def dumps_task_indented(self, task: Any, level: int = 0) -> str:
        """Return ``dumps_indented(self.serialize_task(task), level)``: the task as written in metadata.json.

        Like `dumps_task`, it uses the texts of the task's dependencies instead of serializing them
        again. Only the top `MAX_INDENTED_LEVELS` levels are indented, so this recurses only that far.
        """
        if level >= MAX_INDENTED_LEVELS:
            return self.dumps_task(task)
        serialized, dependencies = self._serialize_with_placeholders(task)
        text = dumps_indented(serialized, level)
        pieces = []
        written = 0
        for match in JSON_PLACEHOLDER.finditer(text):
            # The placeholder's line is indented two spaces per level of the value it stands for.
            line_start = text.rfind("\n", 0, match.start()) + 1
            level_there = (_SPACES.match(text, line_start).end() - line_start) // 2  # type: ignore[union-attr]
            pieces += [text[written : match.start()], self.dumps_task_indented(dependencies[int(match[1])], level_there)]
            written = match.end()
        return "".join(pieces) + text[written:]

    def _serialize_with_placeholders(self, task: Any) -> tuple[SerializedTask, list[Any]]:
        """A task's serialized form with ``placeholder(index)`` for its ``index``-th dependency, and its dependencies."""
        outer = _done.stand_ins
        stand_ins = _done.stand_ins = {}
        try:
            serialized = self._serialize_fields(task)
        finally:
            _done.stand_ins = outer
        return serialized, [dependency for _, dependency in stand_ins.values()]

    def _json_parts(self, task: Any) -> TextParts:
        """A task's JSON text in pieces, with its dependencies' texts left out (see `assemble_text`)."""
        state = task._lt
        remember = type(self) is Serializer
        if remember and state.json_parts is not None:
            return state.json_parts  # type: ignore[no-any-return]
        serialized, dependencies = self._serialize_with_placeholders(task)
        text = json.dumps(serialized)
        parts = split_at_placeholders(text, JSON_PLACEHOLDER, dependencies) if dependencies else (text,)
        if remember:
            state.json_parts = parts
        return parts

    def serialize_class(self, cls: type) -> str:
        """Return ``"<module>.<qualname with '.' as '>'>"`` for a class defined at module level.

        Raises:
            SerializationError: the class was defined inside a function.
        """
        if "<locals>" in cls.__qualname__:
            raise SerializationError(
                f'Unable to serialize class "{cls.__qualname__}" because it was defined in a function. '
                "Please ensure all task and parameter classes are defined at the top-level of a module."
            )
        return f"{cls.__module__}.{cls.__qualname__.replace('.', '>')}"

    def serialize_value(self, value: Any) -> Any:
        """Return the JSON-compatible form of a converted parameter value."""
        if value is None or type(value) in (str, bool, int, float):
            return value
        if isinstance(value, Enum):
            return {"_is_enum": True, "__class__": self.serialize_class(type(value)), "name": value.name}
        if is_task(value):
            return self.serialize_task(value)
        if type(value) is tuple:
            return [self.serialize_value(item) for item in value]
        if isinstance(value, frozendict):
            return {key: self.serialize_value(item) for key, item in value.items()}
        raise SerializationError(
            f"Cannot serialize value: '{value}'. Please check that your task's parameters only use supported types."
        )

    def deserialize_class(self, serialized_class: str) -> type:
        """Import the class named by ``serialize_class``.

        Raises:
            SerializationError: the module or class cannot be found.
        """
        module_name, _, qualname = serialized_class.rpartition(".")
        try:
            # Rebuilding a long chain imports the same module once per link: look in sys.modules first.
            target: Any = sys.modules.get(module_name) or importlib.import_module(module_name)
            for part in qualname.split(">"):
                target = getattr(target, part)
        except (ImportError, AttributeError, ValueError) as error:
            raise SerializationError(f"Cannot import class '{serialized_class}': {error}") from error
        if not isinstance(target, type):
            raise SerializationError(f"'{serialized_class}' is not a class.")
        return target

    def deserialize_task(self, serialized: SerializedTask, *, result_meta: Any = None) -> Any:
        """Rebuild a task (with its nested dependencies and Enum members) from its serialized form.

        Args:
            serialized: the output of `serialize_task`.
            result_meta: the `ResultMeta` to give the task (as labtech's serializer does).

        Returns:
            The task, carrying the stored ``code_version`` (and ``result_meta`` when given).

        Raises:
            SerializationError: a class cannot be imported, is not a task type, or lacks a stored field.
        """
        outer = _done.deserialized
        if outer is not None and id(serialized) in outer:
            task = outer[id(serialized)]
        else:
            built: dict[int, Any] = {} if outer is None else outer
            _done.deserialized = built
            try:
                for pending in _task_dicts_bottom_up(serialized, built):
                    built[id(pending)] = self._deserialize_fields(pending)
            finally:
                _done.deserialized = outer
            task = built[id(serialized)]
        if result_meta is not None:
            task._set_result_meta(result_meta)
        return task

    def _deserialize_fields(self, serialized: SerializedTask) -> Any:
        """Rebuild one task, its nested tasks taken from what `deserialize_task` has rebuilt so far."""
        cls = self.deserialize_class(serialized["__class__"])
        if not is_task_type(cls):
            raise SerializationError(f"Class '{serialized['__class__']}' is not a task type.")
        field_names = set(cls._lt_field_names)  # type: ignore[attr-defined]
        params = {}
        for name, value in serialized.items():
            if name in ("_is_task", "__class__", "_code_version"):
                continue
            if name not in field_names:
                raise SerializationError(
                    f"Serialized task contained field '{name}' that is not present on Task class "
                    f"'{cls.__module__}.{cls.__qualname__}'"
                )
            try:
                params[name] = self.deserialize_value(value)
            except RecursionError:
                raise SerializationError(
                    f"Serialized task '{serialized['__class__']}' has a value nested too deeply in field '{name}'."
                ) from None
        rebuilt, seen_as = _done.rebuilt, None
        if rebuilt is not None:
            seen_as = _rebuilt_key(cls, serialized.get("_code_version"), params)
            if seen_as in rebuilt:
                return rebuilt[seen_as]
        try:
            task = cls(**params)
        except TypeError as error:
            raise SerializationError(f"Cannot rebuild task '{serialized['__class__']}': {error}") from error
        task._set_code_version(serialized.get("_code_version"))
        if rebuilt is not None and seen_as is not None:
            task._lt_identity()  # so that tasks holding it can be looked up in turn
            rebuilt[seen_as] = task
        return task

    def deserialize_value(self, value: Any) -> Any:
        """Rebuild a parameter value from its JSON-compatible form."""
        if isinstance(value, list):
            return tuple(self.deserialize_value(item) for item in value)
        if isinstance(value, dict):
            if value.get("_is_task") is True:
                built = _done.deserialized
                return built[id(value)] if built is not None and id(value) in built else self.deserialize_task(value)
            if value.get("_is_enum") is True:
                enum_type = self.deserialize_class(value["__class__"])
                try:
                    return enum_type[value["name"]]  # type: ignore[index]
                except KeyError:
                    raise SerializationError(f"Enum '{value['__class__']}' has no member named '{value['name']}'.") from None
            return frozendict({key: self.deserialize_value(item) for key, item in value.items()})
        return value


def _rebuilt_key(cls: type, code_version: Any, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """What tells a task rebuilt from these stored values from others (None: values no task could hold)."""
    try:
        return (cls, code_version, tuple(params), tuple(map(param_identity, params.values())))
    except (TaskError, UnsettledDependency):
        return None


def _task_dicts_bottom_up(root: SerializedTask, done: dict[int, Any]) -> Iterator[SerializedTask]:
    """Yield ``root`` and the serialized tasks in it, each before any that holds it, without recursion.

    Serialized tasks whose id is in ``done`` are skipped, and so is everything inside them.
    """
    seen = {id(root)}
    stack: list[tuple[Any, Iterator[Any]]] = [(root, iter(root.values()))]
    while stack:
        node, children = stack[-1]
        for child in children:
            if isinstance(child, (dict, list)) and id(child) not in seen and id(child) not in done:
                seen.add(id(child))
                stack.append((child, iter(child.values() if isinstance(child, dict) else child)))
                break
        else:
            stack.pop()
            if node is root or (isinstance(node, dict) and node.get("_is_task") is True):
                yield node


__all__ = ["SerializedTask", "Serializer", "rebuilding_equal_tasks_once"]
