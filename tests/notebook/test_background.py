"""Background runs: `Lab.run_tasks_in_background` and its `BackgroundRun` handle, including the Stop
button of its dashboard, under the thread and fork backends."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

import labtech_nb as labtech
from labtech_nb import diagram
from labtech_nb.engine.background import BackgroundRun
from labtech_nb.engine.progress import RunProgress
from labtech_nb.engine.run import RECENT_RUNS
from labtech_nb.exceptions import LabError
from labtech_nb.notebook.dashboard import RunControl, live_graph_html

from .nb_tasks import Breaks, Chatty, Gated, Sleeper, Trivial, finished, started, wait_until

BACKENDS = ["thread", "fork"]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class Gate:
    """A file that gated tasks wait for; opened at the latest when the test ends."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "gate"
        self.markers = directory / "markers"
        self.markers.mkdir()

    def open(self) -> None:
        self.path.touch()

    def tasks(self, count: int, first: int = 0) -> list[Gated]:
        return [Gated(i=i, gate=str(self.path), markers=str(self.markers)) for i in range(first, first + count)]


@pytest.fixture
def gate(tmp_path: Path) -> Any:
    opened = Gate(tmp_path)
    yield opened
    opened.open()


def make_lab(tmp_path: Path, backend: str, name: str = "storage", workers: int = 2) -> labtech.Lab:
    return labtech.Lab(storage=tmp_path / name, runner_backend=backend, max_workers=workers)


def control_of(handle: BackgroundRun) -> RunControl:
    bundle = handle._repr_mimebundle_()
    assert set(bundle) == {WIDGET_MIME, "text/plain", "text/html"}
    control = handle._control  # type: ignore[attr-defined]
    assert isinstance(control, RunControl)
    return control


# --- returning at once, waiting, results ----------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_returns_at_once_and_wait_returns_the_results(tmp_path: Path, gate: Gate, backend: str) -> None:
    lab = make_lab(tmp_path, backend)
    tasks = gate.tasks(2)
    before = time.monotonic()
    handle = lab.run_tasks_in_background(tasks)
    assert time.monotonic() - before < 2.0
    assert isinstance(handle, BackgroundRun)
    wait_until(lambda: len(started(gate.markers)) == 2, message="the tasks never started")
    assert not handle.done
    assert handle.state == "running"
    assert handle.results == {}
    # Events reach the run's coordinating thread within a few tens of milliseconds.
    wait_until(lambda: handle.progress.totals.running == 2, message="the progress never showed the running tasks")
    with pytest.raises(TimeoutError, match=r"did not finish within 0\.1 seconds"):
        handle.wait(0.1)
    assert not handle.done, "a wait that timed out must not stop the run"
    gate.open()
    results = handle.wait(15)
    assert results == {tasks[0]: 0, tasks[1]: 10}
    assert handle.done
    assert handle.state == "finished"
    assert handle.results == results
    assert handle.failures == {}
    assert handle.error is None
    assert lab.is_cached(tasks[0]) and lab.is_cached(tasks[1])
    assert lab.last_run is handle._run
    assert handle._run in RECENT_RUNS and handle._run.background
    assert repr(handle).startswith("<Background run: finished, 2/2 done, 0 from cache")


def test_results_so_far_are_available_while_the_run_goes_on(tmp_path: Path, gate: Gate) -> None:
    lab = make_lab(tmp_path, "thread")
    quick = Trivial(i=7)
    slow = gate.tasks(1)[0]
    handle = lab.run_tasks_in_background([quick, slow])
    wait_until(lambda: handle.progress.totals.done == 1, message="the quick task never finished")
    assert not handle.done
    assert handle.results == {quick: 7}  # documented: "Results of the input tasks completed so far"
    gate.open()
    assert handle.wait(15) == {quick: 7, slow: 0}


@pytest.mark.parametrize("backend", BACKENDS)
def test_failures_are_reported_with_the_completed_results(tmp_path: Path, backend: str) -> None:
    lab = make_lab(tmp_path, backend)
    good, bad = Trivial(i=3), Breaks(i=1)
    handle = lab.run_tasks_in_background([good, bad])
    with pytest.raises(LabError, match="Failed to complete 1 submitted task") as raised:
        handle.wait(15)
    assert raised.value.results == {good: 3}
    assert list(raised.value.failures) == [bad]
    assert isinstance(raised.value.failures[bad], ValueError)
    assert handle.state == "failed"
    assert handle.error is raised.value
    assert handle.results == {good: 3}
    assert list(handle.failures) == [bad]
    assert "broken-1" in str(handle.failures[bad])
    assert handle.progress.failures[0].name == "Breaks[1]"


def test_a_run_ending_in_a_failure_ends_promptly_under_fork(tmp_path: Path) -> None:
    lab = make_lab(tmp_path, "fork")
    began = time.monotonic()
    lab.run_tasks_in_background([Trivial(i=1)]).wait(15)
    succeeding = time.monotonic() - began
    handle = lab.run_tasks_in_background([Breaks(i=1)])
    began = time.monotonic()
    with pytest.raises(LabError):
        handle.wait(15)
    failing = time.monotonic() - began
    # Ending in a failure must not cost seconds more than ending in a success (workers exit at once).
    assert failing < succeeding + 1.0, (failing, succeeding)


def test_timeline_of_a_background_run_is_a_figure(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    lab = make_lab(tmp_path, "thread")
    handle = lab.run_tasks_in_background([Trivial(i=i) for i in range(3)])
    handle.wait(15)
    figure = handle.timeline()
    try:
        assert isinstance(figure, Figure)
        assert len(figure.axes) == 2
    finally:
        import matplotlib.pyplot as plt

        plt.close(figure)


# --- output ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_task_output_goes_to_the_handle_not_to_the_cell(
    tmp_path: Path, gate: Gate, backend: str, capfd: pytest.CaptureFixture[str]
) -> None:
    lab = make_lab(tmp_path, backend)
    chatty = [Chatty(i=1), Chatty(i=2)]
    handle = lab.run_tasks_in_background([*chatty, *gate.tasks(1)])
    wait_until(lambda: started(gate.markers) == [0], message="the gated task never started")
    print("printed by the cell while the run goes on")
    gate.open()
    handle.wait(15)
    captured = capfd.readouterr()
    assert "chatty" not in captured.out + captured.err
    assert "printed by the cell while the run goes on" in captured.out
    lines = list(handle.log_lines)
    for i in (1, 2):
        assert f"Chatty[{i}]: chatty-out-{i}" in lines
        assert f"Chatty[{i}]: chatty-err-{i}" in lines
    assert not any("printed by the cell" in line for line in lines)
    assert list(handle.progress.logs["Chatty[1]"]) == ["chatty-out-1", "chatty-err-1"]


# --- one run per storage --------------------------------------------------------------------------


def test_a_second_run_on_the_same_storage_is_refused(tmp_path: Path, gate: Gate) -> None:
    lab = make_lab(tmp_path, "thread")
    first = lab.run_tasks_in_background(gate.tasks(1))
    wait_until(lambda: started(gate.markers) == [0])
    storage_text = re.escape(repr(lab.storage))
    with pytest.raises(LabError, match=f"Another run is already using storage {storage_text}"):
        lab.run_tasks_in_background([Trivial(i=1)])
    # Another Lab on the same directory, and a foreground run, are refused too.
    twin = make_lab(tmp_path, "thread")
    with pytest.raises(LabError, match=storage_text):
        twin.run_tasks([Trivial(i=1)])
    with pytest.raises(LabError, match=storage_text):
        twin.run_tasks_in_background([Trivial(i=1)])
    # A run on another storage is fine meanwhile.
    other = make_lab(tmp_path, "thread", name="other-storage")
    assert other.run_tasks_in_background([Trivial(i=2)]).wait(15) == {Trivial(i=2): 2}
    assert not first.done
    gate.open()
    first.wait(15)
    # Once the first run ended, its storage is free again.
    assert lab.run_tasks_in_background([Trivial(i=1)]).wait(15) == {Trivial(i=1): 1}


def test_a_refused_run_does_not_replace_last_run(tmp_path: Path, gate: Gate) -> None:
    lab = make_lab(tmp_path, "thread")
    first = lab.run_tasks_in_background(gate.tasks(1))
    wait_until(lambda: started(gate.markers) == [0])
    with pytest.raises(LabError):
        lab.run_tasks_in_background([Trivial(i=1)])
    with pytest.raises(LabError):
        lab.run_tasks([Trivial(i=1)])
    gate.open()
    first.wait(15)
    assert lab.last_run is first._run


# --- stopping -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_button_lets_running_tasks_finish_and_never_starts_queued_ones(tmp_path: Path, gate: Gate, backend: str) -> None:
    lab = make_lab(tmp_path, backend, workers=2)
    tasks = gate.tasks(6)
    handle = lab.run_tasks_in_background(tasks)
    control = control_of(handle)
    assert handle._control is control  # type: ignore[attr-defined]
    control_of(handle)
    assert handle._control is control, "the control is built once per handle"  # type: ignore[attr-defined]
    wait_until(lambda: len(started(gate.markers)) == 2, message="the first tasks never started")
    assert control.stop_button.description == "Stop" and not control.stop_button.disabled

    control.stop_button.click()
    assert handle.stop_requests == 1
    assert control.stop_button.description == "Terminate"
    assert control.status.value.startswith("Stopping: running tasks will finish and be cached.")
    time.sleep(0.3)  # a broken stop would start queued tasks here
    assert not handle.done, "running tasks must be allowed to finish"
    gate.open()
    with pytest.raises(LabError, match="Run stopped before completing 4 submitted task") as raised:
        handle.wait(15)
    assert raised.value.results == {tasks[0]: 0, tasks[1]: 10}
    assert handle.results == {tasks[0]: 0, tasks[1]: 10}
    assert handle.state == "interrupted"
    assert started(gate.markers) == [0, 1], "queued tasks must never start"
    assert finished(gate.markers) == [0, 1]
    assert [lab.is_cached(task) for task in tasks] == [True, True, False, False, False, False]
    wait_until(lambda: control.status.value.startswith("Run ended"), message="the control never showed the end")
    assert control.status.value == "Run ended: interrupted (Run stopped before completing 4 submitted task(s))"
    assert control.stop_button.disabled
    assert [bar.bar_style for bar, _ in control.dashboard.bars.values()] == ["warning"]
    assert "interrupted" in control.dashboard.header.value
    assert control.mimebundle()["text/plain"].startswith("labtech_nb background run: interrupted, 2/6 done")


def test_stop_button_clicked_twice_terminates_running_tasks(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    lab = make_lab(tmp_path, "fork", workers=2)
    tasks = [Sleeper(i=i, seconds=30, markers=str(markers)) for i in range(4)]
    existing = {child.pid for child in psutil.Process().children(recursive=True)}
    handle = lab.run_tasks_in_background(tasks)
    control = control_of(handle)
    wait_until(lambda: len(started(markers)) == 2, message="the first tasks never started")
    # Only this run's workers (other tests may have left session-wide helpers such as Ray running).
    workers = [child for child in psutil.Process().children(recursive=True) if child.pid not in existing]
    assert workers, "the fork backend should run tasks in child processes"

    clicked = time.monotonic()
    control.stop_button.click()
    control.stop_button.click()
    assert handle.stop_requests == 2
    assert control.stop_button.disabled
    assert control.status.value == "Terminating running tasks."
    with pytest.raises(LabError, match="Run stopped before completing 4 submitted task") as raised:
        handle.wait(10)
    assert time.monotonic() - clicked < 5, "terminating must not wait for the 30-second tasks"
    assert raised.value.results == {}
    assert handle.state == "interrupted"
    assert finished(markers) == []
    assert started(markers) == [0, 1]
    assert not any(lab.is_cached(task) for task in tasks)
    psutil.wait_procs(workers, timeout=5)
    assert not [worker for worker in workers if worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE]


def test_cancel_without_the_widget_stops_the_run(tmp_path: Path, gate: Gate) -> None:
    lab = make_lab(tmp_path, "thread", workers=1)
    tasks = gate.tasks(3)
    handle = lab.run_tasks_in_background(tasks)
    wait_until(lambda: started(gate.markers) == [0])
    handle.cancel()
    assert handle.stop_requests == 1
    gate.open()
    with pytest.raises(LabError) as raised:
        handle.wait(15)
    assert raised.value.results == {tasks[0]: 0}
    assert handle.state == "interrupted"
    assert started(gate.markers) == [0]


def test_drawing_the_task_graph_never_waits_for_a_fork_runs_workers(
    tmp_path: Path, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The dashboard draws its task graph with a program (graphviz's dot) in the kernel's main thread,
    # while a background run forks its workers. A worker forked while the program runs inherits the
    # program's input pipe, and the program then waits for the end of its input until that worker
    # exits: here, until the gate opens at the end of the test. The stand-in for dot is `cat`, and the
    # run is started while it runs, its first tasks ready to go.
    runs: list[BackgroundRun] = []
    svg = b"<svg xmlns='http://www.w3.org/2000/svg'/>"
    this_thread = threading.current_thread()

    class DrawingDuringAFork:
        def pipe(self, format: str) -> bytes:
            if threading.current_thread() is not this_thread or runs:
                return svg  # another dashboard, say one that an earlier test left refreshing
            program = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            runs.append(make_lab(tmp_path, "fork", workers=2).run_tasks_in_background(gate.tasks(4)))
            wait_until(lambda: len(runs[0].progress.tasks) == 4, message="the run never queued its tasks")
            time.sleep(0.5)  # the pool would fork here
            output, _ = program.communicate(svg, timeout=10)
            return output

    monkeypatch.setattr(diagram, "graphviz_available", lambda: True)
    monkeypatch.setattr(diagram, "build_graphviz_instance_diagram", lambda *args, **kwargs: DrawingDuringAFork())
    drawn = make_lab(tmp_path, "serial", name="drawn")
    progress = RunProgress()
    drawn.run_tasks([Trivial(i=1)], observers=[progress], disable_progress=True, disable_top=True)

    html = live_graph_html(progress)

    assert html.startswith("<img"), html
    wait_until(lambda: len(started(gate.markers)) == 2, message="the first tasks never started")
    gate.open()
    assert runs[0].wait(30) == {task: task.i * 10 for task in gate.tasks(4)}
