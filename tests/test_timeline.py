"""The run timeline: a Gantt chart of a run's finished tasks, one lane per worker, plus mean durations per type."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

import labtech_nb as labtech
from labtech_nb.engine.events import (
    RunFinished,
    RunStarted,
    TaskFailed,
    TaskLoaded,
    TaskQueued,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
)
from labtech_nb.engine.progress import RunProgress
from labtech_nb.exceptions import LabError
from labtech_nb.notebook.timeline import OUTCOME_STYLES, plot_timeline

matplotlib.use("Agg")

T0 = 1_000.0  # when the recorded run starts; any fixed value will do

#: The recorded run: (task name, type, pid, kind, start, end, outcome), times in seconds after T0.
RECORDED = [
    ("Load[1]", "Load", 101, "run", 0.0, 2.0, "done"),
    ("Load[2]", "Load", 100, "load", 0.0, 0.5, "loaded"),
    ("Fit[1]", "Fit", 102, "run", 1.0, 4.0, "done"),
    ("Fit[2]", "Fit", 101, "run", 2.0, 5.0, "done"),
    ("Fit[3]", "Fit", 102, "run", 4.0, 4.5, "failed"),
    ("Score[1]", "Score", 101, "run", 5.0, 6.0, "done"),
]


def _record(spans: list[tuple[str, str, int, str, float, float, str]]) -> RunProgress:
    """Feed a RunProgress the events of a run whose tasks ran as ``spans`` describes."""
    counts: dict[str, int] = {}
    for _, task_type, *_rest in spans:
        counts[task_type] = counts.get(task_type, 0) + 1
    progress = RunProgress()
    progress.observe(RunStarted("run-1", sum(counts.values()) + 2, {**counts, "Report": 2}, cached=1, time=T0))
    for name, task_type, pid, kind, start, _end, _outcome in sorted(spans, key=lambda span: span[4]):
        progress.observe(TaskQueued(name, task_type, task=name, cached=kind == "load", time=T0 + start))
        progress.observe(TaskStarted(name, kind, datetime.fromtimestamp(T0 + start), pid, time=T0 + start))
    for name, _task_type, _pid, _kind, _start, end, outcome in sorted(spans, key=lambda span: span[5]):
        if outcome == "done":
            progress.observe(TaskSucceeded(name, task=name, duration=None, time=T0 + end))
        elif outcome == "loaded":
            progress.observe(TaskLoaded(name, task=name, time=T0 + end))
        else:
            progress.observe(TaskFailed(name, task=name, error=ValueError("bad fit"), traceback="", time=T0 + end))
    # Tasks that never ran leave no bar: one queued but never started, one skipped.
    progress.observe(TaskQueued("Report[1]", "Report", task="Report[1]", cached=False, time=T0 + 6))
    progress.observe(TaskSkipped("Report[2]", task="Report[2]", reason=ValueError("dependency Fit[3] failed"), time=T0 + 6))
    progress.observe(RunFinished("run-1", "failed", {}, time=T0 + 7))
    return progress


@pytest.fixture
def figures() -> Iterator[list[Figure]]:
    """Figures to close after the test."""
    opened: list[Figure] = []
    yield opened
    for figure in opened:
        plt.close(figure)


def _plot(figures: list[Figure], progress: RunProgress, **kwargs: Any) -> Figure:
    figure = plot_timeline(progress, **kwargs)
    figures.append(figure)
    return figure


def _bars(axes: Any) -> list[Any]:
    """The bars drawn on ``axes`` (legend handles are not among them)."""
    return [patch for container in axes.containers for patch in container]


def _tick_labels(axes: Any) -> list[str]:
    return [label.get_text() for label in axes.get_yticklabels()]


def test_recorded_run_draws_one_lane_per_worker_and_one_bar_per_finished_task(figures):
    progress = _record(RECORDED)
    figure = _plot(figures, progress, title="My run")
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 2
    gantt, durations = figure.axes
    assert gantt.get_title() == "My run"
    assert len(_bars(durations)) == 3  # the second axes: one bar per task type

    assert _tick_labels(gantt) == ["pid 100", "pid 101", "pid 102"]
    assert list(gantt.get_yticks()) == [0, 1, 2]
    bars = _bars(gantt)
    assert len(bars) == len(gantt.patches) == len(RECORDED)

    # Each bar sits in its worker's lane, from the task's start to its end (seconds since the first start).
    lane = {100: 0, 101: 1, 102: 2}
    drawn = sorted(
        (round(bar.get_y() + bar.get_height() / 2, 6), round(bar.get_x(), 6), round(bar.get_width(), 6)) for bar in bars
    )
    assert drawn == sorted((lane[pid], start, end - start) for _, _, pid, _, start, end, _ in RECORDED)


def _bars_by_task(gantt: Any) -> dict[str, Any]:
    lane = {100: 0, 101: 1, 102: 2}
    by_position = {(round(bar.get_y() + bar.get_height() / 2, 6), round(bar.get_x(), 6)): bar for bar in _bars(gantt)}
    return {name: by_position[(lane[pid], start)] for name, _, pid, _, start, _, _ in RECORDED}


def test_bars_are_coloured_by_task_type(figures):
    gantt, _ = _plot(figures, _record(RECORDED)).axes
    bars = _bars_by_task(gantt)
    colour = {name: to_rgb(bar.get_facecolor()) for name, bar in bars.items()}
    # One colour per type, whatever the outcome (a loaded Load, a failed Fit)...
    assert colour["Load[1]"] == colour["Load[2]"]
    assert colour["Fit[1]"] == colour["Fit[2]"] == colour["Fit[3]"]
    # ...and different types differ.
    assert len({colour["Load[1]"], colour["Fit[1]"], colour["Score[1]"]}) == 3

    # The legend names every type, then explains the hatching.
    legend = gantt.get_legend()
    assert legend is not None
    assert [text.get_text() for text in legend.get_texts()] == ["Load", "Fit", "Score", "loaded from cache", "failed"]


def test_cache_loads_are_hatched_and_failures_outlined(figures):
    gantt, _ = _plot(figures, _record(RECORDED)).axes
    bars = _bars_by_task(gantt)
    failure_edge = to_rgb(OUTCOME_STYLES["failed"]["edgecolor"])
    assert failure_edge == to_rgb("#cf222e")

    assert bars["Load[2]"].get_hatch()  # loaded from the cache
    assert bars["Fit[3]"].get_hatch()  # failed
    assert bars["Load[2]"].get_hatch() != bars["Fit[3]"].get_hatch()
    assert to_rgb(bars["Fit[3]"].get_edgecolor()) == failure_edge
    for name in ("Load[1]", "Fit[1]", "Fit[2]", "Score[1]", "Load[2]"):
        assert to_rgb(bars[name].get_edgecolor()) != failure_edge, name
    for name in ("Load[1]", "Fit[1]", "Fit[2]", "Score[1]"):
        assert not bars[name].get_hatch(), name


def test_duration_axis_has_one_bar_per_type_with_the_mean_executed_duration(figures):
    gantt, durations = _plot(figures, _record(RECORDED)).axes
    assert _tick_labels(durations) == ["Load", "Fit", "Score"]
    bars = _bars(durations)
    assert len(bars) == 3
    # Means over executed tasks only: the cache load and the failure are left out.
    assert [round(bar.get_width(), 6) for bar in bars] == [2.0, 3.0, 1.0]
    type_colour = {name: to_rgb(bar.get_facecolor()) for name, bar in _bars_by_task(gantt).items()}
    assert [to_rgb(bar.get_facecolor()) for bar in bars] == [
        type_colour["Load[1]"],
        type_colour["Fit[1]"],
        type_colour["Score[1]"],
    ]


def test_main_process_tasks_without_a_pid_get_a_main_lane(figures):
    progress = _record([("A[1]", "A", 0, "load", 0.0, 1.0, "loaded"), ("B[1]", "B", 7, "run", 0.5, 2.0, "done")])
    gantt, _ = _plot(figures, progress).axes
    assert _tick_labels(gantt) == ["main", "pid 7"]
    assert len(_bars(gantt)) == 2


def test_many_task_types_get_distinct_colours(figures):
    spans = [(f"T{index}[1]", f"T{index}", 100 + index % 3, "run", float(index), index + 1.0, "done") for index in range(12)]
    gantt, durations = _plot(figures, _record(spans)).axes
    for axes in (gantt, durations):
        colours = [to_rgb(bar.get_facecolor()) for bar in _bars(axes)]
        assert len(colours) == 12
        assert len(set(colours)) == 12, "two task types share a colour"


def test_a_run_with_no_finished_tasks_raises_value_error():
    open_figures = plt.get_fignums()
    with pytest.raises(ValueError, match="no finished tasks"):
        plot_timeline(RunProgress())
    # Queued, skipped and unfinished tasks leave nothing to draw either.
    with pytest.raises(ValueError, match="no finished tasks"):
        plot_timeline(_record([]))
    assert plt.get_fignums() == open_figures  # no half-drawn figure is left behind


# --- a real run -------------------------------------------------------------------------------------


@labtech.task
class Piece:
    value: int

    def run(self) -> int:
        return self.value


@labtech.task
class Total:
    pieces: list[Piece]

    def run(self) -> int:
        return sum(piece.result for piece in self.pieces)


@labtech.task
class Broken:
    value: int

    def run(self) -> int:
        raise ValueError(f"broken {self.value}")


def test_lab_last_run_timeline_after_real_fork_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figures):
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    lab = labtech.Lab(storage=tmp_path / "storage", runner_backend="fork", max_workers=2)
    assert lab.last_run is None

    assert lab.run_tasks([Total(pieces=[Piece(value=index) for index in range(4)])]) != {}
    run = lab.last_run
    assert run is not None
    figure = run.timeline()
    figures.append(figure)
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    gantt, durations = figure.axes
    spans = run.progress.spans
    assert len(spans) == 5 and {span.outcome for span in spans} == {"done"}
    assert len(_bars(gantt)) == 5
    worker_pids = sorted({span.pid for span in spans if span.pid is not None})
    assert os.getpid() not in worker_pids and 1 <= len(worker_pids) <= 2
    assert _tick_labels(gantt) == [f"pid {pid}" for pid in worker_pids]
    assert _tick_labels(durations) == ["Piece", "Total"]

    # Again with the pieces cached, one more piece and a failing task.
    with pytest.raises(LabError):
        lab.run_tasks([Total(pieces=[Piece(value=index) for index in range(5)]), Broken(value=1)])
    run = lab.last_run
    assert run is not None
    outcomes = sorted(span.outcome for span in run.progress.spans)
    assert outcomes == ["done", "done", "failed", "loaded", "loaded", "loaded", "loaded"]
    figure = run.timeline()
    figures.append(figure)
    bars = _bars(figure.axes[0])
    assert len(bars) == 7
    assert sum(bool(bar.get_hatch()) and to_rgb(bar.get_edgecolor()) != to_rgb("#cf222e") for bar in bars) == 4
    assert sum(to_rgb(bar.get_edgecolor()) == to_rgb("#cf222e") for bar in bars) == 1
