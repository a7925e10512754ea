"""Converting tasks to and from the JSON form stored in cache metadata and hashed into cache keys.

The form is labtech 1.x's, so keys are byte-identical and cache directories are shared (see the
cache-format notes in the docs).
"""

from __future__ import annotations

import importlib
from enum import Enum
from typing import Any

from frozendict import frozendict

from labtech_nb.exceptions import SerializationError
from labtech_nb.params import is_task, is_task_type

#: A serialized task: ``{"_is_task": true, "__class__": ..., ["_code_version": ...,] <fields>}``.
SerializedTask = dict[str, Any]


class Serializer:
    """Serializes tasks (and their parameter values) to JSON-compatible dicts, and back."""

    def serialize_task(self, task: Any, _path: frozenset[int] = frozenset()) -> SerializedTask:
        """Return the JSON-compatible form of a task, nested dependency tasks included.

        Args:
            task: a task.

        Returns:
            A dict with ``_is_task``, ``__class__``, ``_code_version`` (when set) and every field.

        Raises:
            SerializationError: the task's class was defined inside a function.
        """
        if id(task) in _path:
            from labtech_nb.exceptions import LabError

            raise LabError(f"Cyclic dependency: Task '{task}' depends on itself.")
        path = _path | {id(task)}
        serialized: SerializedTask = {"_is_task": True, "__class__": self.serialize_class(type(task))}
        if task.code_version is not None:
            serialized["_code_version"] = task.code_version
        for name in type(task)._lt_field_names:
            serialized[name] = self.serialize_value(getattr(task, name), path)
        return serialized

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

    def serialize_value(self, value: Any, _path: frozenset[int] = frozenset()) -> Any:
        """Return the JSON-compatible form of a converted parameter value."""
        if value is None or type(value) in (str, bool, int, float):
            return value
        if isinstance(value, Enum):
            return {"_is_enum": True, "__class__": self.serialize_class(type(value)), "name": value.name}
        if is_task(value):
            return self.serialize_task(value, _path)
        if type(value) is tuple:
            return [self.serialize_value(item, _path) for item in value]
        if isinstance(value, frozendict):
            return {key: self.serialize_value(item, _path) for key, item in value.items()}
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
            target: Any = importlib.import_module(module_name)
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
            params[name] = self.deserialize_value(value)
        try:
            task = cls(**params)
        except TypeError as error:
            raise SerializationError(f"Cannot rebuild task '{serialized['__class__']}': {error}") from error
        task._set_code_version(serialized.get("_code_version"))
        if result_meta is not None:
            task._set_result_meta(result_meta)
        return task

    def deserialize_value(self, value: Any) -> Any:
        """Rebuild a parameter value from its JSON-compatible form."""
        if isinstance(value, list):
            return tuple(self.deserialize_value(item) for item in value)
        if isinstance(value, dict):
            if value.get("_is_task") is True:
                return self.deserialize_task(value)
            if value.get("_is_enum") is True:
                enum_type = self.deserialize_class(value["__class__"])
                try:
                    return enum_type[value["name"]]  # type: ignore[index]
                except KeyError:
                    raise SerializationError(f"Enum '{value['__class__']}' has no member named '{value['name']}'.") from None
            return frozendict({key: self.deserialize_value(item) for key, item in value.items()})
        return value


__all__ = ["SerializedTask", "Serializer"]
