"""The ``@task`` decorator that turns a class into a labtech_nb task type."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar, dataclass_transform, overload

from frozendict import frozendict

from labtech_nb.exceptions import TaskError
from labtech_nb.nesting import (
    CHECKPOINT_SPACING,
    REPR_PLACEHOLDER,
    TextMemo,
    TextParts,
    assemble_text,
    chain_depth,
    placeholder,
    split_at_placeholders,
    tasks_bottom_up,
)
from labtech_nb.params import (
    UnsettledDependency,
    convert_param,
    find_tasks_in_param,
    is_task,
    is_task_type,
    iter_tasks_in_param,
    param_identity,
    task_identity,
)

if TYPE_CHECKING:
    from labtech_nb.cache import Cache
    from labtech_nb.types import ResultMeta

T = TypeVar("T")

#: Names a class must not define unless it already is a task type; the decorator provides them.
RESERVED_ATTRIBUTES = (
    "_lt",
    "_is_task",
    "_cache_key",
    "cache_key",
    "result",
    "_results_map",
    "_set_results_map",
    "result_meta",
    "_set_result_meta",
    "context",
    "set_context",
    "__post_init__",
    "_set_code_version",
    "code_version",
    "current_code_version",
)


class _DefaultCache:
    """Sentinel for an omitted ``cache`` argument (each task type then gets its own PickleCache)."""

    def __repr__(self) -> str:
        return "<default PickleCache>"


DEFAULT_CACHE: Any = _DefaultCache()


@dataclass(frozen=True)
class TaskOptions:
    """The decorator options of one task type."""

    code_version: str | None
    cache: Cache
    max_parallel: int | None
    mlflow_run: bool


class TaskState:
    """Per-instance state kept beside a task's parameters (never part of equality).

    What is derived from a task's dependencies (identity, texts, depth) is memoised here, computed
    dependencies first, so no computation walks down a long chain of tasks more than once. Pickles
    carry the part that is the same in every process (depth, checkpoints, cache key, JSON in pieces).
    """

    __slots__ = (
        "cache_key",
        "checkpoint_below",
        "checkpoints_below",
        "code_version",
        "context",
        "dependencies",
        "depth",
        "identity",
        "json_parts",
        "json_text",
        "repr_parts",
        "repr_text",
        "result_meta",
        "results_map",
    )

    def __init__(self, code_version: str | None) -> None:
        self.code_version = code_version
        self.results_map: Any = None
        self.result_meta: ResultMeta | None = None
        self.context: dict[str, Any] | None = None
        self.cache_key: str | None = None
        self.identity: bytes | None = None
        self.dependencies: list[Any] | None = None
        #: How deep the task's dependencies nest, the nearest checkpoint below it on its deepest chain
        #: of dependencies, and, for a checkpoint, all those below it (see ``labtech_nb.nesting.chain_depth``).
        self.depth: int | None = None
        self.checkpoint_below: Any = None
        self.checkpoints_below: tuple[Any, ...] | None = None
        #: The task's JSON (as hashed into its key) and repr: in pieces, and whole when short.
        self.json_parts: TextParts | None = None
        self.json_text: str | None = None
        self.repr_parts: TextParts | None = None
        self.repr_text: str | None = None

    def forget_identity(self) -> None:
        """Drop everything derived from the task's code_version."""
        self.identity = self.cache_key = self.json_parts = self.json_text = None


@overload
def task(cls: type[T], /) -> type[T]: ...


@overload
def task(
    *,
    code_version: str | None = None,
    cache: Cache | None = ...,
    max_parallel: int | None = None,
    mlflow_run: bool = False,
) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(
    frozen_default=True, eq_default=True, order_default=True, field_specifiers=(dataclasses.field, dataclasses.Field)
)
def task(
    *args: Any,
    code_version: str | None = None,
    cache: Any = DEFAULT_CACHE,
    max_parallel: int | None = None,
    mlflow_run: bool = False,
) -> Any:
    """Turn a class into a task type: a frozen dataclass whose ``run()`` result is cached.

    Use it bare (``@task``) or with options (``@task(code_version='v2')``). Parameters are declared
    as dataclass fields; any task held in a parameter (also inside a list or dict) is a dependency
    that runs first, and its result is read in ``run()`` as ``self.<param>.result``.

    Args:
        *args: the class, when used bare.
        code_version: a version string that is part of every cache key; change it whenever a change
            to ``run()`` changes results, so old cached results are no longer used.
        cache: omitted for a new ``PickleCache``; ``None`` for no caching (the task runs whenever it
            is needed); or a cache instance such as a ``BaseCache`` subclass.
        max_parallel: the most tasks of this type that may be active at once (None: no limit).
        mlflow_run: wrap each execution of ``run()`` in an mlflow run that records the parameters.

    Returns:
        The decorated class (or, when called with options, a decorator that returns it).

    Raises:
        NotImplementedError: the class has no ``run`` method.
        AttributeError: the class defines a name reserved for task types.
        TaskError: an option has an invalid value.
    """
    options = _make_options(code_version=code_version, cache=cache, max_parallel=max_parallel, mlflow_run=mlflow_run)
    if args:
        if len(args) != 1 or not isinstance(args[0], type):
            raise TaskError(
                "@task takes the class to decorate, or only keyword options: "
                "use @task or @task(code_version=..., cache=..., max_parallel=..., mlflow_run=...)."
            )
        return _decorate(args[0], options)

    def decorator(cls: type[T]) -> type[T]:
        return _decorate(cls, options)

    return decorator


def _make_options(*, code_version: Any, cache: Any, max_parallel: Any, mlflow_run: Any) -> TaskOptions:
    from labtech_nb.cache import Cache, NullCache, PickleCache

    if code_version is not None and not isinstance(code_version, str):
        raise TaskError(f"code_version must be a string or None, got {code_version!r}; for example code_version='v2'.")
    if cache is DEFAULT_CACHE:
        cache = PickleCache()
    elif cache is None:
        cache = NullCache()
    elif not isinstance(cache, Cache):
        raise TaskError(
            f"cache must be a cache instance (e.g. PickleCache()) or None, got {cache!r}. Pass an instance, not a class."
        )
    if max_parallel is not None and (type(max_parallel) is not int or max_parallel < 1):
        raise TaskError(f"max_parallel must be a positive int or None, got {max_parallel!r}.")
    if not isinstance(mlflow_run, bool):
        raise TaskError(f"mlflow_run must be True or False, got {mlflow_run!r}.")
    return TaskOptions(code_version=code_version, cache=cache, max_parallel=max_parallel, mlflow_run=mlflow_run)


def _decorate(cls: type[T], options: TaskOptions) -> type[T]:
    if not is_task_type(cls) and not any(is_task_type(base) for base in cls.__mro__[1:]):
        for name in RESERVED_ATTRIBUTES:
            if any(name in vars(klass) or name in vars(klass).get("__annotations__", {}) for klass in cls.__mro__[:-1]):
                raise AttributeError(f"Task type already defines reserved attribute '{name}'.")
    if "post_init" in vars(cls).get("__annotations__", {}):
        raise AttributeError("Task type already defines reserved attribute 'post_init' as a field; post_init must be a method.")
    if not callable(getattr(cls, "run", None)):
        raise NotImplementedError(f"Task type '{cls.__name__}' must define a 'run' method")

    for name, member in _TASK_MEMBERS.items():
        if name in _USER_OVERRIDABLE and hasattr(cls, name):
            continue
        setattr(cls, name, member)
    defines_repr = "__repr__" in vars(cls)
    cls = dataclass(frozen=True, eq=True, order=True)(cls)
    if not defines_repr:
        # dataclass's repr nests the reprs of dependencies by recursion; assemble it without.
        type.__setattr__(cls, "_lt_dataclass_repr", vars(cls)["__repr__"])
        type.__setattr__(cls, "__repr__", _repr)
    type.__setattr__(cls, "_lt_task_type", True)
    type.__setattr__(cls, "_lt_has_enums", False)
    type.__setattr__(cls, "_lt_options", options)
    type.__setattr__(cls, "_lt_field_names", tuple(field.name for field in dataclasses.fields(cls)))  # type: ignore[arg-type]
    return cls


# --- members added to every task type ------------------------------------------------------------


def _post_init(self: Any) -> None:
    cls = type(self)
    owner = cls.__qualname__
    for name in cls._lt_field_names:
        value = getattr(self, name)
        try:
            converted = convert_param(value, name, owner)
        except RecursionError:
            raise TaskError(f"Parameter value '{name}' of task type '{owner}' is nested too deeply.") from None
        if converted is not value:
            object.__setattr__(self, name, converted)
        if not cls._lt_has_enums and _holds_enum(converted):
            type.__setattr__(cls, "_lt_has_enums", True)
    object.__setattr__(self, "_lt", TaskState(cls._lt_options.code_version))
    post_init = getattr(self, "post_init", None)
    if post_init is not None:
        post_init()


def _identity(self: Any) -> bytes:
    state = self._lt
    if state.identity is None:
        try:
            _settle_identity(self)
        except UnsettledDependency:
            for pending in tasks_bottom_up(self, _has_identity):
                _settle_identity(pending)
    return state.identity  # type: ignore[no-any-return]


def _settle_identity(task: Any) -> None:
    state = task._lt
    params = tuple([param_identity(getattr(task, name)) for name in type(task)._lt_field_names])
    state.identity = task_identity(type(task), state.code_version, params)


def _has_identity(task: Any) -> bool:
    return task._lt.identity is not None


def _eq(self: Any, other: Any) -> Any:
    if self is other:
        return True
    if type(other) is not type(self):
        return NotImplemented
    return self._lt_identity() == other._lt_identity()


def _hash(self: Any) -> int:
    return hash(self._lt_identity())


# --- repr -------------------------------------------------------------------------------------------

_REPR_MEMO = TextMemo("repr_text")


class _ReprStandIns(threading.local):
    """While this thread produces a task's own repr: the dependencies met so far, by id, with their placeholder index."""

    current: dict[int, tuple[int, Any]] | None = None


_repr_stand_ins = _ReprStandIns()


def _repr(self: Any) -> str:
    stand_ins = _repr_stand_ins.current
    if stand_ins is not None:
        stand_in = stand_ins.get(id(self))
        if stand_in is None:
            stand_in = stand_ins[id(self)] = (len(stand_ins), self)
        return placeholder(stand_in[0])
    state = getattr(self, "_lt", None)
    if state is None:  # while it is being constructed
        return type(self)._lt_dataclass_repr(self)  # type: ignore[no-any-return]
    if state.repr_text is not None:
        return state.repr_text  # type: ignore[no-any-return]
    parts = _repr_parts(self)
    if len(parts) == 1 and type(parts[0]) is str:
        return parts[0]  # type: ignore[no-any-return]
    # As dataclass's repr does, a task met again inside its own repr is shown as '...'.
    return assemble_text(self, _repr_parts, _REPR_MEMO, "...")


def _repr_parts(task: Any) -> TextParts:
    """A task's repr in pieces: dataclass's repr with its dependencies' reprs left out."""
    state = task._lt
    if state.repr_parts is not None:
        return state.repr_parts  # type: ignore[no-any-return]
    outer = _repr_stand_ins.current
    stand_ins = _repr_stand_ins.current = {}
    try:
        text = type(task)._lt_dataclass_repr(task)
    finally:
        _repr_stand_ins.current = outer
    if not stand_ins:
        return (text,)
    state.repr_parts = split_at_placeholders(text, REPR_PLACEHOLDER, [dependency for _, dependency in stand_ins.values()])
    return state.repr_parts  # type: ignore[no-any-return]


class _EnumMember:
    """An Enum member pickled by class and name (members holding objects cannot be pickled by value)."""

    __slots__ = ("enum_type", "name")

    def __init__(self, enum_type: type, name: str) -> None:
        self.enum_type = enum_type
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (_EnumMember, (self.enum_type, self.name))


def _to_picklable(value: Any) -> Any:
    if isinstance(value, Enum):
        return _EnumMember(type(value), value.name)
    if type(value) is tuple:
        return tuple(_to_picklable(item) for item in value)
    if isinstance(value, frozendict):
        return frozendict({key: _to_picklable(item) for key, item in value.items()})
    return value


def _from_picklable(value: Any) -> Any:
    if isinstance(value, _EnumMember):
        return value.enum_type[value.name]  # type: ignore[index]
    if type(value) is tuple:
        return tuple(_from_picklable(item) for item in value)
    if isinstance(value, frozendict):
        return frozendict({key: _from_picklable(item) for key, item in value.items()})
    return value


def _reduce(self: Any) -> tuple[Any, ...]:
    cls = type(self)
    state = self._lt
    params = {name: getattr(self, name) for name in cls._lt_field_names}
    arguments: tuple[Any, ...] = (cls, params, state.code_version)
    if cls._lt_has_enums:
        arguments = (cls, {name: _to_picklable(value) for name, value in params.items()}, state.code_version, True)
    depth = chain_depth(self)
    if depth or state.cache_key is not None:
        # What was derived from the dependencies travels along, so that a worker (which unpickles a
        # task with all its dependencies for every task it runs) need not derive it again.
        known = (depth, state.checkpoint_below, state.checkpoints_below, state.cache_key, state.json_parts)
        arguments = (*arguments[:3], cls._lt_has_enums, known)
    # Pickle nests a task's dependencies inside it, a few interpreter frames per level. So a task far
    # up a chain is pickled after the checkpoint below it, and a checkpoint after all checkpoints below
    # it, lowest first: each is pickled while the one below it is already pickled, and the levels
    # between two checkpoints are all that pickle ever nests into.
    if depth <= CHECKPOINT_SPACING:
        return (rebuild_task, arguments)
    anchor = state.checkpoints_below if state.checkpoints_below is not None else state.checkpoint_below
    return (rebuild_anchored_task, (anchor, *arguments))


def rebuild_anchored_task(anchor: Any, *arguments: Any) -> Any:
    """`rebuild_task` for a task pickled after ``anchor``, the checkpoint(s) below it on its chain of dependencies."""
    return rebuild_task(*arguments)


def rebuild_task(
    cls: type[Any],
    params: dict[str, Any],
    code_version: str | None,
    enums_by_name: bool = False,
    known: tuple[int, Any, tuple[Any, ...] | None, str | None, TextParts | None] | None = None,
) -> Any:
    """Rebuild a task from its parameters without re-validating them (used when unpickling).

    Args:
        cls: the task type.
        params: already converted parameter values by field name.
        code_version: the code_version the task carried.
        enums_by_name: Enum members in ``params`` were pickled by class and name.
        known: what was derived from the task's dependencies before it was pickled: its chain depth,
            its checkpoints, and its cache key and JSON text in pieces (or None).

    Returns:
        The task, with ``post_init`` run again.
    """
    instance = object.__new__(cls)
    for name, value in params.items():
        object.__setattr__(instance, name, _from_picklable(value) if enums_by_name else value)
    state = TaskState(code_version)
    if known is not None:
        state.depth, state.checkpoint_below, state.checkpoints_below, state.cache_key, state.json_parts = known
    object.__setattr__(instance, "_lt", state)
    post_init = getattr(instance, "post_init", None)
    if post_init is not None:
        post_init()
    return instance


def _setstate(self: Any, state: dict[str, Any]) -> None:
    """Restore a task pickled by labtech 1.x (labtech_nb's own pickles go through `rebuild_task`)."""
    cls = type(self)
    for name in cls._lt_field_names:
        if name in state:
            object.__setattr__(self, name, convert_param(state[name], name, cls.__qualname__))
    object.__setattr__(self, "_lt", TaskState(state.get("code_version", cls._lt_options.code_version)))
    post_init = getattr(self, "post_init", None)
    if post_init is not None:
        post_init()


def _holds_enum(value: Any) -> bool:
    if isinstance(value, Enum):
        return True
    if type(value) is tuple:
        return any(_holds_enum(item) for item in value)
    if isinstance(value, frozendict):
        return any(_holds_enum(item) for item in value.values())
    return False


def _cache_key(self: Any) -> str:
    state = self._lt
    if state.cache_key is None:
        state.cache_key = type(self)._lt_options.cache.cache_key(self)
    return state.cache_key


def _result(self: Any) -> Any:
    results_map = self._lt.results_map
    if results_map is None:
        raise TaskError(f"Task '{self}' has no active results map")
    try:
        return results_map[self].value
    except KeyError:
        raise TaskError(f"Result for task '{self}' is not available in memory") from None


def _set_results_map(self: Any, results_map: Any) -> None:
    self._lt.results_map = results_map


def _set_result_meta(self: Any, result_meta: ResultMeta | None) -> None:
    self._lt.result_meta = result_meta


def _set_context(self: Any, context: dict[str, Any] | None) -> None:
    self._lt.context = context


def _set_code_version(self: Any, code_version: str | None) -> None:
    state = self._lt
    state.code_version = code_version
    state.forget_identity()


def _filter_context(self: Any, context: dict[str, Any]) -> dict[str, Any]:
    return context


def _runner_options(self: Any) -> dict[str, Any]:
    return {}


def _dependencies(self: Any) -> list[Any]:
    state = self._lt
    if state.dependencies is None:
        state.dependencies = [
            dependency for name in type(self)._lt_field_names for dependency in iter_tasks_in_param(getattr(self, name))
        ]
    return state.dependencies


_TASK_MEMBERS: dict[str, Any] = {
    "_is_task": True,
    "__post_init__": _post_init,
    "__eq__": _eq,
    "__hash__": _hash,
    "__reduce__": _reduce,
    "__setstate__": _setstate,
    "_lt_identity": _identity,
    "_lt_dependencies": _dependencies,
    "cache_key": property(_cache_key, doc="The task's cache key (memoised)."),
    "_cache_key": property(_cache_key),
    "result": property(_result, doc="The task's result, when it is available in memory."),
    "_results_map": property(lambda self: self._lt.results_map),
    "_set_results_map": _set_results_map,
    "result_meta": property(lambda self: self._lt.result_meta, doc="Start time and duration of the task's result."),
    "_set_result_meta": _set_result_meta,
    "context": property(lambda self: self._lt.context, doc="The (filtered) Lab context while the task runs."),
    "set_context": _set_context,
    "_set_code_version": _set_code_version,
    "code_version": property(lambda self: self._lt.code_version, doc="This task's code_version."),
    "current_code_version": property(
        lambda self: type(self)._lt_options.code_version, doc="The task type's current code_version."
    ),
    "filter_context": _filter_context,
    "runner_options": _runner_options,
}
_USER_OVERRIDABLE = frozenset({"filter_context", "runner_options"})


def get_direct_dependencies(task: Any, *, all_identities: bool = True) -> list[Any]:
    """Return the tasks a task depends on directly.

    Args:
        task: a task.
        all_identities: if True, every distinct dependency object is returned, equal ones
            included; if False, equal dependencies are returned once.

    Returns:
        The dependency tasks, in parameter order.
    """
    dependencies = task._lt_dependencies()
    if all_identities:
        # Each distinct object once; equal but separate objects are all kept.
        return list({id(dependency): dependency for dependency in dependencies}.values())
    return list(dict.fromkeys(dependencies))


__all__ = [
    "find_tasks_in_param",
    "get_direct_dependencies",
    "is_task",
    "is_task_type",
    "rebuild_anchored_task",
    "rebuild_task",
    "task",
]
