"""The contract every runner backend keeps, run against each backend by name.

A new backend is tested by adding its name to the ``backend`` fixture. Task types live in
`contract_tasks` (module level, picklable); tasks report executions through marker files in the
directory the Lab context names, never through shared memory.
"""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import labtech_nb as labtech
from labtech_nb.engine.events import TaskFailed
from labtech_nb.exceptions import DependencyFailedError, LabError, TaskError
from labtech_nb.runners import Runner, RunnerBackend, resolve_backend

from .contract_tasks import (
    Add,
    ContextReader,
    Fails,
    GatedLeaf,
    Gather,
    Leaf,
    Limited,
    MakePayload,
    OutlivesFailure,
    Payload,
    Scale,
    Talker,
    execution_count,
    marker_label,
    max_overlap,
    read_intervals,
)


@pytest.fixture(params=["serial", "thread", "fork", "spawn", "fork-per-task", "ray"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    return request.param


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


def workers(backend: str, count: int) -> int | None:
    """Ray manages its own concurrency and refuses max_workers."""
    return None if backend == "ray" else count


@pytest.fixture
def make_lab(backend: str, tmp_path: Path, marker_dir: Path) -> Any:
    def make(*, runner_backend: str | RunnerBackend | None = None, max_workers: int = 4, **kwargs: Any) -> labtech.Lab:
        kwargs.setdefault("storage", tmp_path / "storage")
        context = {"marker_dir": str(marker_dir), **kwargs.pop("context", {})}
        return labtech.Lab(
            runner_backend=runner_backend or backend,
            max_workers=workers(backend, max_workers),
            context=context,
            **kwargs,
        )

    return make


# --- results of task graphs -------------------------------------------------------------------------


def test_diamond_and_chain_results(make_lab: Any, marker_dir: Path) -> None:
    diamond = Add(left=Scale(source=Leaf(1), factor=2), right=Scale(source=Leaf(1), factor=3))
    chain: Any = Leaf(1)
    for _ in range(20):
        chain = Scale(source=chain, factor=2)

    results = make_lab().run_tasks([diamond, chain])

    assert results == {diamond: 5, chain: 2**20}
    assert execution_count(marker_dir, Leaf(1)) == 1
    assert execution_count(marker_dir, Scale(source=Leaf(1), factor=2)) == 1


def test_dependencies_inside_list_tuple_and_dict_parameters(make_lab: Any, marker_dir: Path) -> None:
    gather = Gather(
        items=[Leaf(1), Scale(source=Leaf(2), factor=10)],
        named={"a": Leaf(3), "b": Leaf(5)},
        nested={"deep": [Leaf(4), Leaf(1)], "pair": (Leaf(6), Leaf(7))},
    )

    results = make_lab().run_tasks([gather])

    assert results[gather] == {
        "items": [1, 20],
        "named": {"a": 3, "b": 5},
        "nested": {"deep": [4, 1], "pair": [6, 7]},
    }
    assert execution_count(marker_dir, Leaf(1)) == 1


def test_equal_tasks_run_once_per_run(make_lab: Any, marker_dir: Path) -> None:
    # Separately constructed but equal Leaf(1) objects, as inputs and as dependencies of several tasks.
    inputs = [
        Add(left=Leaf(1), right=Leaf(2)),
        Add(left=Leaf(1), right=Leaf(3)),
        Scale(source=Leaf(1), factor=5),
        Add(left=Leaf(7), right=Leaf(7)),
        Leaf(1),
        Add(left=Leaf(1), right=Leaf(2)),
    ]

    results = make_lab().run_tasks(inputs)

    assert list(results.values()) == [3, 4, 5, 14, 1]
    for task in [Leaf(1), Leaf(2), Leaf(7), Add(left=Leaf(1), right=Leaf(2))]:
        assert execution_count(marker_dir, task) == 1, task


def test_task_receives_its_filtered_context(make_lab: Any, marker_dir: Path) -> None:
    lab = make_lab(context={"settings": {"first": 1, "second": [2, 3]}, "not_for_tasks": "hidden"})
    first, second = ContextReader(name="first"), ContextReader(name="second")

    results = lab.run_tasks([first, second])

    assert results[first] == {"marker_dir": str(marker_dir), "setting": 1}
    assert results[second] == {"marker_dir": str(marker_dir), "setting": [2, 3]}


def test_max_parallel_limits_active_tasks_of_a_type(make_lab: Any, marker_dir: Path, backend: str) -> None:
    tasks = [Limited(i=i) for i in range(6)]

    results = make_lab(max_workers=4).run_tasks(tasks)

    assert list(results.values()) == list(range(6))
    intervals = read_intervals(marker_dir)
    assert len(intervals) == 6
    peak = max_overlap(intervals)
    assert peak <= 2
    if backend != "serial":
        # Four workers were free, so two tasks of the type must have run side by side.
        assert peak == 2


# --- failures ---------------------------------------------------------------------------------------


def test_continue_on_failure_skips_dependents_and_finishes_the_rest(
    make_lab: Any, marker_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failing = Fails(1)
    middle = Add(left=Fails(1), right=Leaf(2))
    top = Scale(source=middle, factor=2)
    independent = Leaf(3)
    independent_chain = Scale(source=Leaf(4), factor=2)
    lab = make_lab(continue_on_failure=True)

    with pytest.raises(LabError) as raised:
        lab.run_tasks([top, independent, independent_chain, failing])

    error = raised.value
    assert str(error) == "Failed to complete 2 submitted task(s)"
    assert list(error.results.items()) == [(independent, 3), (independent_chain, 8)]
    assert set(error.failures) == {failing, middle, top}
    assert type(error.failures[failing]) is ValueError
    assert str(error.failures[failing]) == "boom 1"
    assert isinstance(error.failures[middle], DependencyFailedError)
    assert str(error.failures[middle]) == (
        "Task 'Add(left=Fails(x=1), right=Leaf(x=2))' was skipped because its dependency 'Fails(x=1)' failed."
    )
    assert isinstance(error.failures[top], DependencyFailedError)
    assert str(error.failures[top]) == (
        "Task 'Scale(source=Add(left=Fails(x=1), right=Leaf(x=2)), factor=2)' was skipped "
        "because its dependency 'Add(left=Fails(x=1), right=Leaf(x=2))' failed."
    )

    # Dependents of the failure never started; everything else ran and was cached.
    assert execution_count(marker_dir, middle) == 0
    assert execution_count(marker_dir, top) == 0
    assert execution_count(marker_dir, Leaf(2)) == 1
    for task in [Leaf(2), Leaf(3), Leaf(4), independent_chain]:
        assert lab.is_cached(task), task
    assert not lab.is_cached(failing)
    assert independent.result == 3
    assert independent_chain.result == 8

    errors = [record.getMessage() for record in caplog.records if record.name == "labtech_nb" and record.levelno == logging.ERROR]
    failure_lines = [message for message in errors if message.startswith("Task 'Fails(x=1)' failed.")]
    assert len(failure_lines) == 1
    assert failure_lines[0].startswith("Task 'Fails(x=1)' failed. Skipping task. Failure cause: boom 1\n")
    assert "Traceback (most recent call last)" in failure_lines[0]
    assert str(error.failures[middle]) in errors
    assert str(error.failures[top]) in errors


def test_stop_on_failure_never_starts_queued_tasks(backend: str, make_lab: Any, marker_dir: Path) -> None:
    queued = [GatedLeaf(i) for i in range(10, 16)]
    lab = make_lab(continue_on_failure=False, max_workers=1)

    def open_gate_once_the_failure_is_handled(event: Any) -> None:
        # Events reach observers after the scheduler has reacted to them (here: stopped the run),
        # so a task running alongside the failing one cannot finish first and make room for another.
        if isinstance(event, TaskFailed):
            (marker_dir / "gate").touch()

    with pytest.raises(LabError) as raised:
        lab.run_tasks([Fails(1), *queued], observers=[open_gate_once_the_failure_is_handled])

    error = raised.value
    assert str(error) == "boom 1"
    assert type(error.__cause__) is ValueError
    assert str(error.__cause__) == "boom 1"
    assert type(error.failures[Fails(1)]) is ValueError
    # Ray runs as many tasks as the cluster has CPUs (2 here): the first Leaf may run alongside the
    # failing task. Every other backend runs one task at a time here.
    alongside = 1 if backend == "ray" else 0
    executions = [execution_count(marker_dir, task) for task in queued]
    assert executions[alongside:] == [0] * (len(queued) - alongside)
    assert set(error.results) <= set(queued[:alongside])
    assert not any(lab.is_cached(task) for task in queued[alongside:])


def test_stop_on_failure_lets_running_tasks_finish_and_cache(make_lab: Any, marker_dir: Path) -> None:
    # Under the serial runner it runs (and finishes) before the failure; elsewhere alongside it.
    running = OutlivesFailure(watched_label=marker_label(Fails(1)), patience=1.0)
    queued = [Leaf(i) for i in range(10, 16)]
    lab = make_lab(continue_on_failure=False, max_workers=2)

    with pytest.raises(LabError) as raised:
        lab.run_tasks([running, Fails(1), *queued])

    error = raised.value
    assert str(error) == "boom 1"
    assert str(error.__cause__) == "boom 1"
    assert error.results == {running: "finished"}
    assert set(error.failures) >= {Fails(1)}
    assert lab.is_cached(running)
    assert running.result == "finished"
    assert [execution_count(marker_dir, task) for task in queued] == [0] * len(queued)


# --- output attribution -----------------------------------------------------------------------------


def test_output_and_log_lines_are_attributed_to_their_task(
    make_lab: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="labtech_nb")
    talkers = [Talker(n=n) for n in (1, 2, 3)]

    make_lab().run_tasks(talkers)

    by_name: dict[str, list[tuple[str, str]]] = {}
    for record in caplog.records:
        name = getattr(record, "labtech_name", "")
        if name.startswith("Talker["):
            by_name.setdefault(name, []).append((record.levelname, record.getMessage()))
    assert sorted(by_name) == ["Talker[1]", "Talker[2]", "Talker[3]"]
    numbers = set()
    for lines in by_name.values():
        n = lines[0][1].split()[-2]
        numbers.add(n)
        assert lines == [
            ("INFO", f"Captured STDOUT:\nout {n} a"),
            ("ERROR", f"Captured STDERR:\nerr {n} a"),
            ("INFO", f"log {n} a"),
            ("INFO", f"Captured STDOUT:\nout {n} b"),
            ("INFO", f"Captured STDOUT:\nout {n} c"),
            ("INFO", f"Captured STDOUT:\npartial {n}"),
        ]
    assert numbers == {"1", "2", "3"}
    # Each logger call inside run() is one record, the attributed one.
    assert sum("log 2 a" in record.getMessage() for record in caplog.records) == 1
    terminal = capsys.readouterr()
    assert "out 1 a" not in terminal.out
    assert "err 1 a" not in terminal.err


# --- results and metadata on task objects ----------------------------------------------------------


def test_result_is_available_on_input_tasks_after_the_run(make_lab: Any) -> None:
    top = Add(left=Scale(source=Leaf(2), factor=3), right=Leaf(4))
    equal_top = Add(left=Scale(source=Leaf(2), factor=3), right=Leaf(4))
    other = Leaf(9)

    results = make_lab().run_tasks([top, other, equal_top])

    assert list(results.items()) == [(top, 10), (other, 9)]
    assert top.result == 10
    assert equal_top.result == 10
    assert other.result == 9
    # Dependency-only tasks were released once their dependents finished.
    with pytest.raises(TaskError, match="not available in memory"):
        top.left.result  # noqa: B018
    # A dependency object inside an equal input never received results at all.
    with pytest.raises(TaskError, match=r"no active results map|not available in memory"):
        equal_top.right.result  # noqa: B018


def test_result_meta_is_set_for_runs_and_cache_loads(make_lab: Any, marker_dir: Path) -> None:
    lab = make_lab()
    before = datetime.now()
    first = Scale(source=Leaf(2), factor=3)
    lab.run_tasks([first])
    after = datetime.now()

    meta = first.result_meta
    assert meta is not None
    assert before <= meta.start <= after
    assert timedelta(0) <= meta.duration <= after - before
    assert first.source.result_meta is not None

    again = Scale(source=Leaf(2), factor=3)
    assert make_lab().run_tasks([again]) == {again: 6}
    assert again.result_meta == meta
    assert execution_count(marker_dir, first) == 1


def test_dependency_results_are_released_once_no_pending_task_needs_them(backend: str, make_lab: Any) -> None:
    recording = RecordingBackend(resolve_backend(backend, max_workers=None))
    chain = [MakePayload(source=None, n=1)]
    for n in range(2, 5):
        chain.append(MakePayload(source=chain[-1], n=n))
    first, second, third, last = chain

    results = make_lab(runner_backend=recording).run_tasks([last])

    assert results == {last: Payload(10)}
    assert recording.completed == chain
    # When the last task completed, the results two or more steps back were no longer held.
    alive = recording.alive_at_completion[last]
    assert (alive[first], alive[second]) == (False, False)
    gc.collect()
    assert recording.references[third]() is None
    assert recording.references[last]() is results[last]


# --- the cache ------------------------------------------------------------------------------------


def test_bust_cache_reruns_every_task(make_lab: Any, marker_dir: Path) -> None:
    lab = make_lab()
    top = Add(left=Scale(source=Leaf(1), factor=2), right=Leaf(5))
    every_task = [top, Scale(source=Leaf(1), factor=2), Leaf(1), Leaf(5)]

    lab.run_tasks([top])
    assert [execution_count(marker_dir, task) for task in every_task] == [1, 1, 1, 1]
    assert lab.run_tasks([top]) == {top: 7}
    assert [execution_count(marker_dir, task) for task in every_task] == [1, 1, 1, 1]
    assert lab.run_tasks([top], bust_cache=True) == {top: 7}
    assert [execution_count(marker_dir, task) for task in every_task] == [2, 2, 2, 2]


def test_cached_task_dependencies_are_not_run(make_lab: Any, marker_dir: Path) -> None:
    lab = make_lab()
    lab.run_tasks([Scale(source=Leaf(7), factor=2)])
    lab.uncache_tasks([Leaf(7)])

    task = Scale(source=Leaf(7), factor=2)
    assert lab.run_tasks([task]) == {task: 14}

    assert execution_count(marker_dir, Leaf(7)) == 1
    assert execution_count(marker_dir, task) == 1
    assert not lab.is_cached(Leaf(7))


# --- a runner wrapper that watches results being held and released --------------------------------


class RecordingRunner(Runner):
    """Delegates to a backend's runner, and weakly references each result as its task completes."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner
        self.completed: list[Any] = []
        self.references: dict[Any, weakref.ref[Any]] = {}
        self.alive_at_completion: dict[Any, dict[Any, bool]] = {}

    def wait(self, *, timeout_seconds: float | None) -> Iterator[tuple[Any, Any]]:
        for task, outcome in self.inner.wait(timeout_seconds=timeout_seconds):
            if not isinstance(outcome, BaseException):
                self.completed.append(task)
                self.references[task] = weakref.ref(self.inner.get_result(task).value)
                gc.collect()
                self.alive_at_completion[task] = {done: ref() is not None for done, ref in self.references.items()}
            yield task, outcome

    def submit_task(self, task: Any, task_name: str, use_cache: bool) -> None:
        self.inner.submit_task(task, task_name, use_cache)

    def cancel(self) -> None:
        self.inner.cancel()

    def stop(self) -> None:
        self.inner.stop()

    def close(self) -> None:
        self.inner.close()

    def pending_task_count(self) -> int:
        return self.inner.pending_task_count()

    def get_result(self, task: Any) -> Any:
        return self.inner.get_result(task)

    def remove_results(self, tasks: Sequence[Any]) -> None:
        self.inner.remove_results(tasks)

    def get_task_infos(self) -> list[dict[str, Any]]:
        return self.inner.get_task_infos()

    def __getattr__(self, name: str) -> Any:
        # Optional runner features (event publishing, concurrency) pass through to the real runner.
        return getattr(self.inner, name)


class RecordingBackend(RunnerBackend):
    def __init__(self, inner: RunnerBackend) -> None:
        self.inner = inner
        self.runner: RecordingRunner | None = None

    def build_runner(self, *, context: Any, storage: Any, max_workers: int | None) -> Runner:
        built = self.inner.build_runner(context=context, storage=storage, max_workers=max_workers)
        self.runner = RecordingRunner(built)
        return self.runner

    @property
    def completed(self) -> list[Any]:
        assert self.runner is not None
        return self.runner.completed

    @property
    def references(self) -> dict[Any, weakref.ref[Any]]:
        assert self.runner is not None
        return self.runner.references

    @property
    def alive_at_completion(self) -> dict[Any, dict[Any, bool]]:
        assert self.runner is not None
        return self.runner.alive_at_completion
