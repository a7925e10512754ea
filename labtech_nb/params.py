"""Task parameter values: validation, conversion, identity, and the dependencies they hold.

A parameter value is ``None``, ``str``, ``bool``, ``int``, ``float``, an Enum member, a task, or a
``tuple``/``frozendict`` of these (lists and dicts are converted on construction).

The *identity* of a value is a hashable tuple that distinguishes exactly what the cache key
distinguishes: ``1``, ``1.0`` and ``True`` differ, dict order matters, and a task's identity includes
its class and ``code_version``. Task equality and hashing are defined by it, so tasks that compare
equal always share one cache entry, and tasks with different cache keys are never merged in a run.
A task's identity is a digest in which each nested task is represented by its own identity, so
comparing two tasks never walks their dependencies.

A value may nest lists, tuples and dicts at most `MAX_NESTING_DEPTH` levels deep, and must not
contain itself.
"""

from __future__ import annotations

import hashlib
import marshal
from collections.abc import Iterator, Mapping
from enum import Enum
from typing import Any

from frozendict import frozendict

from labtech_nb.exceptions import TaskError

#: Dict keys that would make a parameter dict serialize like a task or an Enum member.
RESERVED_DICT_KEYS = frozenset({"_is_task", "_is_enum"})

#: How many lists, tuples and dicts a parameter value may nest, one inside the other. Deeper values are
#: rejected when the task is constructed (they would exhaust the stack when keys are computed).
MAX_NESTING_DEPTH = 200

#: Integers beyond this size cannot be turned into decimal text (Python's digit limit) for cache keys.
_MAX_INT_BITS = 13_000

_SUPPORTED_TYPES_HINT = (
    "Parameters may be None, str, bool, int, float, Enum members, tasks, and lists, tuples or "
    "dicts (with str keys) of these; pass other objects through the Lab context or a dependency task."
)


def is_task(value: object) -> bool:
    """Return whether ``value`` is a task instance (an object of a ``@task`` class).

    Args:
        value: any object.

    Returns:
        True for task instances, False for anything else (task classes included).
    """
    return getattr(type(value), "_lt_task_type", False) is True


def is_task_type(value: object) -> bool:
    """Return whether ``value`` is a class decorated with ``@task``.

    Args:
        value: any object.

    Returns:
        True for task classes, False for anything else (task instances included).
    """
    return isinstance(value, type) and getattr(value, "_lt_task_type", False) is True


def format_path_item(path: str, item: int | str) -> str:
    """Extend a parameter path with a sequence index or a dict key, e.g. ``opts["a"][2]``."""
    if isinstance(item, int):
        return f"{path}[{item}]"
    return f'{path}["{item}"]'


def convert_param(value: Any, path: str, owner: str = "") -> Any:
    """Validate a parameter value and convert lists to tuples and dicts to frozendicts.

    Args:
        value: the value given for a parameter.
        path: where the value sits, e.g. ``opts["a"][2]``; used in error messages.
        owner: the task type's name, used in error messages.

    Returns:
        The converted value (the same object when nothing needed converting).

    Raises:
        TaskError: the value, or a value nested in it, has an unsupported type or dict key, nests
            more than `MAX_NESTING_DEPTH` levels deep, or contains itself.
    """
    return _convert(value, path, owner, None)


def _convert(value: Any, path: str, owner: str, enclosing: dict[int, str] | None) -> Any:
    """`convert_param`, with the paths of the containers ``value`` is nested in, by object id."""
    value_type = type(value)
    if value_type is int and value.bit_length() > _MAX_INT_BITS:
        raise TaskError(
            f"Integer parameter value '{path}' has {value.bit_length()} bits, too large to be written in a cache key; "
            "store it as a string instead."
        )
    if value is None or value_type in (str, bool, int, float):
        return value
    if isinstance(value, Enum):
        if value.name is None or value.name not in type(value).__members__:
            raise TaskError(
                f"Enum parameter value '{path}' ({value!r}) is not a member of {type(value).__qualname__} with a name "
                "(e.g. a combination of Flag members); use a named member."
            )
        return value
    if is_task(value):
        return value
    if not isinstance(value, (list, tuple, dict, frozendict)):
        # Anything else, subclasses of the plain types included, has no unambiguous serialized form.
        return _unsupported(value, path, owner)
    if enclosing is None:
        enclosing = {}
    _check_nesting(value, path, owner, enclosing)
    enclosing[id(value)] = path
    try:
        if isinstance(value, (list, tuple)):
            converted = tuple(_convert(item, format_path_item(path, index), owner, enclosing) for index, item in enumerate(value))
            if value_type is tuple and all(a is b for a, b in zip(converted, value, strict=False)):
                return value
            return converted
        return _convert_mapping(value, path, owner, enclosing)
    finally:
        del enclosing[id(value)]


def _check_nesting(value: Any, path: str, owner: str, enclosing: dict[int, str]) -> None:
    of_type = f" of task type '{owner}'" if owner else ""
    if id(value) in enclosing:
        raise TaskError(
            f"Parameter value '{path}'{of_type} contains itself: it is the same {type(value).__qualname__} as "
            f"'{enclosing[id(value)]}'. A parameter value must be a tree of values; remove the self-reference."
        )
    if len(enclosing) >= MAX_NESTING_DEPTH:
        shown = path if len(path) <= 80 else f"{path[:60]}...{path[-15:]}"
        raise TaskError(
            f"Parameter value '{shown}'{of_type} nests lists, tuples and dicts more than {MAX_NESTING_DEPTH} levels "
            "deep. Flatten it (e.g. into a list of (path, value) pairs), store it as a string (e.g. JSON), or pass it "
            "through the Lab context."
        )


def _convert_mapping(value: Mapping[Any, Any], path: str, owner: str, enclosing: dict[int, str]) -> frozendict[str, Any]:
    items = {}
    for key, item in value.items():
        if type(key) is not str:
            where = f" (in parameter value '{path}'" + (f" of task type '{owner}')" if owner else ")")
            raise TaskError(f"Parameter dictionary keys must be strings, found: '{key}'{where}.")
        if key in RESERVED_DICT_KEYS:
            raise TaskError(
                f"Parameter dictionary key '{key}' in parameter value '{path}' is reserved: a dict holding "
                f"it would be stored like a task or an Enum member. Rename the key."
            )
        items[key] = _convert(item, format_path_item(path, key), owner, enclosing)
    if isinstance(value, frozendict) and all(items[key] is item for key, item in value.items()):
        return value
    return frozendict(items)


def _unsupported(value: Any, path: str, owner: str) -> Any:
    of_type = f"(Task type '{owner}'.) " if owner else ""
    raise TaskError(
        f"Unsupported type '{type(value).__qualname__}' in parameter value '{path}'. {of_type}{_SUPPORTED_TYPES_HINT}"
    )


def param_identity(value: Any) -> Any:
    """Return a hashable identity that distinguishes exactly what the value's serialization does.

    Args:
        value: a converted parameter value.

    Returns:
        A nested tuple (a task: its identity digest); two values have equal identities if and only if
        they serialize identically.

    Raises:
        UnsettledDependency: the value holds a task whose identity is not yet computed.
    """
    value_type = type(value)
    if value is None:
        return None
    if value_type is str:
        return value
    if value_type is bool:
        return ("bool", value)
    if value_type is int:
        return ("int", value)
    if value_type is float:
        # repr distinguishes -0.0 from 0.0 and makes nan equal to itself, as JSON does.
        return ("float", repr(value))
    if isinstance(value, Enum):
        enum_type = type(value)
        return ("enum", enum_type.__module__, enum_type.__qualname__, value.name)
    if is_task(value):
        # Identities are computed dependencies first, so this never walks down a chain.
        identity = value._lt.identity
        if identity is None:
            raise UnsettledDependency(value)
        return identity
    if value_type is tuple:
        return ("tuple", *map(param_identity, value))
    if isinstance(value, frozendict):
        return ("dict", *((key, param_identity(item)) for key, item in value.items()))
    raise TaskError(f"Unsupported type '{value_type.__qualname__}' in parameter value.")


class UnsettledDependency(Exception):
    """Raised by `param_identity` for a task whose own identity must be computed first."""


def task_identity(task_type: type, code_version: str | None, params: tuple[Any, ...]) -> bytes:
    """Return a task's identity: a digest of its type, code_version and parameter identities.

    Args:
        task_type: the task's class.
        code_version: the task's code_version.
        params: `param_identity` of each field, in which a nested task is represented by its own
            identity, so computing or comparing identities never walks further down than one task.

    Returns:
        A 160-bit BLAKE2 digest of their marshal format 0 (which, unlike later formats, does not depend
        on string interning or shared references): tasks have equal digests exactly when these are
        equal (a collision is not a practical concern). Valid in this process only.
    """
    return hashlib.blake2b(marshal.dumps((id(task_type), code_version, params), 0), digest_size=20).digest()


def iter_tasks_in_param(value: Any) -> Iterator[Any]:
    """Yield every task held by a parameter value, looking inside tuples and dicts.

    Args:
        value: a converted parameter value.

    Yields:
        Each task found, in order of appearance (duplicates included).
    """
    if is_task(value):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from iter_tasks_in_param(item)
    elif isinstance(value, (dict, frozendict)):
        for item in value.values():
            yield from iter_tasks_in_param(item)


def find_tasks_in_param(value: Any) -> list[Any]:
    """Return the tasks held by a parameter value, looking inside tuples and dicts.

    Args:
        value: a parameter value.

    Returns:
        The tasks found, in order of appearance.
    """
    return list(iter_tasks_in_param(value))
