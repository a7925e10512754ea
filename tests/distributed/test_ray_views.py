"""The views work unchanged when tasks run on Ray: events arrive from Ray workers."""

from __future__ import annotations

from typing import Any

import pytest

import labtech_nb as labtech
from labtech_nb.engine.events import TaskLogLine, TaskProgress, TaskStarted
from labtech_nb.exceptions import LabError, RunnerError
from labtech_nb.notebook.dashboard import DashboardView

from .ray_tasks import Explodes, Matrix, Trace


def test_dashboard_model_fed_by_a_ray_run(ray_cluster: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    view = DashboardView(display=False)
    events: list[Any] = []
    lab = labtech.Lab(storage=tmp_path / "storage", runner_backend="ray")
    tasks = [Trace(matrix=Matrix(size=50), scale=scale) for scale in range(1, 5)]

    with pytest.raises(LabError) as raised:
        lab.run_tasks([*tasks, Explodes(x=1)], observers=[view, events.append])

    assert raised.value.results == {task: 50.0 * task.scale for task in tasks}
    progress = view.progress
    assert progress.state == "failed"
    assert (progress.types["Trace"].done, progress.types["Matrix"].done, progress.types["Explodes"].failed) == (4, 1, 1)
    # Output, log records, progress and starts were sent from the Ray workers to the driver.
    matrix_lines = progress.logs["Matrix[1]"]
    assert list(matrix_lines) == ["building a 50x50 matrix"]
    assert any(line == "scaling by 3" for name, lines in progress.logs.items() if name.startswith("Trace") for line in lines)
    assert {event.task_name for event in events if isinstance(event, TaskStarted)} >= {"Matrix[1]", "Trace[1]", "Trace[4]"}
    assert any(isinstance(event, TaskProgress) and event.description == "steps" for event in events)
    assert all(isinstance(event, TaskLogLine) for event in events if type(event).__name__ == "TaskLogLine")
    failure = progress.failures[0]
    assert failure.name == "Explodes[1]" and "exploded 1" in failure.message and "RuntimeError" in failure.traceback
    assert "Explodes" in view.dashboard.failures.get_title(0)

    cached = labtech.Lab(storage=tmp_path / "storage", runner_backend="ray")
    assert cached.run_tasks(tasks) == raised.value.results
    assert cached.last_run is not None and cached.last_run.progress.totals.loaded == 4


def test_ray_needs_an_initialised_cluster_and_no_max_workers(ray_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    with pytest.raises(RunnerError, match="only supports max_workers=None"):
        labtech.Lab(storage=None, runner_backend="ray", max_workers=2).run_tasks([Matrix(size=1)])


def test_runner_options_reach_ray(ray_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")

    lab = labtech.Lab(storage=None, runner_backend="ray")
    # A task asking for more CPUs than the cluster has can never be scheduled; with 2 it runs.
    result = lab.run_tasks([WideMatrix(size=3, cpus=2)])
    assert next(iter(result.values())).shape == (3, 3)


@labtech.task
class WideMatrix:
    size: int
    cpus: int

    def runner_options(self) -> dict[str, Any]:
        return {"ray": {"remote_options": {"num_cpus": self.cpus}}}

    def run(self) -> Any:
        import numpy as np

        return np.zeros((self.size, self.size))


def test_a_dead_ray_worker_fails_only_its_task(ray_cluster: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from labtech_nb.exceptions import TaskDiedError

    from .ray_tasks import Dies

    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    lab = labtech.Lab(storage=tmp_path / "storage", runner_backend="ray")
    survivor = Trace(matrix=Matrix(size=4), scale=2)
    with pytest.raises(LabError) as raised:
        lab.run_tasks([Dies(x=1), survivor])
    error = raised.value.failures[Dies(x=1)]
    assert isinstance(error, TaskDiedError)
    assert str(error).startswith("Task 'Dies(x=1)' died: its Ray worker crashed")
    assert raised.value.results == {survivor: 8.0}
    assert not lab.is_cached(Dies(x=1))
