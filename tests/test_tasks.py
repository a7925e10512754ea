"""The ``@task`` decorator and task instances: the behaviour of LABTECH_API.md sections 2-4 and 12."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import enum
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from frozendict import frozendict

import labtech_nb
import labtech_nb.types
from labtech_nb.cache import BaseCache
from labtech_nb.exceptions import SerializationError, TaskError
from labtech_nb.serialization import Serializer
from labtech_nb.tasks import find_tasks_in_param, get_direct_dependencies
from labtech_nb.types import ResultMeta

RESERVED_ATTRIBUTES = [
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
]


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Model(enum.Enum):
    """Members hold objects that are not valid parameters themselves (the documented idiom)."""

    SMALL = object()
    LARGE = object()


@labtech_nb.task
class Leaf:
    x: int

    def run(self) -> int:
        return self.x


@labtech_nb.task
class Param:
    value: object

    def run(self) -> object:
        return self.value


@labtech_nb.task
class OtherParam:
    value: object

    def run(self) -> object:
        return self.value


@labtech_nb.task
class Pair:
    a: object
    b: object = None

    def run(self) -> None:
        return None


@labtech_nb.task(code_version="v2")
class Versioned:
    n: int

    def run(self) -> int:
        return self.n


@labtech_nb.task
class HoldsVersioned:
    inner: object

    def run(self) -> None:
        return None


@labtech_nb.task
class Defaults:
    a: int
    items: list = dataclasses.field(default_factory=lambda: [1, [2, 3]])
    options: dict = dataclasses.field(default_factory=lambda: {"k": [1, {"z": 2}]})
    label: str = "base"

    def run(self) -> None:
        return None


@labtech_nb.task(code_version="v1", cache=None, max_parallel=2)
class Parent:
    a: int
    b: str = "b"

    def filter_context(self, context: dict) -> dict:
        return {"keep": context["keep"]}

    def run(self) -> str:
        return "parent"


@labtech_nb.task
class Child(Parent):
    c: float = 0.5

    def run(self) -> str:
        return "child"


POST_INIT_CALLS: list[tuple] = []


@labtech_nb.task
class WithPostInit:
    items: list
    options: dict = dataclasses.field(default_factory=dict)

    def post_init(self) -> None:
        POST_INIT_CALLS.append((type(self.items), type(self.options)))
        object.__setattr__(self, "total", sum(self.items))

    def run(self) -> int:
        return self.total


@labtech_nb.task
class ContextFiltering:
    name: str

    def filter_context(self, context: dict) -> dict:
        return {self.name: context[self.name]}

    def runner_options(self) -> dict:
        return {"ray": {"remote_options": {"num_cpus": len(self.name)}}}

    def run(self) -> object:
        return dict(self.context)


@labtech_nb.task
class Plain:
    n: int

    def run(self) -> dict:
        return dict(self.context)


@labtech_nb.task
class SecretResult:
    n: int

    def run(self) -> str:
        return f"SECRET-RESULT-{self.n}"


class TextCache(BaseCache):
    KEY_PREFIX = "text__"

    def save_result(self, storage: Any, task: Any, result: Any) -> None:
        with storage.file_handle(task.cache_key, "result.txt", mode="w") as result_file:
            result_file.write(str(result))

    def load_result(self, storage: Any, task: Any) -> Any:
        with storage.file_handle(task.cache_key, "result.txt", mode="r") as result_file:
            return result_file.read()


@labtech_nb.task(cache=TextCache())
class AsText:
    n: int

    def run(self) -> int:
        return self.n


@dataclasses.dataclass(frozen=True)
class SomeDataclass:
    x: int


class MyInt(int):
    pass


def run_in_memory(tasks: list, **lab_kwargs: object) -> dict:
    lab = labtech_nb.Lab(storage=None, runner_backend="serial", **lab_kwargs)
    return lab.run_tasks(tasks, disable_progress=True, disable_top=True)


def local_task_type() -> type:
    @labtech_nb.task
    class LocalTask:
        x: int

        def run(self) -> int:
            return self.x * 10

    return LocalTask


# --- decorator forms -----------------------------------------------------------------------------


def test_bare_decorator_makes_a_task_type() -> None:
    assert labtech_nb.is_task_type(Leaf)
    assert labtech_nb.is_task(Leaf(x=1))
    assert Leaf(x=1).code_version is None
    assert Leaf(x=1).cache_key.startswith("pickle__Leaf__")


def test_called_decorator_applies_options() -> None:
    assert labtech_nb.is_task_type(Parent)
    task = Parent(a=1)
    assert task.code_version == "v1"
    assert task.current_code_version == "v1"
    # cache=None gives a NullCache, whose key is 'null'.
    assert task.cache_key == "null"


def test_called_decorator_without_arguments() -> None:
    @labtech_nb.task()
    class Empty:
        n: int = 0

        def run(self) -> int:
            return self.n

    assert labtech_nb.is_task_type(Empty)
    assert Empty().code_version is None
    assert run_in_memory([Empty(n=4)]) == {Empty(n=4): 4}


def test_default_cache_is_pickle_and_a_given_cache_instance_is_used() -> None:
    assert Leaf(x=1).cache_key.startswith("pickle__Leaf__")
    assert AsText(n=1).cache_key.startswith("text__AsText__")
    assert AsText(n=1).cache_key.removeprefix("text__") != Leaf(x=1).cache_key.removeprefix("pickle__")


def test_dataclasses_replace_and_copy_give_converted_equal_tasks() -> None:
    task = Pair(a=[1, {"k": Leaf(x=1)}], b="b")
    replaced = dataclasses.replace(task, a=[2])
    assert replaced == Pair(a=(2,), b="b")
    assert replaced.a == (2,)
    assert copy.copy(task) == task
    assert copy.deepcopy(task) == task


# --- frozen dataclass behaviour ------------------------------------------------------------------


def test_assigning_or_deleting_a_parameter_raises_frozen_instance_error() -> None:
    task = Leaf(x=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.x = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del task.x
    assert task.x == 1


def test_repr_shows_type_and_converted_fields() -> None:
    assert repr(Leaf(x=2)) == "Leaf(x=2)"
    assert repr(Param(value=[1, "a"])) == "Param(value=(1, 'a'))"
    assert repr(Pair(a=Leaf(x=1))) == "Pair(a=Leaf(x=1), b=None)"
    assert repr(Param(value=Color.RED)) == "Param(value=<Color.RED: 'red'>)"


def test_tasks_are_ordered_by_fields() -> None:
    tasks = [Pair(a=2, b="x"), Pair(a=1, b="z"), Pair(a=1, b="a")]
    assert sorted(tasks) == [Pair(a=1, b="a"), Pair(a=1, b="z"), Pair(a=2, b="x")]
    assert Pair(a=1, b="a") < Pair(a=1, b="b") <= Pair(a=1, b="b")
    assert Pair(a=2, b="a") > Pair(a=1, b="z")


def test_ordering_tasks_of_different_types_raises_type_error() -> None:
    with pytest.raises(TypeError):
        _ = Param(value=1) < OtherParam(value=2)


def test_equal_tasks_hash_equal_and_work_as_dict_keys() -> None:
    first, second = Pair(a=[1, {"k": Leaf(x=3)}]), Pair(a=[1, {"k": Leaf(x=3)}])
    assert first is not second
    assert first == second
    assert hash(first) == hash(second)
    assert {first: "value"}[second] == "value"
    assert len({first, second, Pair(a=2)}) == 2


def test_fields_are_in_declaration_order_with_defaults() -> None:
    assert [field.name for field in dataclasses.fields(Defaults)] == ["a", "items", "options", "label"]
    task = Defaults(1)
    assert task.label == "base"


# --- parameter conversion -------------------------------------------------------------------------


def test_list_and_dict_parameters_are_stored_as_tuple_and_frozendict() -> None:
    task = Param(value={"a": [1, {"b": [2]}], "c": ()})
    assert task.value == frozendict({"a": (1, frozendict({"b": (2,)})), "c": ()})
    assert type(task.value) is frozendict
    assert type(task.value["a"]) is tuple
    assert type(task.value["a"][1]) is frozendict
    assert Param(value=[1, 2]).value == (1, 2)


def test_tuple_and_frozendict_arguments_equal_list_and_dict_arguments() -> None:
    assert Param(value=[1, [2]]) == Param(value=(1, (2,)))
    assert Param(value={"a": {"b": 1}}) == Param(value=frozendict({"a": frozendict({"b": 1})}))
    assert Param(value=[1, [2]]).cache_key == Param(value=(1, (2,))).cache_key


def test_defaults_and_default_factory_values_are_converted() -> None:
    task = Defaults(a=1)
    assert task.items == (1, (2, 3))
    assert task.options == frozendict({"k": (1, frozendict({"z": 2}))})
    assert type(task.options["k"]) is tuple
    # Each construction gets equal, converted defaults.
    assert Defaults(a=1) == Defaults(a=1, items=(1, (2, 3)), options={"k": [1, {"z": 2}]})


def test_invalid_default_factory_value_raises_task_error_naming_the_field() -> None:
    @labtech_nb.task
    class BadDefault:
        tags: set = dataclasses.field(default_factory=lambda: {"a"})

        def run(self) -> None:
            return None

    with pytest.raises(TaskError) as info:
        BadDefault()
    assert "Unsupported type 'set' in parameter value 'tags'" in str(info.value)


# --- subclassing ----------------------------------------------------------------------------------


def test_subclass_inherits_fields_before_its_own() -> None:
    assert [field.name for field in dataclasses.fields(Child)] == ["a", "b", "c"]
    task = Child(1, "x", 2.5)
    assert repr(task) == "Child(a=1, b='x', c=2.5)"
    assert run_in_memory([task], context={"keep": 1}) == {task: "child"}


def test_subclass_does_not_inherit_decorator_options() -> None:
    task = Child(a=1)
    assert task.code_version is None
    assert task.current_code_version is None
    # The parent uses cache=None; the re-decorated subclass gets the default PickleCache.
    assert task.cache_key.startswith("pickle__Child__")
    assert Child._lt_options.max_parallel is None
    assert Parent._lt_options.max_parallel == 2


def test_subclass_inherits_user_defined_methods() -> None:
    assert Child(a=1).filter_context({"keep": 1, "drop": 2}) == {"keep": 1}


def test_subclass_task_is_not_equal_to_parent_task_with_same_values() -> None:
    assert Parent(a=1, b="b") != Child(a=1, b="b", c=0.5)
    assert Child(a=1) == Child(a=1)


def test_redecorating_a_subclass_does_not_trip_the_reserved_attribute_check() -> None:
    @labtech_nb.task
    class Sub(Leaf):
        y: int = 0

    assert Sub(x=1, y=2).run() == 1
    assert labtech_nb.is_task_type(Sub)


# --- post_init ------------------------------------------------------------------------------------


def test_post_init_runs_after_conversion_and_can_set_attributes() -> None:
    POST_INIT_CALLS.clear()
    task = WithPostInit(items=[1, 2, 3], options={"a": 1})
    assert POST_INIT_CALLS == [(tuple, frozendict)]
    assert task.total == 6
    assert run_in_memory([task]) == {task: 6}


def test_post_init_runs_again_after_unpickling() -> None:
    task = WithPostInit(items=[4, 5])
    POST_INIT_CALLS.clear()
    restored = pickle.loads(pickle.dumps(task))
    assert POST_INIT_CALLS == [(tuple, frozendict)]
    assert restored.total == 9
    assert restored == task


def test_dunder_post_init_is_reserved() -> None:
    with pytest.raises(AttributeError) as info:

        @labtech_nb.task
        class Dunder:
            def __post_init__(self) -> None:
                pass

            def run(self) -> None:
                return None

    assert str(info.value) == "Task type already defines reserved attribute '__post_init__'."


# --- filter_context and runner_options -------------------------------------------------------------


def test_default_filter_context_passes_the_context_through() -> None:
    context = {"a": 1, "b": [2]}
    assert Plain(n=1).filter_context(context) == context


def test_default_runner_options_is_empty() -> None:
    assert Plain(n=1).runner_options() == {}


def test_context_is_none_until_the_task_runs_then_the_lab_context() -> None:
    task = Plain(n=1)
    assert task.context is None
    assert run_in_memory([task], context={"a": 1}) == {task: {"a": 1}}
    assert task.context == {"a": 1}


def test_filter_context_override_uses_parameters_and_is_what_run_sees() -> None:
    task = ContextFiltering(name="data")
    lab_context = {"data": [1, 2], "other": "large"}
    assert task.filter_context(lab_context) == {"data": [1, 2]}
    assert run_in_memory([task], context=lab_context) == {task: {"data": [1, 2]}}
    assert task.context == {"data": [1, 2]}


def test_runner_options_override_uses_parameters() -> None:
    assert ContextFiltering(name="abc").runner_options() == {"ray": {"remote_options": {"num_cpus": 3}}}


# --- code_version ---------------------------------------------------------------------------------


def test_code_version_and_current_code_version_come_from_the_decorator() -> None:
    task = Versioned(n=1)
    assert task.code_version == "v2"
    assert task.current_code_version == "v2"
    assert Leaf(x=1).code_version is None
    assert Leaf(x=1).current_code_version is None


def test_task_loaded_with_an_old_code_version_keeps_it() -> None:
    serialized = Serializer().serialize_task(Versioned(n=1))
    serialized["_code_version"] = "v1"
    old = Serializer().deserialize_task(serialized)
    assert old.code_version == "v1"
    assert old.current_code_version == "v2"
    assert old != Versioned(n=1)
    assert old.cache_key != Versioned(n=1).cache_key


# --- pickling -------------------------------------------------------------------------------------


def test_pickle_carries_parameters_and_code_version() -> None:
    serialized = Serializer().serialize_task(Versioned(n=5))
    serialized["_code_version"] = "v1"
    old = Serializer().deserialize_task(serialized)
    restored = pickle.loads(pickle.dumps(old))
    assert restored.n == 5
    assert restored.code_version == "v1"
    assert restored.current_code_version == "v2"
    assert restored == old
    nested = Pair(a=[Leaf(x=1), {"c": Color.GREEN}], b=Versioned(n=2))
    assert pickle.loads(pickle.dumps(nested)) == nested


def test_pickle_never_carries_result_result_meta_or_context() -> None:
    task = SecretResult(n=7)
    run_in_memory([task], context={"context_marker": "SECRET-CONTEXT"})
    assert task.result == "SECRET-RESULT-7"
    assert task.result_meta is not None
    assert task.context == {"context_marker": "SECRET-CONTEXT"}

    data = pickle.dumps(task)
    assert b"SECRET-RESULT" not in data
    assert b"SECRET-CONTEXT" not in data
    restored = pickle.loads(data)
    assert restored == task
    assert restored.result_meta is None
    assert restored.context is None
    with pytest.raises(TaskError) as info:
        _ = restored.result
    assert str(info.value) == "Task 'SecretResult(n=7)' has no active results map"


def test_pickle_without_a_run_drops_manually_set_state() -> None:
    task = Leaf(x=3)
    task.set_context({"a": 1})
    task._set_result_meta(ResultMeta(start=datetime.datetime(2024, 1, 1), duration=datetime.timedelta(seconds=1)))
    restored = pickle.loads(pickle.dumps(task))
    assert restored.context is None
    assert restored.result_meta is None


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ({1, 2}, "set"),
        (frozenset({1}), "frozenset"),
        (b"bytes", "bytes"),
        (datetime.datetime(2024, 1, 1), "datetime"),
        (Path("data.csv"), type(Path("data.csv")).__qualname__),
        (np.float64(1.0), "float64"),
        (np.int64(1), "int64"),
        (np.arange(3), "ndarray"),
        (SomeDataclass(x=1), "SomeDataclass"),
        (MyInt(3), "MyInt"),
        (Leaf, "type"),
        (object(), "object"),
        (1j, "complex"),
    ],
)
def test_unsupported_parameter_type_raises_task_error(value: object, type_name: str) -> None:
    with pytest.raises(TaskError) as info:
        Param(value=value)
    assert f"Unsupported type '{type_name}' in parameter value 'value'" in str(info.value)


@pytest.mark.parametrize(
    ("value", "path", "type_name"),
    [
        ([1, {2}], "value[1]", "set"),
        ({"b": [0, 1, {"c": {3}}]}, 'value["b"][2]["c"]', "set"),
        ((1, (2, (3, b"x"))), "value[1][1][1]", "bytes"),
        (frozendict({"k": [None, datetime.date(2024, 1, 1)]}), 'value["k"][1]', "date"),
    ],
)
def test_unsupported_type_error_names_the_nested_parameter_path(value: object, path: str, type_name: str) -> None:
    with pytest.raises(TaskError) as info:
        Param(value=value)
    assert f"Unsupported type '{type_name}' in parameter value '{path}'" in str(info.value)


def test_unsupported_type_message_starts_with_labtech_text() -> None:
    """labtech_nb keeps labtech's sentence intact (guidance may follow it), so code matching it works."""

    @labtech_nb.task
    class Exp:
        opts: dict

        def run(self) -> None:
            return None

    with pytest.raises(TaskError) as info:
        Exp(opts={"a": 1, "b": (1, 2, {"c": SomeDataclass(x=1)})})
    assert str(info.value).startswith("""Unsupported type 'SomeDataclass' in parameter value 'opts["b"][2]["c"]'.""")


@pytest.mark.parametrize("key", [1, None, 2.5, ("a",), True])
def test_non_str_dict_key_raises_task_error(key: object) -> None:
    with pytest.raises(TaskError) as info:
        Param(value={"ok": {key: 1}})
    assert str(info.value).startswith(f"Parameter dictionary keys must be strings, found: '{key}'")


def test_str_subclass_dict_key_is_rejected() -> None:
    class Key(str):
        pass

    with pytest.raises(TaskError) as info:
        Param(value={Key("a"): 1})
    assert str(info.value).startswith("Parameter dictionary keys must be strings, found: 'a'")


def test_missing_run_raises_not_implemented_error() -> None:
    with pytest.raises(NotImplementedError) as info:

        @labtech_nb.task
        class NoRun:
            x: int

    assert str(info.value) == "Task type 'NoRun' must define a 'run' method"


def test_non_callable_run_raises_not_implemented_error() -> None:
    with pytest.raises(NotImplementedError) as info:

        @labtech_nb.task(code_version="v1")
        class RunIsData:
            run = 5

    assert str(info.value) == "Task type 'RunIsData' must define a 'run' method"


@pytest.mark.parametrize("name", RESERVED_ATTRIBUTES)
def test_reserved_attribute_defined_in_the_class_raises_attribute_error(name: str) -> None:
    namespace = {name: None, "run": lambda self: None}
    cls = type("Reserving", (), namespace)
    with pytest.raises(AttributeError) as info:
        labtech_nb.task(cls)
    assert str(info.value) == f"Task type already defines reserved attribute '{name}'."


@pytest.mark.parametrize("name", RESERVED_ATTRIBUTES)
def test_reserved_attribute_inherited_from_a_plain_base_raises_attribute_error(name: str) -> None:
    base = type("PlainBase", (), {name: None})

    with pytest.raises(AttributeError) as info:

        @labtech_nb.task(code_version="v1")
        class Inheriting(base):  # type: ignore[valid-type, misc]
            def run(self) -> None:
                return None

    assert str(info.value) == f"Task type already defines reserved attribute '{name}'."


def test_local_task_class_cache_key_raises_serialization_error() -> None:
    LocalTask = local_task_type()
    task = LocalTask(x=1)
    with pytest.raises(SerializationError) as info:
        _ = task.cache_key
    assert str(info.value) == (
        'Unable to serialize class "local_task_type.<locals>.LocalTask" because it was defined in a function. '
        "Please ensure all task and parameter classes are defined at the top-level of a module."
    )


@pytest.mark.parametrize("runner_backend", ["serial", "thread"])
def test_local_task_class_runs_without_caching_storage(runner_backend: str) -> None:
    LocalTask = local_task_type()
    tasks = [LocalTask(x=1), LocalTask(x=2)]
    lab = labtech_nb.Lab(storage=None, runner_backend=runner_backend)
    assert lab.run_tasks(tasks, disable_progress=True, disable_top=True) == {tasks[0]: 10, tasks[1]: 20}


def test_local_task_class_needs_a_key_only_with_a_caching_storage(tmp_path: Path) -> None:
    LocalTask = local_task_type()
    assert labtech_nb.Lab(storage=None, runner_backend="serial").is_cached(LocalTask(x=1)) is False
    lab = labtech_nb.Lab(storage=tmp_path / "storage", runner_backend="serial")
    with pytest.raises(SerializationError, match="because it was defined in a function"):
        lab.run_tasks([LocalTask(x=1)], disable_progress=True, disable_top=True)


def test_local_enum_parameter_only_fails_when_a_key_is_needed() -> None:
    class LocalEnum(enum.Enum):
        A = 1

    task = Param(value=[LocalEnum.A])
    assert run_in_memory([task]) == {task: (LocalEnum.A,)}
    with pytest.raises(SerializationError) as info:
        _ = task.cache_key
    assert str(info.value).startswith(
        'Unable to serialize class "test_local_enum_parameter_only_fails_when_a_key_is_needed.<locals>.LocalEnum"'
    )


def test_local_task_class_with_null_cache_has_the_null_key() -> None:
    @labtech_nb.task(cache=None)
    class LocalFactory:
        def run(self) -> int:
            return 1

    assert LocalFactory().cache_key == "null"


@pytest.mark.parametrize(
    ("value", "path", "key"),
    [
        ({"_is_task": True, "__class__": "m.T"}, "value", "_is_task"),
        ({"a": {"_is_enum": True, "__class__": "m.E", "name": "A"}}, 'value["a"]', "_is_enum"),
        ([0, {"x": [{"_is_task": False}]}], 'value[1]["x"][0]', "_is_task"),
        (frozendict({"_is_enum": 1}), "value", "_is_enum"),
    ],
)
def test_dicts_with_task_or_enum_marker_keys_are_rejected(value: object, path: str, key: str) -> None:
    with pytest.raises(TaskError) as info:
        Param(value=value)
    message = str(info.value)
    assert f"'{key}'" in message
    assert f"parameter value '{path}'" in message


# --- is_task and is_task_type ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected_is_task", "expected_is_task_type"),
    [
        (Leaf(x=1), True, False),
        (Leaf, False, True),
        (Child(a=1), True, False),
        (Child, False, True),
        (SomeDataclass(x=1), False, False),
        (SomeDataclass, False, False),
        ({"_is_task": True}, False, False),
        (None, False, False),
        (1, False, False),
        (type, False, False),
    ],
)
def test_is_task_and_is_task_type(value: object, expected_is_task: bool, expected_is_task_type: bool) -> None:
    for module in (labtech_nb, labtech_nb.types):
        assert module.is_task(value) is expected_is_task
        assert module.is_task_type(value) is expected_is_task_type


# --- find_tasks_in_param and get_direct_dependencies ---------------------------------------------


def test_find_tasks_in_param_searches_converted_parameter_values() -> None:
    one, two, three = Leaf(x=1), Leaf(x=2), Leaf(x=3)
    task = Param(value=[one, {"a": two, "b": [3, three]}, "x"])
    assert find_tasks_in_param(task.value) == [one, two, three]
    assert find_tasks_in_param(one) == [one]
    assert find_tasks_in_param((one, one)) == [one, one]


def test_find_tasks_in_param_searches_plain_lists_and_dicts() -> None:
    one, two = Leaf(x=1), Leaf(x=2)
    assert find_tasks_in_param([one]) == [one]
    assert find_tasks_in_param({"a": one}) == [one]
    assert find_tasks_in_param([one, {"b": [two]}]) == [one, two]


@pytest.mark.parametrize("value", [None, True, 1, 1.5, "s", Color.RED, (), frozendict(), [], {}, (1, ("a",))])
def test_find_tasks_in_param_finds_nothing_in_plain_values(value: object) -> None:
    assert find_tasks_in_param(value) == []


def test_get_direct_dependencies_lists_each_dependency_object_once() -> None:
    shared, equal_copy, other = Leaf(x=1), Leaf(x=1), Leaf(x=2)
    grandchild = Leaf(x=9)
    task = Pair(a=[shared, {"k": other}, shared], b=(equal_copy, Pair(a=grandchild)))
    dependencies = get_direct_dependencies(task, all_identities=True)
    assert [id(dependency) for dependency in dependencies] == [id(shared), id(other), id(equal_copy), id(task.b[1])]
    assert grandchild not in dependencies


def test_get_direct_dependencies_without_all_identities_deduplicates_equal_tasks() -> None:
    shared, equal_copy, other = Leaf(x=1), Leaf(x=1), Leaf(x=2)
    task = Pair(a=[shared, other], b={"c": equal_copy})
    assert get_direct_dependencies(task, all_identities=False) == [Leaf(x=1), Leaf(x=2)]
    assert get_direct_dependencies(Leaf(x=1), all_identities=False) == []


def test_dependencies_in_collections_run_first_and_their_results_are_readable() -> None:
    @labtech_nb.task
    class Sum:
        parts: dict

        def run(self) -> int:
            return sum(part.result for part in self.parts["tasks"])

    task = Sum(parts={"tasks": [Leaf(x=2), Leaf(x=5)]})
    assert run_in_memory([task]) == {task: 7}


# --- Enum parameters -------------------------------------------------------------------------------


def test_enum_members_are_kept_as_members() -> None:
    task = Param(value=[Model.SMALL, {"color": Color.RED}])
    assert task.value[0] is Model.SMALL
    assert task.value[1]["color"] is Color.RED
    assert Param(value=Model.SMALL) == Param(value=Model.SMALL)
    assert Param(value=Model.SMALL) != Param(value=Model.LARGE)


def test_enum_member_holding_an_object_is_keyed_by_name() -> None:
    serialized = Serializer().serialize_task(Param(value=Model.LARGE))
    assert serialized["value"] == {"_is_enum": True, "__class__": f"{__name__}.Model", "name": "LARGE"}
    assert Param(value=Model.LARGE).cache_key != Param(value=Model.SMALL).cache_key


def test_enum_member_is_distinct_from_its_value() -> None:
    assert Param(value=Color.RED) != Param(value="red")
    assert Param(value=Color.RED).cache_key != Param(value="red").cache_key


def test_run_reads_enum_member_objects() -> None:
    task = Param(value=Model.SMALL)
    assert run_in_memory([task])[task] is Model.SMALL


# --- equality -------------------------------------------------------------------------------------


def test_int_float_and_bool_parameters_are_distinct() -> None:
    tasks = [Param(value=1), Param(value=1.0), Param(value=True)]
    assert tasks[0] != tasks[1]
    assert tasks[0] != tasks[2]
    assert tasks[1] != tasks[2]
    assert len(set(tasks)) == 3
    assert len({task.cache_key for task in tasks}) == 3


def test_int_float_and_bool_tasks_are_not_merged_in_a_run() -> None:
    tasks = [Param(value=1), Param(value=1.0), Param(value=True), Param(value=1)]
    results = run_in_memory(tasks)
    assert list(results) == tasks[:3]
    assert [type(result) for result in results.values()] == [int, float, bool]


def test_nested_numeric_types_are_distinct() -> None:
    assert Param(value=[1, {"a": 0}]) != Param(value=[1, {"a": 0.0}])
    assert Param(value=(False,)) != Param(value=(0,))


def test_dict_order_matters() -> None:
    first = Param(value={"a": 1, "b": 2})
    second = Param(value={"b": 2, "a": 1})
    assert first != second
    assert first.cache_key != second.cache_key
    assert first == Param(value=frozendict({"a": 1, "b": 2}))


def test_negative_zero_is_distinct_and_nan_is_equal_to_itself() -> None:
    assert Param(value=0.0) != Param(value=-0.0)
    nan_task = Param(value=math.nan)
    assert nan_task == Param(value=float("nan"))
    assert hash(nan_task) == hash(Param(value=float("nan")))


def test_code_version_is_part_of_equality() -> None:
    serialized = Serializer().serialize_task(Versioned(n=1))
    serialized["_code_version"] = "v1"
    old = Serializer().deserialize_task(serialized)
    assert old != Versioned(n=1)
    assert len({old, Versioned(n=1)}) == 2
    assert HoldsVersioned(inner=old) != HoldsVersioned(inner=Versioned(n=1))
    serialized["_code_version"] = "v2"
    assert Serializer().deserialize_task(serialized) == Versioned(n=1)


def test_tasks_of_different_classes_are_never_equal() -> None:
    assert Param(value=1) != OtherParam(value=1)
    assert Param(value=Leaf(x=1)) != Param(value=Pair(a=1))


def test_comparing_with_a_non_task_is_false() -> None:
    assert Leaf(x=1) != 1
    assert Leaf(x=1) != "Leaf(x=1)"
    assert (Leaf(x=1) == None) is False  # noqa: E711


def test_equal_nested_tasks_make_equal_parents() -> None:
    first = Pair(a={"deps": [Leaf(x=1), Versioned(n=2)]}, b=Color.GREEN)
    second = Pair(a=frozendict({"deps": (Leaf(x=1), Versioned(n=2))}), b=Color.GREEN)
    assert first == second
    assert hash(first) == hash(second)
    assert first.cache_key == second.cache_key
