"""Cache keys: byte-identical to labtech 1.x (CACHE_FORMAT.md), consistent with task equality, stable."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import importlib
import json
import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from frozendict import frozendict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import labtech_nb
from labtech_nb.cache import BaseCache, NullCache, PickleCache
from labtech_nb.exceptions import TaskError
from labtech_nb.serialization import Serializer
from labtech_nb.types import ResultMeta

FIXTURES_DIR = Path(__file__).parent / "fixtures"
EXPECTED_ENTRIES = json.loads((FIXTURES_DIR / "labtech_1_1_0_expected.json").read_text())
FIXTURE_STORAGE_DIR = FIXTURES_DIR / "labtech_1_1_0_storage"

HYPOTHESIS_SETTINGS = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def reference_key(serialized_task: dict[str, Any], qualname: str, prefix: str = "pickle__") -> str:
    """The key algorithm exactly as CACHE_FORMAT.md states it."""
    payload = json.dumps(serialized_task)
    return prefix + qualname.replace(".", "-") + "__" + hashlib.sha1(payload.encode("utf-8")).hexdigest()


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], ModuleType]]:
    """Write a module into tmp_path and import it under the given name (removed again afterwards)."""
    created: list[str] = []

    def make(name: str, source: str) -> ModuleType:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, name, raising=False)
        importlib.invalidate_caches()
        created.append(name)
        return importlib.import_module(name)

    yield make
    for name in created:
        sys.modules.pop(name, None)


MYTASKS_SOURCE = """
    import enum

    import labtech_nb as labtech


    class Color(enum.Enum):
        RED = "red"
        GREEN = "green"


    @labtech.task
    class Base:
        seed: int

        def run(self):
            return self.seed
"""


MOD_SOURCE = """
    import enum

    import labtech_nb as labtech


    class Color(enum.Enum):
        RED = "red"
        GREEN = "green"


    class Level(enum.IntEnum):
        ONE = 1


    class Outer:
        class Mode(enum.Enum):
            FAST = "fast"

        @labtech.task
        class Inner:
            k: int

            def run(self):
                return self.k


    @labtech.task(code_version="v2")
    class V:
        n: int

        def run(self):
            return self.n


    @labtech.task
    class Base:
        seed: int
        scale: float = 1.0

        def run(self):
            return self.seed


    @labtech.task
    class Sub(Base):
        extra: str = "e"

        def run(self):
            return self.extra


    @labtech.task
    class Holder:
        inner: object
        items: list

        def run(self):
            return None


    @labtech.task
    class Everything:
        i: int
        f: float
        b: bool
        n: object
        s: str
        t: tuple
        d: dict
        e: object
        inf: float
        nan: float

        def run(self):
            return None
"""


@pytest.fixture
def mod(make_module: Callable[[str, str], ModuleType]) -> ModuleType:
    return make_module("mod", MOD_SOURCE)


# --- the algorithm ------------------------------------------------------------------------------


def test_checked_example_mytasks_base(make_module: Callable[[str, str], ModuleType]) -> None:
    mytasks = make_module("mytasks", MYTASKS_SOURCE)
    task = mytasks.Base(seed=3)
    serialized = Serializer().serialize_task(task)
    assert json.dumps(serialized) == '{"_is_task": true, "__class__": "mytasks.Base", "seed": 3}'
    assert task.cache_key == "pickle__Base__55e06e8e3ff1ce047d6f9d6e34f43a9065658b9a"
    assert PickleCache().cache_key(task) == "pickle__Base__55e06e8e3ff1ce047d6f9d6e34f43a9065658b9a"


def test_nested_class_key_prefix_and_class_path(mod: ModuleType) -> None:
    task = mod.Outer.Inner(k=1)
    serialized = Serializer().serialize_task(task)
    assert serialized == {"_is_task": True, "__class__": "mod.Outer>Inner", "k": 1}
    assert task.cache_key.startswith("pickle__Outer-Inner__")
    assert task.cache_key == reference_key(serialized, "Outer.Inner")
    assert repr(task) == "Outer.Inner(k=1)"
    assert Serializer().deserialize_task(serialized) == task


def test_code_version_follows_class_and_precedes_fields(mod: ModuleType) -> None:
    task = mod.V(n=1)
    payload = json.dumps(Serializer().serialize_task(task))
    assert payload == '{"_is_task": true, "__class__": "mod.V", "_code_version": "v2", "n": 1}'
    assert task.cache_key == "pickle__V__" + hashlib.sha1(payload.encode()).hexdigest()
    assert "_code_version" not in Serializer().serialize_task(mod.Base(seed=1))


def test_nested_tasks_are_serialized_inline_with_their_own_code_version(mod: ModuleType) -> None:
    task = mod.Holder(inner=mod.V(n=1), items=[mod.Base(seed=2), {"k": mod.Outer.Inner(k=3)}])
    payload = json.dumps(Serializer().serialize_task(task))
    assert payload == (
        '{"_is_task": true, "__class__": "mod.Holder", '
        '"inner": {"_is_task": true, "__class__": "mod.V", "_code_version": "v2", "n": 1}, '
        '"items": [{"_is_task": true, "__class__": "mod.Base", "seed": 2, "scale": 1.0}, '
        '{"k": {"_is_task": true, "__class__": "mod.Outer>Inner", "k": 3}}]}'
    )
    assert task.cache_key == "pickle__Holder__" + hashlib.sha1(payload.encode()).hexdigest()


def test_enum_form(mod: ModuleType) -> None:
    serializer = Serializer()
    assert serializer.serialize_value(mod.Color.GREEN) == {"_is_enum": True, "__class__": "mod.Color", "name": "GREEN"}
    # IntEnum members are still Enum members, not ints.
    assert serializer.serialize_value(mod.Level.ONE) == {"_is_enum": True, "__class__": "mod.Level", "name": "ONE"}
    assert serializer.serialize_value(mod.Outer.Mode.FAST) == {"_is_enum": True, "__class__": "mod.Outer>Mode", "name": "FAST"}
    task = mod.Holder(inner=mod.Color.RED, items=[mod.Level.ONE])
    assert json.dumps(serializer.serialize_task(task)) == (
        '{"_is_task": true, "__class__": "mod.Holder", '
        '"inner": {"_is_enum": true, "__class__": "mod.Color", "name": "RED"}, '
        '"items": [{"_is_enum": true, "__class__": "mod.Level", "name": "ONE"}]}'
    )
    assert mod.Holder(inner=mod.Level.ONE, items=[]) != mod.Holder(inner=1, items=[])
    assert mod.Holder(inner=mod.Level.ONE, items=[]).cache_key != mod.Holder(inner=1, items=[]).cache_key


def test_every_value_form(mod: ModuleType) -> None:
    task = mod.Everything(
        i=1,
        f=1.0,
        b=True,
        n=None,
        s="café ☕",
        t=[1, (2, "x")],
        d={"z": 1, "a": [{"y": None}]},
        e=mod.Color.RED,
        inf=math.inf,
        nan=math.nan,
    )
    payload = json.dumps(Serializer().serialize_task(task))
    assert payload == (
        '{"_is_task": true, "__class__": "mod.Everything", "i": 1, "f": 1.0, "b": true, "n": null, '
        '"s": "caf\\u00e9 \\u2615", "t": [1, [2, "x"]], "d": {"z": 1, "a": [{"y": null}]}, '
        '"e": {"_is_enum": true, "__class__": "mod.Color", "name": "RED"}, "inf": Infinity, "nan": NaN}'
    )
    assert task.cache_key == "pickle__Everything__" + hashlib.sha1(payload.encode()).hexdigest()


def test_inherited_fields_come_first_and_defaults_are_included(mod: ModuleType) -> None:
    task = mod.Sub(seed=4)
    payload = json.dumps(Serializer().serialize_task(task))
    assert payload == '{"_is_task": true, "__class__": "mod.Sub", "seed": 4, "scale": 1.0, "extra": "e"}'
    assert task.cache_key.startswith("pickle__Sub__")
    assert task.cache_key != mod.Base(seed=4).cache_key


def test_int_float_and_bool_give_different_keys(mod: ModuleType) -> None:
    keys = {mod.Holder(inner=value, items=[]).cache_key for value in (1, 1.0, True)}
    assert len(keys) == 3


def test_custom_cache_uses_its_own_prefix(mod: ModuleType) -> None:
    class ParquetLikeCache(BaseCache):
        KEY_PREFIX = "parquet__"

        def save_result(self, storage: Any, task: Any, result: Any) -> None:
            raise NotImplementedError

        def load_result(self, storage: Any, task: Any) -> Any:
            raise NotImplementedError

    task = mod.Outer.Inner(k=1)
    pickle_key = PickleCache().cache_key(task)
    assert ParquetLikeCache().cache_key(task) == "parquet__" + pickle_key.removeprefix("pickle__")
    assert NullCache().cache_key(task) == "null"


# --- labtech 1.1.0 fixture -----------------------------------------------------------------------


@pytest.fixture
def fixture_tasks_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(FIXTURES_DIR))
    return importlib.import_module("labtech_fixture_tasks")


@pytest.mark.parametrize("entry", EXPECTED_ENTRIES, ids=[entry["cache_key"] for entry in EXPECTED_ENTRIES])
def test_labtech_1_1_0_fixture_keys_match(fixture_tasks_module: ModuleType, entry: dict[str, Any]) -> None:
    task = Serializer().deserialize_task(entry["serialized_task"])
    assert type(task).__qualname__ == entry["qualname"]
    assert task.code_version == entry["code_version"]
    assert task.cache_key == entry["cache_key"]
    assert Serializer().serialize_task(task) == entry["serialized_task"]
    assert json.dumps(Serializer().serialize_task(task)) == json.dumps(entry["serialized_task"])
    assert repr(task) == entry["task_repr"]


def test_labtech_1_1_0_fixture_covers_the_tricky_cases() -> None:
    keys = [entry["cache_key"] for entry in EXPECTED_ENTRIES]
    assert any(key.startswith("pickle__Outer-Inner__") for key in keys)
    assert any("_code_version" in entry["serialized_task"] for entry in EXPECTED_ENTRIES)
    assert any('"_is_enum"' in json.dumps(entry["serialized_task"]) for entry in EXPECTED_ENTRIES)
    assert len(EXPECTED_ENTRIES) >= 20


def test_labtech_1_1_0_storage_entries_are_found_under_the_computed_key(fixture_tasks_module: ModuleType) -> None:
    entry_dirs = sorted(path for path in FIXTURE_STORAGE_DIR.iterdir() if path.is_dir())
    assert len(entry_dirs) >= 20
    for entry_dir in entry_dirs:
        metadata = json.loads((entry_dir / "metadata.json").read_text())
        task = Serializer().deserialize_task(metadata["task"])
        assert task.cache_key == entry_dir.name == metadata["cache_key"]


def test_fixture_tasks_built_directly_have_labtech_keys(fixture_tasks_module: ModuleType) -> None:
    tasks = fixture_tasks_module
    by_repr = {entry["task_repr"]: entry["cache_key"] for entry in EXPECTED_ENTRIES}
    built = [
        tasks.Base(seed=1),
        tasks.Base(seed=2, scale=2, label="café ☕", flag=True, extra=7),
        tasks.Base(seed=4, scale=math.inf, label=""),
        tasks.Versioned(n=1),
        tasks.WithEnum(color=tasks.Color.GREEN, n=5),
        tasks.WithCollections(items=[1, 2, 3], options={"b": 1, "a": {"x": [1, 2], "y": None}}),
        tasks.WithCollections(
            items=[[1, 2], [3], tasks.Color.RED, "z", 0.5, False],
            options={"z": [{"k": "v"}], "flag": True, "f": 1.5, "c": tasks.Color.BLUE},
        ),
        tasks.DependsOnVersioned(inner=tasks.Versioned(n=1)),
        tasks.UsesFactory(factory=tasks.Factory(size=4)),
        tasks.Outer.Inner(k=1),
    ]
    for task in built:
        assert task.cache_key == by_repr[repr(task)], repr(task)


# --- serializer compatibility ----------------------------------------------------------------------


def test_deserialize_task_accepts_labtech_result_meta_keyword(mod: ModuleType) -> None:
    """labtech 1.1.0's signature is ``deserialize_task(serialized, *, result_meta)``; custom caches call it so."""
    meta = ResultMeta(start=datetime.datetime(2024, 1, 2, 3, 4, 5), duration=datetime.timedelta(seconds=2))
    serialized = Serializer().serialize_task(mod.Base(seed=1))
    task = Serializer().deserialize_task(serialized, result_meta=meta)  # type: ignore[call-arg]
    assert task == mod.Base(seed=1)
    assert task.result_meta == meta


# --- property-based tests --------------------------------------------------------------------------


class HColor(enum.Enum):
    RED = "red"
    GREEN = "green"


class HNumber(enum.IntEnum):
    ONE = 1


@labtech_nb.task
class HLeaf:
    x: object

    def run(self) -> object:
        return self.x


@labtech_nb.task
class HPair:
    a: object
    b: object = None

    def run(self) -> None:
        return None


@labtech_nb.task
class HOther:
    a: object
    b: object = None

    def run(self) -> None:
        return None


@labtech_nb.task(code_version="v1")
class HVersioned:
    a: object

    def run(self) -> None:
        return None


@dataclasses.dataclass(frozen=True)
class NotAParameter:
    x: int


SMALL_SCALARS = [None, True, False, 0, 1, -1, 0.0, -0.0, 1.0, 0.5, math.inf, math.nan, "", "a", "1", "é"]
SMALL_ENUMS = [HColor.RED, HColor.GREEN, HNumber.ONE]
DICT_KEYS = ["a", "b", "k", "0"]

scalars = st.one_of(
    st.sampled_from(SMALL_SCALARS + SMALL_ENUMS),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
)


def with_code_version(task: Any, code_version: str | None) -> Any:
    """The task as `Lab.cached_tasks` would return it from an entry written with ``code_version``."""
    serialized = Serializer().serialize_task(task)
    serialized.pop("_code_version", None)
    if code_version is not None:
        serialized["_code_version"] = code_version
    return Serializer().deserialize_task(serialized)


def task_strategy(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    plain = st.one_of(
        st.builds(HLeaf, x=values),
        st.builds(HPair, a=values, b=values),
        st.builds(HOther, a=values, b=values),
        st.builds(HVersioned, a=values),
    )
    return st.one_of(
        plain,
        st.tuples(plain, st.sampled_from([None, "v0", "v1"])).map(lambda pair: with_code_version(*pair)),
    )


def valid_values(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.lists(children, max_size=3),
            st.lists(children, max_size=3).map(tuple),
            st.dictionaries(st.sampled_from(DICT_KEYS), children, max_size=3),
            st.dictionaries(st.sampled_from(DICT_KEYS), children, max_size=3).map(frozendict),
            task_strategy(children),
        )

    return st.recursive(leaves, extend, max_leaves=6)


small_values = valid_values(st.sampled_from(SMALL_SCALARS + SMALL_ENUMS))
small_tasks = task_strategy(small_values)
any_valid_tasks = task_strategy(valid_values(scalars))

BAD_LEAVES = [
    {1, 2},
    frozenset(),
    b"bytes",
    bytearray(b"x"),
    datetime.date(2020, 1, 1),
    Path("data.csv"),
    np.float64(1.5),
    np.int64(2),
    np.arange(2),
    NotAParameter(1),
    object(),
    1j,
    range(2),
    HLeaf,
]
BAD_KEYS = [1, None, True, 2.5, ("t",), HColor.RED, b"k", "_is_task", "_is_enum"]


def mixed_values() -> st.SearchStrategy[Any]:
    leaves = st.one_of(scalars, st.sampled_from(BAD_LEAVES), st.builds(HLeaf, x=st.sampled_from(SMALL_SCALARS)))
    keys = st.one_of(st.sampled_from(DICT_KEYS), st.sampled_from(BAD_KEYS))

    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.lists(children, max_size=3),
            st.lists(children, max_size=3).map(tuple),
            st.dictionaries(keys, children, max_size=3),
            st.dictionaries(st.sampled_from(DICT_KEYS), children, max_size=3).map(frozendict),
        )

    return st.recursive(leaves, extend, max_leaves=8)


def bad_paths(value: Any, path: str) -> list[str]:
    """Every parameter path at which LABTECH_API.md section 4 says the value is not allowed."""
    if value is None or type(value) in (str, bool, int, float) or isinstance(value, enum.Enum):
        return []
    if labtech_nb.is_task(value):
        return []
    if type(value) in (list, tuple):
        return [bad for index, item in enumerate(value) for bad in bad_paths(item, f"{path}[{index}]")]
    if type(value) in (dict, frozendict):
        found = []
        for key, item in value.items():
            if type(key) is not str or key in ("_is_task", "_is_enum"):
                found.append(path)
            else:
                found.extend(bad_paths(item, f'{path}["{key}"]'))
        return found
    return [path]


@HYPOTHESIS_SETTINGS
@given(a=mixed_values(), b=mixed_values())
def test_construction_succeeds_or_raises_task_error_naming_the_path(a: Any, b: Any) -> None:
    expected_bad = bad_paths(a, "a") + bad_paths(b, "b")
    try:
        task = HPair(a=a, b=b)
    except TaskError as error:
        message = str(error)
        assert expected_bad, f"rejected a valid value: {message}"
        assert any(f"parameter value '{path}'" in message for path in expected_bad), (message, expected_bad)
    else:
        assert not expected_bad, f"accepted a value with unsupported parts at {expected_bad}"
        assert task == HPair(a=a, b=b)
        assert isinstance(task.cache_key, str)


@st.composite
def value_with_one_fault(draw: st.DrawFn) -> tuple[Any, str, str, object]:
    """A valid value with exactly one unsupported part, its path below the parameter, and that part."""
    steps = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("list"), st.integers(min_value=0, max_value=2)),
                st.tuples(st.just("dict"), st.sampled_from(DICT_KEYS)),
            ),
            max_size=3,
        )
    )
    fault = draw(st.sampled_from(["leaf", "key"]))
    if fault == "leaf":
        culprit: object = draw(st.sampled_from(BAD_LEAVES))
        value: Any = culprit
    else:
        culprit = draw(st.sampled_from(BAD_KEYS))
        siblings = draw(st.dictionaries(st.sampled_from(DICT_KEYS), small_values, max_size=2))
        items = [*siblings.items()]
        items.insert(draw(st.integers(min_value=0, max_value=len(items))), (culprit, draw(small_values)))
        value = dict(items)
    for kind, where in reversed(steps):
        if kind == "list":
            before = draw(st.lists(small_values, min_size=where, max_size=where))
            after = draw(st.lists(small_values, max_size=2))
            value = [*before, value, *after]
            value = draw(st.sampled_from([value, tuple(value)]))
        else:
            siblings = draw(
                st.dictionaries(st.sampled_from([key for key in DICT_KEYS if key != where]), small_values, max_size=2)
            )
            items = [*siblings.items()]
            items.insert(draw(st.integers(min_value=0, max_value=len(items))), (where, value))
            value = draw(st.sampled_from([dict(items), frozendict(items)]))
    path = "".join(f"[{where}]" if kind == "list" else f'["{where}"]' for kind, where in steps)
    return value, path, fault, culprit


@HYPOTHESIS_SETTINGS
@given(case=value_with_one_fault(), other=small_values)
def test_one_unsupported_part_is_named_by_its_path(case: tuple[Any, str, str, object], other: Any) -> None:
    value, path, fault, culprit = case
    with pytest.raises(TaskError) as info:
        HPair(a=other, b=value)
    message = str(info.value)
    if fault == "leaf":
        assert f"Unsupported type '{type(culprit).__qualname__}' in parameter value 'b{path}'" in message
    elif culprit in ("_is_task", "_is_enum"):
        assert f"'{culprit}'" in message
        assert f"parameter value 'b{path}'" in message
    else:
        assert message.startswith(f"Parameter dictionary keys must be strings, found: '{culprit}'")
        assert f"parameter value 'b{path}'" in message


def near_copy(serialized: Any, change: str) -> Any:
    """Alter a serialized task the way labtech 1.x equality would not notice (or not at all)."""
    if isinstance(serialized, dict):
        items = [
            (key, value if key.startswith("_") or key == "__class__" else near_copy(value, change))
            for key, value in serialized.items()
        ]
        if change == "reorder" and "_is_task" not in serialized and "_is_enum" not in serialized:
            items.reverse()
        return dict(items)
    if isinstance(serialized, list):
        return [near_copy(item, change) for item in serialized]
    if change == "numbers" and type(serialized) is int:
        return float(serialized)
    if change == "numbers" and type(serialized) is bool:
        return int(serialized)
    return serialized


@HYPOTHESIS_SETTINGS
@given(tasks=st.lists(small_tasks, min_size=2, max_size=4), extra=st.data())
def test_equal_exactly_when_cache_keys_are_equal(tasks: list[Any], extra: st.DataObject) -> None:
    # Add copies of one task: rebuilt unchanged (equal), with its dicts reordered, and with
    # ints as floats and bools as ints (equal only if it holds no such values).
    tasks = list(tasks)
    original = extra.draw(st.sampled_from(tasks))
    serialized = json.loads(json.dumps(Serializer().serialize_task(original)))
    for change in ("none", "reorder", "numbers"):
        tasks.append(Serializer().deserialize_task(near_copy(serialized, change)))
    for first in tasks:
        for second in tasks:
            assert (first == second) == (first.cache_key == second.cache_key), (first, second)
            assert (first != second) == (first.cache_key != second.cache_key), (first, second)
            if first == second:
                assert hash(first) == hash(second)
    assert tasks[-3] == original


@HYPOTHESIS_SETTINGS
@given(task=any_valid_tasks)
def test_serialization_round_trip_gives_an_equal_task(task: Any) -> None:
    serializer = Serializer()
    serialized = serializer.serialize_task(task)
    rebuilt = serializer.deserialize_task(serialized)
    assert rebuilt == task
    assert hash(rebuilt) == hash(task)
    assert rebuilt.code_version == task.code_version
    assert rebuilt.cache_key == task.cache_key
    assert serializer.serialize_task(rebuilt) == serialized
    # Through the JSON text stored in metadata.json, too.
    from_json = serializer.deserialize_task(json.loads(json.dumps(serialized)))
    assert from_json == task
    assert from_json.cache_key == task.cache_key


# --- stability across processes ---------------------------------------------------------------------


STABLE_SOURCE = (
    MYTASKS_SOURCE
    + """

    @labtech.task(code_version="2025-04-22")
    class Fit:
        data: object
        alpha: float = 1.0
        options: dict = None

        def run(self):
            return None


    def build_tasks():
        return [
            Base(seed=3),
            Base(seed=-(2**70)),
            Fit(data=Base(seed=1)),
            Fit(data=[Base(seed=1), Color.GREEN], alpha=float("inf"), options={"z": 1, "a": [True, None, 0.1]}),
            Fit(data={"b": "caf\\u00e9 \\u2615", "a": (1, 1.0, False)}, alpha=-0.0),
            Fit(data={"a": (1, 1.0, False), "b": "caf\\u00e9 \\u2615"}, alpha=float("nan")),
        ]
"""
)

KEYS_SCRIPT = "import json, mytasks; print(json.dumps([task.cache_key for task in mytasks.build_tasks()]))"


@pytest.mark.parametrize("hash_seed", ["0", "4242"])
def test_keys_are_stable_across_processes(make_module: Callable[[str, str], ModuleType], tmp_path: Path, hash_seed: str) -> None:
    mytasks = make_module("mytasks", STABLE_SOURCE)
    in_process = [task.cache_key for task in mytasks.build_tasks()]
    assert in_process[0] == "pickle__Base__55e06e8e3ff1ce047d6f9d6e34f43a9065658b9a"
    assert len(set(in_process)) == len(in_process)

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    env["PYTHONHASHSEED"] = hash_seed
    completed = subprocess.run(
        [sys.executable, "-c", KEYS_SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == in_process
