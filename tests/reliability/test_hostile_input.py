"""Hostile input: fuzzed parameter values and task definitions, escaping keys and filenames, and markup
in names, parameters and output shown by the dashboard, the cache browser and the diagrams.

Complements tests/test_keys.py (which fuzzes well-formed values and the key algorithm): here the
values are weird strings, huge numbers, nan/inf, deep nesting, subclasses of Enum, dict, str, int,
float and list, and the definitions are fuzzed too. A value nested too deeply, or containing itself, must be
rejected with a TaskError naming its path.
"""

from __future__ import annotations

import collections
import enum
import json
import os
import pickle
import re
import subprocess
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import fsspec
import ipywidgets as widgets
import pytest
from frozendict import frozendict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import labtech_nb as labtech
from labtech_nb.cache import NullCache, PickleCache
from labtech_nb.diagram import MermaidDiagram, build_graphviz_instance_diagram, build_graphviz_type_diagram, build_task_diagram
from labtech_nb.exceptions import LabError, StorageError, TaskError
from labtech_nb.notebook.browser import CacheBrowser
from labtech_nb.notebook.dashboard import DashboardView
from labtech_nb.serialization import Serializer
from labtech_nb.storage import FsspecStorage, LocalStorage
from labtech_nb.types import ResultMeta, TaskResult
from tests.reliability.helpers import FIGURES
from tests.reliability.hostile_tasks import (
    EVIL_MARKDOWN,
    EVIL_NAME,
    EVIL_TEXT,
    Anything,
    EvilType,
    Level,
    Mood,
    MyDict,
    MyFloat,
    MyInt,
    MyList,
    MyStr,
    Perm,
    Plain,
    Point,
    Tone,
    Wrapper,
)

#: Derandomized, so every run tries the same inputs; set LABTECH_NB_FUZZ_EXAMPLES (and LABTECH_NB_FUZZ_RANDOM=1)
#: to explore further.
FUZZ = settings(
    max_examples=int(os.environ.get("LABTECH_NB_FUZZ_EXAMPLES", "150")),
    derandomize=os.environ.get("LABTECH_NB_FUZZ_RANDOM") != "1",
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
RESERVED_KEYS = ("_is_task", "_is_enum")

# --- parameter values ---------------------------------------------------------------------------------

WEIRD_STRINGS = [
    "",
    "\x00",
    "\ud800",
    "\udfff",
    "\u202e\u2066",
    "\ufeff",
    "é\u0301",
    "😀",
    "\n\r\t",
    "\\",
    '"',
    "'",
    "../../etc/passwd",
    "C:\\Windows",
    "%s %(x)s {0}",
    "<script>alert(1)</script>",
    "a" * 10000,
]
texts = st.one_of(st.text(max_size=12), st.sampled_from(WEIRD_STRINGS))
huge_ints = st.one_of(
    st.integers(),
    st.integers(min_value=0, max_value=4000).map(lambda exponent: 10**exponent),
    st.integers(min_value=0, max_value=4000).map(lambda exponent: -(10**exponent) - 1),
)
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([-0.0, 5e-324, 1.7976931348623157e308]))
enums = st.sampled_from([Mood.HAPPY, Mood.SAD, Mood.GLUM, Level.LOW, Level.HIGH, Tone.LOUD, Perm.READ, Perm.WRITE])
unsupported = st.sampled_from([MyStr("x"), MyInt(1), MyFloat(1.5), b"bytes", {1}, frozenset(), 1j, object(), range(2), Anything])
valid_scalars = st.one_of(st.none(), st.booleans(), texts, huge_ints, floats, enums)
leaves = st.one_of(valid_scalars, unsupported, st.builds(Wrapper, inner=valid_scalars))
dict_keys = st.one_of(texts, st.sampled_from([1, None, 2.5, MyStr("k"), Tone.LOUD, b"k", *RESERVED_KEYS]))


def _nest(value: Any, depth: int, as_dict: bool) -> Any:
    for _ in range(depth):
        value = {"k": value} if as_dict else [value]
    return value


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    mappings = st.dictionaries(dict_keys, children, max_size=3)
    return st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.lists(children, max_size=3).map(MyList),
        st.tuples(children, children).map(lambda pair: Point(*pair)),
        mappings,
        mappings.map(collections.OrderedDict),
        mappings.map(lambda items: collections.defaultdict(int, items)),
        mappings.map(collections.Counter),
        mappings.map(MyDict),
        st.dictionaries(texts, children, max_size=3).map(frozendict),
        st.tuples(children, st.integers(1, 120), st.booleans()).map(lambda args: _nest(*args)),
    )


values = st.recursive(leaves, _containers, max_leaves=12)


def bad_paths(value: Any, path: str) -> list[str]:
    """Every parameter path at which LABTECH_API.md section 4 says the value is not allowed."""
    if value is None or type(value) in (str, bool, int, float) or isinstance(value, enum.Enum) or labtech.is_task(value):
        return []
    if isinstance(value, (list, tuple)):
        return [bad for index, item in enumerate(value) for bad in bad_paths(item, f"{path}[{index}]")]
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            if type(key) is not str or key in RESERVED_KEYS:
                found.append(path)
            else:
                found.extend(bad_paths(item, f'{path}["{key}"]'))
        return found
    return [path]


def plain(value: Any) -> Any:
    """The value as a task stores it: sequences as tuples, mappings as frozendicts."""
    if isinstance(value, (list, tuple)):
        return tuple(plain(item) for item in value)
    if isinstance(value, dict):
        return frozendict({key: plain(item) for key, item in value.items()})
    return value


def same(left: Any, right: Any) -> bool:
    """Equality that also holds for nan and tells 1, 1.0, True and -0.0, 0.0 apart, as keys do."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        return repr(left) == repr(right)
    if isinstance(left, tuple):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, frozendict):
        return list(left) == list(right) and all(same(left[key], right[key]) for key in left)
    return bool(left == right)


def check_usable(task: Any, storage: LocalStorage) -> None:
    """Everything a run does with a task works: repr, hash, key, pickling, JSON round trip, caching."""
    text = repr(task)
    assert isinstance(text, str)
    assert hash(task) == hash(Serializer().deserialize_task(Serializer().serialize_task(task)))
    key = task.cache_key
    assert re.fullmatch(rf"pickle__{type(task).__qualname__}__[0-9a-f]{{40}}", key), key
    assert pickle.loads(pickle.dumps(task)) == task
    serialized = json.loads(json.dumps(Serializer().serialize_task(task)))
    rebuilt = Serializer().deserialize_task(serialized)
    assert rebuilt == task and rebuilt.cache_key == key
    cache = type(task)._lt_options.cache
    cache.save(storage, task, TaskResult(value=[task.a, task.b], meta=ResultMeta(None, None)))
    assert cache.load_task(storage, type(task), key) == task
    loaded = cache.load_result_with_meta(storage, task).value
    assert same(plain(loaded), plain([task.a, task.b]))


@pytest.fixture(scope="module")
def fuzz_storage(tmp_path_factory: pytest.TempPathFactory) -> LocalStorage:
    return LocalStorage(tmp_path_factory.mktemp("fuzz-storage"))


@FUZZ
@given(a=values, b=values)
def test_fuzzed_parameter_values_give_a_usable_task_or_a_task_error_naming_the_path(
    fuzz_storage: LocalStorage, a: Any, b: Any
) -> None:
    FIGURES["fuzzed parameter values"] += 2
    expected_bad = bad_paths(a, "a") + bad_paths(b, "b")
    try:
        task = Anything(a=a, b=b)
    except TaskError as error:
        assert expected_bad, f"rejected a valid value: {error}"
        assert any(f"parameter value '{path}'" in str(error) for path in expected_bad), (str(error), expected_bad)
        return
    assert not expected_bad, f"accepted unsupported parts at {expected_bad}"
    assert same(task.a, plain(a)) and same(task.b, plain(b))
    check_usable(task, fuzz_storage)


def outcome_of(build: Callable[[], Any], storage: LocalStorage) -> str:
    """'task' for a usable task, 'TaskError: ...' for a clean rejection, else what went wrong."""
    try:
        task = build()
    except TaskError as error:
        return f"TaskError: {error}"
    except BaseException as error:  # the thing under test: nothing but TaskError may escape
        return f"construction raised {type(error).__name__}: {str(error)[:200]}"
    try:
        check_usable(task, storage)
    except BaseException as error:
        return f"task unusable: {type(error).__name__}: {str(error)[:200]}"
    return "task"


def _self_referential_list() -> list[Any]:
    value: list[Any] = ["x"]
    value.append(value)
    return value


KNOWN_BAD_VALUES = {
    "int beyond the 4300-digit str limit": (lambda: [1, 10**5000], "a[1]"),
    "Flag combination (no member of that name)": (lambda: {"p": Perm.READ | Perm.WRITE}, 'a["p"]'),
    "empty Flag value (name None)": (lambda: {"p": Perm(0)}, 'a["p"]'),
    "list nested 2000 deep": (lambda: _nest(1, 2000, False), "a"),
    "dict nested 400 deep": (lambda: _nest(1, 400, True), "a"),
    "self-referential list": (_self_referential_list, "a[1]"),
}


@pytest.mark.parametrize("case", KNOWN_BAD_VALUES)
def test_extreme_values_give_a_usable_task_or_a_task_error_naming_the_path(fuzz_storage: LocalStorage, case: str) -> None:
    build_value, path = KNOWN_BAD_VALUES[case]
    outcome = outcome_of(lambda: Anything(a=build_value()), fuzz_storage)
    assert outcome == "task" or (outcome.startswith("TaskError") and f"'{path}" in outcome), outcome


# --- task definitions -----------------------------------------------------------------------------------

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
    "_set_code_version",
    "code_version",
    "current_code_version",
)
FIELD_NAMES = ["alpha", "beta", "seed", "data", "_private", "run_id", "filter_context", "runner_options", *RESERVED_ATTRIBUTES]
OPTION_VALUES: dict[str, list[Any]] = {
    "code_version": [None, "v1", "", "<b>v2</b>", 1, b"v"],
    "max_parallel": [None, 1, 4, 0, -1, True, 1.5, "2"],
    "cache": ["default", None, PickleCache(), NullCache(), PickleCache, "pickle"],
    "mlflow_run": [False, 1, "yes", None],
}
DEFINITION_ERRORS = {
    AttributeError: "Task type already defines reserved attribute '",
    NotImplementedError: "must define a 'run' method",
    TaskError: "",
    ValueError: "mutable default",  # dataclasses' own rule, as in labtech
    TypeError: "non-default argument",  # dataclasses' own rule, as in labtech
}


@st.composite
def definitions(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], str]:
    names = draw(st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=4, unique=True))
    annotations, defaults, arguments = {}, {}, {}
    for name in names:
        annotations[name] = draw(st.sampled_from([int, str, Any, "list[Wrapper]", f"<i>{name}</i>"]))
        kind = draw(st.sampled_from(["none", "valid", "invalid", "mutable"]))
        if kind == "valid":
            defaults[name] = draw(valid_scalars)
        elif kind == "invalid":
            defaults[name] = draw(unsupported)
        elif kind == "mutable":
            defaults[name] = draw(st.sampled_from([[1], {"a": 1}, set()]))
        if draw(st.booleans()) or kind == "none":
            arguments[name] = draw(st.one_of(values, valid_scalars))
    options = {name: draw(st.sampled_from(choices)) for name, choices in OPTION_VALUES.items()}
    if options["cache"] == "default":
        del options["cache"]
    run = draw(st.sampled_from(["method", "missing", "not callable"]))
    return annotations, defaults, options, run, arguments  # type: ignore[return-value]


def define(index: int, annotations: dict[str, Any], defaults: dict[str, Any], options: dict[str, Any], run: str) -> Any:
    namespace: dict[str, Any] = {"__annotations__": dict(annotations), "__module__": __name__, **defaults}
    namespace["__qualname__"] = f"Fuzzed{index}"
    if run == "method":
        namespace["run"] = lambda self: None
    elif run == "not callable":
        namespace["run"] = 42
    return labtech.task(**options)(type(f"Fuzzed{index}", (), namespace))


@FUZZ
@given(definition=definitions())
def test_fuzzed_task_definitions_give_a_task_type_or_a_documented_error(definition: Any, fuzz_storage: LocalStorage) -> None:
    FIGURES["fuzzed task definitions"] += 1
    annotations, defaults, options, run, arguments = definition
    index = FIGURES["fuzzed task definitions"]
    try:
        task_type = define(index, annotations, defaults, options, run)
    except tuple(DEFINITION_ERRORS) as error:
        assert DEFINITION_ERRORS[type(error)] in str(error), f"{type(error).__name__}: {error}"
        return
    assert labtech.is_task_type(task_type)
    try:
        task = task_type(**arguments)
    except TaskError as error:
        field_names = [name for name in annotations if name in arguments or name in defaults]
        assert any(f"parameter value '{name}" in str(error) for name in field_names), str(error)
        return
    assert isinstance(repr(task), str) and isinstance(hash(task), int)
    if not isinstance(task_type._lt_options.cache, NullCache):
        assert task.cache_key.startswith(f"pickle__Fuzzed{index}__")
    assert task == task_type(**arguments)


@pytest.mark.parametrize("name", ["result", "context", "cache_key", "code_version", "_lt", "set_context"])
def test_reserved_names_declared_as_fields_are_rejected_at_decoration(name: str) -> None:
    with pytest.raises(AttributeError) as raised:
        define(0, {name: int}, {}, {}, "method")
    assert str(raised.value) == f"Task type already defines reserved attribute '{name}'."


def test_a_field_named_post_init_is_rejected_at_decoration_or_works() -> None:
    try:
        task_type = define(0, {"post_init": int}, {}, {}, "method")
    except (AttributeError, TaskError):
        return
    try:
        task = task_type(post_init=5)
        assert labtech.Lab(storage=None, runner_backend="serial").run_tasks([task], disable_progress=True) == {task: None}
    except Exception as error:
        raise AssertionError(f"using the task raised {type(error).__name__}: {error}") from error


# --- keys and filenames -----------------------------------------------------------------------------------


class MemoryStorage(FsspecStorage):
    def fs_constructor(self) -> Any:
        return fsspec.filesystem("memory")


HOSTILE_PARTS = ["..", ".", "/", "\\", "/etc/passwd", "C:\\", "~", "\u2215", "a", "é", " ", "-", "$HOME", "%2e%2e", "\x7f"]
path_texts = st.lists(
    st.one_of(
        st.sampled_from(HOSTILE_PARTS),
        st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=4),
    ),
    max_size=4,
).map("".join)


def must_reject_key(key: str) -> bool:
    return key == "" or any(char in key for char in "./\\")


def must_reject_filename(filename: str) -> bool:
    return filename in ("", ".", "..") or any(char in filename for char in "/\\")


def _operations(storage: Any, key: str, filename: str) -> Iterator[tuple[str, Callable[[], Any]]]:
    def write() -> None:
        with storage.file_handle(key, filename, mode="wb") as handle:
            handle.write(b"x")

    def read() -> None:
        with storage.file_handle(key, filename, mode="rb") as handle:
            handle.read()

    def staged() -> None:
        writer = storage.begin_write(key)
        try:
            with writer.file_handle(filename, mode="wb") as handle:
                handle.write(b"y")
        except BaseException:
            writer.abort()
            raise
        writer.commit()

    yield "exists", lambda: storage.exists(key)
    yield "write", write
    yield "read", read
    yield "staged write", staged
    yield "delete", lambda: storage.delete(key)


@pytest.fixture(scope="module")
def local_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("escape-root")


@pytest.fixture(scope="module")
def memory_root() -> Iterator[str]:
    root = f"/labtech-nb-reliability-{uuid.uuid4().hex}"
    yield root
    fsspec.filesystem("memory").rm(root, recursive=True)


def check_contained(storage: Any, key: str, filename: str) -> None:
    for name, operation in _operations(storage, key, filename):
        rejected = must_reject_key(key) or (name in ("write", "read", "staged write") and must_reject_filename(filename))
        try:
            operation()
        except StorageError:
            assert rejected or name != "exists", f"{name}({key!r}, {filename!r}) rejected a harmless name"
            continue
        except OSError:
            # A harmless name can still fail (a missing file to read, a name too long for the file system).
            assert not rejected, f"{name}({key!r}, {filename!r}) reached the file system"
            continue
        assert not rejected, f"{name}({key!r}, {filename!r}) was not refused"


@FUZZ
@given(key=path_texts, filename=path_texts)
def test_no_key_or_filename_reaches_outside_a_local_storage(local_root: Path, key: str, filename: str) -> None:
    FIGURES["fuzzed key/filename pairs"] += 1
    storage_dir = local_root / "inside" / "storage"
    storage = LocalStorage(storage_dir)
    check_contained(storage, key, filename)
    for path in local_root.rglob("*"):
        relative = path.relative_to(storage_dir) if path.is_relative_to(storage_dir) else None
        assert path in (local_root / "inside", storage_dir) or relative is not None, f"{path} is outside the storage"
        if relative is not None:
            assert len(relative.parts) <= 2, f"{path} is nested deeper than <key>/<file>"


@FUZZ
@given(key=path_texts, filename=path_texts)
def test_no_key_or_filename_reaches_outside_an_fsspec_storage(memory_root: str, key: str, filename: str) -> None:
    FIGURES["fuzzed key/filename pairs"] += 1
    storage = MemoryStorage(f"{memory_root}/storage")
    inside = f"{memory_root}/storage/".lstrip("/")

    def outside() -> set[str]:
        return {path for path in storage.fs.find("/", withdirs=True) if not path.lstrip("/").startswith(inside)}

    before = outside()
    check_contained(storage, key, filename)
    assert outside() == before
    for path in storage.fs.find(f"{memory_root}/storage", withdirs=True):
        relative = path.lstrip("/")[len(inside) :].strip("/")
        assert len(relative.split("/")) <= 2, f"{path} is nested deeper than <key>/<file>"


UNREPRESENTABLE = {"NUL in a key": ("entry\x00x", "data.pickle"), "lone surrogate in a key": ("entry\ud800", "data.pickle")}
UNREPRESENTABLE["lone surrogate in a filename"] = ("entry", "data\ud800.pickle")


@pytest.mark.parametrize("case", UNREPRESENTABLE)
@pytest.mark.parametrize("storage_kind", ["local", "fsspec"])
def test_a_nul_or_a_lone_surrogate_in_a_name_is_refused_with_a_storage_error(
    storage_kind: str, case: str, tmp_path: Path, memory_root: str
) -> None:
    key, filename = UNREPRESENTABLE[case]
    storage: Any = LocalStorage(tmp_path / "storage") if storage_kind == "local" else MemoryStorage(f"{memory_root}/odd")
    for name, operation in _operations(storage, key, filename):
        if name in ("exists", "delete") and key == "entry":
            continue
        try:
            operation()
        except StorageError:
            continue
        except Exception as error:
            raise AssertionError(f"{name} raised {type(error).__name__}: {error}") from error
        raise AssertionError(f"{name} accepted {case}")


def test_a_task_type_whose_name_or_key_prefix_would_escape_is_refused(tmp_path: Path) -> None:
    class EscapingCache(PickleCache):
        KEY_PREFIX = "../../"

    @labtech.task(cache=EscapingCache())
    class Escaping:
        x: int

        def run(self) -> int:
            return self.x

    Escaping.__qualname__ = "Escaping"
    slashed = labtech.task(type("Slashed", (), {"__annotations__": {"x": int}, "run": lambda self: 1, "__module__": __name__}))
    slashed.__qualname__ = "a/b\\c"
    storage_dir = tmp_path / "deep" / "storage"
    lab = labtech.Lab(storage=storage_dir, runner_backend="serial")
    for task in (Escaping(1), slashed(x=1)):
        with pytest.raises(StorageError) as raised:
            lab.run_tasks([task])
        assert "must not contain the forbidden character" in str(raised.value)
    assert sorted(path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*")) == [
        "deep",
        "deep/storage",
        "deep/storage/.gitignore",
    ]


# --- escaping in what users see ------------------------------------------------------------------------------

SAFE_TAGS = {
    "b",
    "i",
    "pre",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "span",
    "div",
    "code",
    "ul",
    "li",
    "br",
    "p",
    "img",
}  # img: the Graph tab, an SVG data URL


class _TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_safe_html(markup: str, where: str) -> str:
    """Only harmless tags without event attributes; returns the text a browser would show."""
    parser = _TagCollector()
    parser.feed(markup)
    parser.close()
    for tag, attrs in parser.tags:
        assert tag in SAFE_TAGS, f"{where}: markup from data became a <{tag}> element: {markup[:300]!r}"
        assert not any(name.startswith("on") for name, _ in attrs), f"{where}: event attribute in {markup[:300]!r}"
    return "".join(parser.text)


def widget_tree(widget: Any) -> Iterator[Any]:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from widget_tree(child)


def check_widgets(root: Any, where: str) -> str:
    """Check every HTML-rendering value under ``root``; return all the text they show."""
    shown = []
    for widget in widget_tree(root):
        if isinstance(widget, (widgets.HTML, widgets.HTMLMath)):
            shown.append(assert_safe_html(widget.value, f"{where}: {type(widget).__name__}"))
        if hasattr(widget, "description_allow_html"):
            assert widget.description_allow_html is False, f"{where}: {type(widget).__name__} renders its description as HTML"
    return "\n".join(shown)


def test_dashboard_shows_markup_from_names_parameters_output_and_errors_as_text() -> None:
    view = DashboardView(display=False, min_interval=0)
    tasks = [EvilType(label=EVIL_TEXT), EvilType(label="x", fail=True), Plain(text=EVIL_MARKDOWN)]
    lab = labtech.Lab(storage=None, runner_backend="serial", notebook=False)
    with pytest.raises(LabError):
        lab.run_tasks(tasks, observers=[view], disable_progress=True, disable_top=True)
    dashboard = view.dashboard
    shown = check_widgets(dashboard.root, "dashboard")
    for name in dashboard.log_task.options:
        dashboard.log_task.value = name
        shown += check_widgets(dashboard.root, f"dashboard log of {name}")
    bundle = view._repr_mimebundle_()
    shown += assert_safe_html(bundle["text/html"], "dashboard text/html")
    # The markup is there, as text: the failure, the output lines and the type name.
    assert f"failed with {EVIL_TEXT} {EVIL_NAME}" in shown
    assert EVIL_TEXT in shown and EVIL_MARKDOWN in shown
    assert EVIL_NAME in shown
    assert any(EVIL_NAME in str(title) for title in dashboard.failures.titles)


def test_cache_browser_shows_markup_from_names_parameters_and_errors_as_text(tmp_path: Path) -> None:
    storage_dir = tmp_path / "storage"
    lab = labtech.Lab(storage=storage_dir, runner_backend="serial")
    tasks = [
        EvilType(label=EVIL_TEXT),
        Plain(text=EVIL_TEXT, child={EVIL_NAME: [EVIL_MARKDOWN]}),
        Anything(a=EVIL_MARKDOWN, b=Mood.HAPPY),
    ]
    lab.run_tasks(tasks)
    broken = Anything(a=EVIL_NAME)
    lab.run_tasks([broken])
    (storage_dir / broken.cache_key / "data.pickle").write_bytes(b"not a pickle")

    browser = CacheBrowser(lab)
    shown = check_widgets(browser.root, "browser")
    for key in browser.entries.keys:
        browser.show_details(key)
        shown += check_widgets(browser.root, f"browser details of {key}")
        browser.load_result(key)
        shown += check_widgets(browser.root, f"browser after loading {key}")
        browser.select(key)
    browser.set_filter(text="<script>")
    shown += check_widgets(browser.root, "browser filtered")
    browser.set_filter(text="")
    browser.request_uncache("selected")
    shown += check_widgets(browser.root, "browser confirming")
    shown += assert_safe_html(browser._repr_mimebundle_()["text/html"], "browser text/html")
    assert EVIL_TEXT in shown and EVIL_NAME in shown and EVIL_MARKDOWN in shown
    assert f"Could not load the result of {broken.cache_key}" in shown
    # The entry of the type named with '>' cannot be rebuilt (the stored class path uses '>' for nesting),
    # and the corrupted one is incomplete: both are left out of the listing, which lists the other two.
    assert {type(task) for task in lab.cached_tasks([EvilType, Plain, Anything])} == {Plain, Anything}


def _svg_problems(source: str) -> tuple[list[str], str]:
    rendered = subprocess.run(["dot", "-Tsvg"], input=source, capture_output=True, text=True, check=False)
    assert rendered.returncode == 0, rendered.stderr
    root = ElementTree.fromstring(rendered.stdout)
    problems, text = [], []
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag in ("script", "foreignObject", "img", "iframe"):
            problems.append(f"<{tag}> element")
        problems.extend(f"attribute {name} on <{tag}>" for name in element.attrib if name.lower().startswith("on"))
        text.append(element.text or "")
    return problems, "\n".join(text)


def test_graphviz_diagrams_render_markup_as_text() -> None:
    top = Plain(text=EVIL_TEXT, child=[EvilType(label=EVIL_MARKDOWN), EvilType(label='"\\N\\G', fail=True)])
    statuses = {top: f"<i>{EVIL_TEXT}</i>"}
    for graph in (build_graphviz_type_diagram([top]), build_graphviz_instance_diagram([top], statuses=statuses)):
        problems, text = _svg_problems(graph.source)
        assert problems == [], problems
        assert EVIL_NAME in text, text
    _problems, text = _svg_problems(build_graphviz_instance_diagram([top], statuses=statuses).source)
    assert "'\"\\\\N\\\\G'" in text or "'\"\\N\\G'" in text, text


def test_mermaid_diagram_escapes_markup_in_parameter_types() -> None:
    source = build_task_diagram([Plain(text="x")])
    assert "<script>" not in source and "#lt;script#gt;" in source
    assert source.count("\n    Plain : ") == 3


def test_mermaid_diagram_escapes_markup_in_task_type_names() -> None:
    source = build_task_diagram([Plain(text="x", child=EvilType(label="y"))])
    markdown = MermaidDiagram(source)._repr_mimebundle_()["text/markdown"]
    assert markdown.count("```") == 2
    assert EVIL_NAME not in source, source
    assert not re.search(r"<(img|script)", source), source
