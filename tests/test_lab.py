"""`Lab`: construction, `run_tasks` inputs and outputs, validation, logging and scaling."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import labtech_nb as labtech
from labtech_nb.exceptions import LabError
from labtech_nb.runners import SerialRunnerBackend, ThreadRunnerBackend
from labtech_nb.runners.base import Runner, RunnerBackend
from labtech_nb.storage import LocalStorage, NullStorage

DEFAULT_STORAGE_WARNING = (
    'Caching labtech results in a local "labtech_storage" directory. '
    "Construct Lab() with a storage argument to suppress this warning."
)

#: Task executions, appended by the tasks below (tests here use in-process runners only).
EXECUTED: list[Any] = []


@pytest.fixture(autouse=True)
def clear_executed() -> Iterator[None]:
    EXECUTED.clear()
    yield
    EXECUTED.clear()


@labtech.task
class Number:
    value: int

    def run(self) -> int:
        EXECUTED.append(self)
        return self.value


@labtech.task
class Total:
    parts: Any

    def run(self) -> int:
        EXECUTED.append(self)
        return sum(part.result for part in self.parts)


@labtech.task(code_version="v1")
class Versioned:
    value: int

    def run(self) -> int:
        EXECUTED.append(self)
        return self.value


@labtech.task
class Node:
    child: Any

    def run(self) -> int:
        return 1


@labtech.task(cache=None)
class Trivial:
    i: int

    def run(self) -> int:
        return self.i


@labtech.task(cache=None)
class Chatty:
    def run(self) -> int:
        print("printed line")
        labtech.logger.info("logged line")
        return 1


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


@contextlib.contextmanager
def no_root_handlers() -> Iterator[None]:
    """Act as an application that configured no logging (pytest's own handlers removed for the block)."""
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        yield
    finally:
        root.handlers[:] = saved


# --- construction -----------------------------------------------------------------------------------


def test_default_storage_warns_and_caches_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)

    lab = labtech.Lab(runner_backend="serial")

    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert [record.getMessage() for record in warnings] == [DEFAULT_STORAGE_WARNING]
    assert lab.run_task(Number(1)) == 1
    entries = [path.name for path in (tmp_path / "labtech_storage").iterdir() if path.is_dir()]
    assert len(entries) == 1 and entries[0].startswith("pickle__Number__")


def test_explicit_storage_does_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    labtech.Lab(storage=tmp_path / "store", runner_backend="serial")
    labtech.Lab(storage=None, runner_backend="serial")

    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


@pytest.mark.parametrize("as_type", [str, Path])
def test_path_storage_creates_missing_parents(tmp_path: Path, as_type: type) -> None:
    storage_dir = tmp_path / "not" / "yet" / "there"

    lab = labtech.Lab(storage=as_type(storage_dir), runner_backend="serial")
    lab.run_tasks([Number(1)])

    assert isinstance(lab.storage, LocalStorage)
    assert storage_dir.is_dir()
    assert any(path.name.startswith("pickle__Number__") for path in storage_dir.iterdir())
    assert labtech.Lab(storage=as_type(storage_dir), runner_backend="serial").is_cached(Number(1))


def test_none_storage_caches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    lab = labtech.Lab(storage=None, runner_backend="serial")

    lab.run_tasks([Number(1)])
    lab.run_tasks([Number(1)])

    assert isinstance(lab.storage, NullStorage)
    assert EXECUTED == [Number(1), Number(1)]
    assert not lab.is_cached(Number(1))
    assert list(tmp_path.iterdir()) == []


def test_runner_backend_by_name() -> None:
    assert isinstance(labtech.Lab(storage=None, runner_backend="serial").runner_backend, SerialRunnerBackend)
    assert isinstance(labtech.Lab(storage=None, runner_backend="thread").runner_backend, ThreadRunnerBackend)
    assert isinstance(labtech.Lab(storage=None, max_workers=1).runner_backend, ThreadRunnerBackend)


def test_runner_backend_instance_is_used_for_runs(tmp_path: Path) -> None:
    class RecordingBackend(RunnerBackend):
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def build_runner(self, *, context: Any, storage: Any, max_workers: int | None) -> Runner:
            self.calls.append({"context": context, "storage": storage, "max_workers": max_workers})
            return SerialRunnerBackend().build_runner(context=context, storage=storage, max_workers=max_workers)

    backend = RecordingBackend()
    context = {"setting": 1}
    lab = labtech.Lab(storage=tmp_path, runner_backend=backend, max_workers=3, context=context)

    assert lab.runner_backend is backend
    assert lab.run_tasks([Number(5)]) == {Number(5): 5}
    assert len(backend.calls) == 1
    assert backend.calls[0]["context"] == context
    assert backend.calls[0]["max_workers"] == 3
    assert isinstance(backend.calls[0]["storage"], LocalStorage)


@pytest.mark.parametrize("value", ["forkk", "Serial"])
def test_unknown_runner_backend_name(value: str) -> None:
    with pytest.raises(LabError, match=r"^Unrecognised runner_backend") as raised:
        labtech.Lab(storage=None, runner_backend=value)
    assert value in str(raised.value)


# --- run_tasks inputs and outputs -----------------------------------------------------------------


@pytest.mark.parametrize("not_a_task", ["not a task", 5, None])
def test_non_task_inputs_are_rejected_before_anything_runs(tmp_path: Path, not_a_task: Any) -> None:
    lab = labtech.Lab(storage=tmp_path, runner_backend="serial")
    message = f"`{not_a_task!r}` is not a task, please provide a task object made from a class decorated with @labtech.task."

    with pytest.raises(LabError) as raised:
        lab.run_tasks([Number(1), not_a_task])
    assert str(raised.value) == message
    assert EXECUTED == []

    with pytest.raises(LabError) as raised:
        lab.run_task(not_a_task)
    assert str(raised.value) == message
    with pytest.raises(LabError) as raised:
        lab.is_cached(not_a_task)
    assert str(raised.value) == message
    with pytest.raises(LabError) as raised:
        lab.uncache_tasks([not_a_task])
    assert str(raised.value) == message


def test_task_type_instead_of_task_is_rejected(tmp_path: Path) -> None:
    lab = labtech.Lab(storage=tmp_path, runner_backend="serial")

    with pytest.raises(LabError) as raised:
        lab.run_tasks([Number])
    assert str(raised.value).startswith(
        f"`{Number!r}` is not a task, please provide a task object made from a class decorated with @labtech.task."
    )
    with pytest.raises(LabError) as raised:
        lab.cached_tasks([int])
    assert str(raised.value) == "`<class 'int'>` is not a task type, please provide a class decorated with @labtech.task."


def test_run_task_returns_the_result(tmp_path: Path) -> None:
    lab = labtech.Lab(storage=tmp_path, runner_backend="serial")

    assert lab.run_task(Total(parts=[Number(2), Number(3)])) == 5
    assert lab.run_task(Total(parts=[Number(2), Number(3)]), bust_cache=True) == 5
    assert EXECUTED.count(Number(2)) == 2


def test_no_tasks_gives_empty_results(tmp_path: Path) -> None:
    assert labtech.Lab(storage=tmp_path, runner_backend="serial").run_tasks([]) == {}


def test_results_follow_input_order_and_equal_inputs_collapse(tmp_path: Path) -> None:
    lab = labtech.Lab(storage=tmp_path, runner_backend="thread", max_workers=4)
    inputs = [Number(3), Total(parts=[Number(1), Number(2)]), Number(1), Number(2), Number(3), Number(1)]

    results = lab.run_tasks(inputs)

    assert list(results.items()) == [(Number(3), 3), (Total(parts=[Number(1), Number(2)]), 3), (Number(1), 1), (Number(2), 2)]
    assert sorted(EXECUTED, key=repr) == sorted([Number(1), Number(2), Number(3), Total(parts=[Number(1), Number(2)])], key=repr)


def test_task_with_stale_code_version_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = labtech.Lab(storage=tmp_path, runner_backend="serial")
    lab.run_tasks([Versioned(1)])
    # The code changed since: the task type is now at v2.
    monkeypatch.setattr(Versioned, "_lt_options", dataclasses.replace(Versioned._lt_options, code_version="v2"))
    (stale,) = lab.cached_tasks([Versioned])
    EXECUTED.clear()

    with pytest.raises(LabError) as raised:
        lab.run_tasks([Versioned(2), stale])

    assert str(raised.value) == (
        "`Versioned(value=1)` cannot be run, as it has code_version='v1' while the current implementation of "
        "Versioned has code_version='v2'. You should construct new Versioned tasks to run instead of running "
        "tasks loaded from cache."
    )
    assert EXECUTED == []


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"top_format": "$name $status since $start_time GPU: $gpu"}, "gpu"),
        ({"top_format": "${name} ${memory}"}, "memory"),
        ({"top_sort": "elapsed"}, "elapsed"),
        ({"top_sort": "-elapsed"}, "elapsed"),
    ],
)
def test_unknown_top_fields_are_rejected_before_any_task_runs(tmp_path: Path, options: dict[str, str], field: str) -> None:
    events: list[Any] = []
    lab = labtech.Lab(storage=tmp_path, runner_backend="serial", observers=[events.append])

    with pytest.raises(LabError) as raised:
        lab.run_tasks([Number(1)], **options)

    assert field in str(raised.value)
    assert "cpu" in str(raised.value) and "start_time" in str(raised.value)
    assert EXECUTED == []
    assert events == []
    assert not lab.is_cached(Number(1))


def test_cyclic_dependency_is_reported(tmp_path: Path) -> None:
    first = Node(child=None)
    second = Node(child=first)
    object.__setattr__(first, "child", second)

    with pytest.raises(LabError, match=r"^Cyclic dependency: Task '.*' depends on itself\.$"):
        labtech.Lab(storage=tmp_path, runner_backend="serial").run_tasks([second])


@pytest.mark.parametrize("caching", [False, True], ids=["storage=None", "local storage"])
def test_cycle_through_a_task_used_before_it_was_mutated_is_reported(tmp_path: Path, caching: bool) -> None:
    task = Node(child=None)
    hash(task)  # e.g. the task was put in a dict or set before being mutated
    object.__setattr__(task, "child", task)
    lab = labtech.Lab(storage=tmp_path if caching else None, runner_backend="serial")

    with pytest.raises(LabError, match=r"^Cyclic dependency: Task 'Node\(child=\.\.\.\)' depends on itself\.$"):
        lab.run_tasks([task])


# --- logging ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["serial", "thread"])
def test_each_log_line_appears_once_when_the_application_configured_logging(tmp_path: Path, backend: str) -> None:
    completed = run_python(
        f"""
        import logging
        import labtech_nb as labtech

        logging.basicConfig(level=logging.INFO, format="APP %(levelname)s %(name)s: %(message)s")

        @labtech.task(cache=None)
        class Chatty:
            def run(self):
                print("printed line")
                labtech.logger.info("logged line")
                return 1

        lab = labtech.Lab(runner_backend={backend!r})
        assert lab.run_tasks([Chatty()]) == {{Chatty(): 1}}
        labtech.logger.warning("warning after the run")
        """,
        cwd=tmp_path,
    )

    assert completed.returncode == 0, completed.stderr
    err = completed.stderr
    for text in ["Caching labtech results", "printed line", "logged line", "warning after the run"]:
        assert err.count(text) == 1, (text, err)
    assert "APP WARNING labtech_nb: " + DEFAULT_STORAGE_WARNING in err
    assert "APP INFO labtech_nb: Captured STDOUT:\nprinted line" in err
    assert "printed line" not in completed.stdout


def test_fallback_handler_format_when_logging_is_not_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    stamp = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"

    with no_root_handlers():
        lab = labtech.Lab(runner_backend="serial")
        lab.run_tasks([Chatty()])
        labtech.logger.info("after the run")

    err = capsys.readouterr().err
    assert re.search(f"^{stamp}/MainProcess/WARNING: {re.escape(DEFAULT_STORAGE_WARNING)}$", err, re.MULTILINE), err
    assert re.search(f"^{stamp}/Chatty\\[1\\]/INFO: Captured STDOUT:\nprinted line$", err, re.MULTILINE), err
    assert re.search(f"^{stamp}/Chatty\\[1\\]/INFO: logged line$", err, re.MULTILINE), err
    assert re.search(f"^{stamp}/MainProcess/INFO: after the run$", err, re.MULTILINE), err
    assert err.count("logged line") == 1


@pytest.mark.parametrize("backend", ["serial", "thread"])
def test_runs_do_not_alter_logging_handlers(tmp_path: Path, backend: str) -> None:
    package_logger = logging.getLogger("labtech_nb")
    before = (package_logger.handlers[:], logging.getLogger().handlers[:], package_logger.level)

    labtech.Lab(storage=None, runner_backend=backend).run_tasks([Chatty()])

    assert (package_logger.handlers, logging.getLogger().handlers, package_logger.level) == before


def test_importing_the_engine_does_not_import_view_libraries(tmp_path: Path) -> None:
    completed = run_python(
        """
        import sys
        import labtech_nb, labtech_nb.cache, labtech_nb.storage, labtech_nb.types
        import labtech_nb.runners, labtech_nb.exceptions, labtech_nb.tasks

        heavy = ["IPython", "ipywidgets", "matplotlib", "graphviz", "mlflow"]
        print(sorted(name for name in sys.modules if name.split(".")[0] in heavy))
        """,
        cwd=tmp_path,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


# --- scaling --------------------------------------------------------------------------------------


def count_equality_checks(monkeypatch: pytest.MonkeyPatch, task_count: int) -> int:
    calls = 0
    original_eq = Trivial.__eq__

    def counting_eq(self: Any, other: Any) -> Any:
        nonlocal calls
        calls += 1
        return original_eq(self, other)

    with monkeypatch.context() as patch:
        patch.setattr(Trivial, "__eq__", counting_eq)
        # Every task is given twice, as two equal objects, so the Lab must match them up.
        inputs = [Trivial(i) for i in range(task_count)] + [Trivial(i) for i in range(task_count)]
        results = labtech.Lab(storage=None, runner_backend="serial").run_tasks(inputs)
    assert len(results) == task_count
    return calls


def test_scheduling_work_per_task_does_not_grow_with_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    per_task_small = count_equality_checks(monkeypatch, 2_000) / 2_000
    per_task_large = count_equality_checks(monkeypatch, 8_000) / 8_000

    # A scan of pending tasks per completion would make the large run cost ~4x more per task.
    assert per_task_large <= per_task_small * 1.1 + 0.5, (per_task_small, per_task_large)


class CountingStorage(LocalStorage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exists_calls: list[str] = []

    def exists(self, key: str) -> bool:
        self.exists_calls.append(key)
        return super().exists(key)


def test_one_existence_check_per_distinct_task(tmp_path: Path) -> None:
    storage = CountingStorage(tmp_path)
    lab = labtech.Lab(storage=storage, runner_backend="serial")
    shared = Number(1)
    top = Total(parts=[Total(parts=[shared, Number(2)]), Total(parts=[Number(1), Number(3)]), Number(2)])
    distinct = {top, shared, Number(2), Number(3), Total(parts=[shared, Number(2)]), Total(parts=[Number(1), Number(3)])}

    lab.run_tasks([top, Number(3)])
    assert sorted(storage.exists_calls) == sorted(task.cache_key for task in distinct)

    storage.exists_calls.clear()
    assert lab.run_tasks([top]) == {top: 9}
    # A cached task is loaded without visiting its dependencies.
    assert storage.exists_calls == [top.cache_key]
