"""mlflow runs for ``@task(mlflow_run=True)``: one run per execution, with the task's params and tag.

The tutorial's final pipeline runs as written (mlflow included) in a Jupyter kernel under the fork
and spawn backends; smaller task graphs check parameter flattening, failures, cache loads, every
local backend, the missing-mlflow error and the run ids the progress model and dashboard report.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import mlflow
import nbformat
import pytest
from frozendict import frozendict
from jupyter_client.manager import KernelManager
from mlflow.tracking import fluent
from mlflow.tracking._tracking_service import utils as tracking_utils
from nbclient import NotebookClient

import labtech_nb as labtech
from labtech_nb.engine.events import TaskStarted
from labtech_nb.exceptions import LabError
from labtech_nb.mlflow_support import flatten_params
from tests.mlflow_tasks import Colour, Explodes, Leaf, Palette, ReportsActiveRun, Square, Total, Tracked
from tests.tutorial_source import as_labtech_nb, tutorial_sections

#: The mlflow variables these tests (or the code under test) may set; removed again after each test.
MLFLOW_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID")
LOCAL_BACKENDS = ["serial", "thread", "fork", "fork-per-task", "spawn"]


@pytest.fixture(autouse=True)
def _isolated_mlflow(monkeypatch: pytest.MonkeyPatch) -> Any:
    """No tracking URI, active experiment, active run or MLFLOW_* variable leaks into or out of a test."""
    for name in {*MLFLOW_VARIABLES, *(name for name in os.environ if name.startswith("MLFLOW_"))}:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setattr(fluent, "_active_experiment_id", None)
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    # Variables set during the test (mlflow.set_experiment, labtech_nb's prepare_tracking); the ones
    # that existed before are put back by monkeypatch afterwards.
    for name in [name for name in os.environ if name.startswith("MLFLOW_")]:
        del os.environ[name]


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised, empty sqlite tracking store (creating one takes mlflow a few seconds)."""
    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments(max_results=1)
    return path


@pytest.fixture
def tracking_uri(tmp_path: Path, empty_store: Path) -> str:
    """A fresh sqlite tracking store of this test (a copy of the empty one), made the current tracking URI."""
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return uri


def all_runs(uri: str) -> list[Any]:
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(search_all_experiments=True, output_format="list")


def entry_metadata(storage: Path) -> list[dict[str, Any]]:
    """The metadata.json of every cache entry in a storage directory."""
    return [json.loads(path.read_text()) for path in sorted(storage.glob("*/metadata.json"))]


def new_lab(tmp_path: Path, backend: str, **options: Any) -> labtech.Lab:
    return labtech.Lab(storage=tmp_path / "storage", runner_backend=backend, max_workers=2, **options)


# --- the tutorial's final pipeline, in a notebook ----------------------------------------------------


def _serialized_params(value: Any, path: str = "") -> dict[str, str]:
    """The mlflow params expected for a task stored in metadata.json (values as mlflow stores them)."""
    prefix = f"{path}." if path else ""
    if isinstance(value, dict):
        assert "_is_enum" not in value, "enum parameters are not used by these tests"
        items = [(name, item) for name, item in value.items() if name not in ("_is_task", "__class__")]
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return {path: str(value)}
    params: dict[str, str] = {}
    for name, item in items:
        params.update(_serialized_params(item, f"{prefix}{name}"))
    return params


def _run_tutorial_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str) -> dict[str, Any]:
    """Run the tutorial's last block (mlflow lines included) in a kernel; return what it printed and raised."""
    # The kernel's connection file, IPython's history and temporary files stay under tmp_path.
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter_runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    (_title, blocks) = next(section for section in tutorial_sections() if section[0].startswith("Bringing it all together"))
    assert len(blocks) == 1 and "mlflow.set_experiment('example_labtech_experiment')" in blocks[0]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import os\n"
            f"os.environ['LABTECH_NB_BACKEND'] = {backend!r}\n"
            "os.environ['LABTECH_NB_PROGRESS'] = 'off'\n"
            f"os.chdir({str(tmp_path)!r})\n"
            "import mlflow\n"
            f"mlflow.set_tracking_uri({uri!r})"
        ),
        # The block uses `np`, imported by an earlier section of the tutorial.
        nbformat.v4.new_code_cell("import numpy as np"),
        nbformat.v4.new_code_cell(as_labtech_nb(blocks[0])),
        nbformat.v4.new_code_cell(
            "import json\n"
            "print('BACKEND=' + type(lab.runner_backend).__name__)\n"
            "print('MLFLOW_RUNS=' + json.dumps(lab.last_run.progress.mlflow_runs))"
        ),
    ]
    # Errors are collected rather than raised, so the mlflow records are checked even if a cell fails.
    kernel = KernelManager(kernel_name="python3", connection_file=str(tmp_path / "kernel.json"))
    NotebookClient(notebook, km=kernel, timeout=120, allow_errors=True, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    stdout = "".join(output.get("text", "") for output in outputs if output.get("name") == "stdout")
    stderr = "".join(output.get("text", "") for output in outputs if output.get("name") == "stderr")
    errors = [f"{output['ename']}: {output['evalue']}" for output in outputs if output["output_type"] == "error"]
    lines = stdout.splitlines()
    return {
        "uri": uri,
        "backend": next((line.split("=", 1)[1] for line in lines if line.startswith("BACKEND=")), None),
        "mlflow_runs": next((json.loads(line.split("=", 1)[1]) for line in lines if line.startswith("MLFLOW_RUNS=")), None),
        "loss_lines": [line for line in lines if ": log_loss = " in line],
        "errors": errors,
        "failure_causes": [line for line in stderr.splitlines() if "Failure cause" in line or "ERROR" in line],
    }


def _expected_experiment_params() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The params of the 22 ClassifierExperiment and 22 MinMaxProbabilityExperiment runs."""
    classifier = []
    for dataset_key in ("digits", "iris"):
        classifier.append({"dataset_key": dataset_key})  # LRClassifierTask has no parameters
        classifier += [
            {"classifier_task.n_estimators": str(n_estimators), "dataset_key": dataset_key} for n_estimators in range(1, 11)
        ]
    min_max = [{f"experiment.{name}": value for name, value in params.items()} for params in classifier]
    return classifier, min_max


def _as_multiset(param_dicts: list[dict[str, str]]) -> collections.Counter[frozenset[tuple[str, str]]]:
    return collections.Counter(frozenset(params.items()) for params in param_dicts)


def _check_tutorial_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, backend_class: str) -> None:
    outcome = _run_tutorial_pipeline(tmp_path, monkeypatch, backend)
    assert outcome["backend"] == backend_class, outcome["errors"]

    runs = all_runs(outcome["uri"])
    by_type = collections.defaultdict(list)
    for run in runs:
        by_type[run.data.tags.get("labtech_task_type")].append(run)
    # ExperimentEvaluationTask and the cache=None classifier factories have no mlflow_run.
    assert {name: len(group) for name, group in by_type.items()} == {
        "ClassifierExperiment": 22,
        "MinMaxProbabilityExperiment": 22,
    }
    assert {run.info.status for run in runs} == {"FINISHED"}
    assert {mlflow.get_experiment(run.info.experiment_id).name for run in runs} == {"example_labtech_experiment"}
    expected_classifier, expected_min_max = _expected_experiment_params()
    assert _as_multiset([run.data.params for run in by_type["ClassifierExperiment"]]) == _as_multiset(expected_classifier)
    assert _as_multiset([run.data.params for run in by_type["MinMaxProbabilityExperiment"]]) == _as_multiset(expected_min_max)
    # Separate runs, not runs nested in one another.
    assert not [run for run in runs if "mlflow.parentRunId" in run.data.tags]

    # The run's progress names each run: task name -> run id, and the run is named after the task.
    assert outcome["mlflow_runs"] == {run.info.run_name: run.info.run_id for run in runs}

    # Every experiment's cache entry records its own run (same type, same parameters).
    runs_by_id = {run.info.run_id: run for run in runs}
    storage = tmp_path / "storage" / "tutorial" / "classification_lab_final"
    experiment_entries = [
        metadata
        for metadata in entry_metadata(storage)
        if metadata["cache_key"].startswith(("pickle__ClassifierExperiment__", "pickle__MinMaxProbabilityExperiment__"))
    ]
    assert len(experiment_entries) == 44
    assert {metadata["mlflow_run_id"] for metadata in experiment_entries} == set(runs_by_id)
    for metadata in experiment_entries:
        run = runs_by_id[metadata["mlflow_run_id"]]
        assert run.data.tags["labtech_task_type"] == metadata["task"]["__class__"].rsplit(".", 1)[1]
        assert run.data.params == _serialized_params(metadata["task"])

    # Finally, the pipeline itself completed and printed every experiment's loss.
    assert outcome["errors"] == [], "\n".join([*outcome["errors"], *(cause[-600:] for cause in outcome["failure_causes"])])
    assert len(outcome["loss_lines"]) == 44
    evaluation = [
        metadata for metadata in entry_metadata(storage) if metadata["cache_key"].startswith("pickle__ExperimentEvaluationTask__")
    ]
    assert len(evaluation) == 1 and "mlflow_run_id" not in evaluation[0]


@pytest.mark.timeout(240)
def test_tutorial_pipeline_records_mlflow_runs_under_fork(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _check_tutorial_pipeline(tmp_path, monkeypatch, "fork", "ForkPoolRunnerBackend")


@pytest.mark.timeout(240)
def test_tutorial_pipeline_records_mlflow_runs_under_spawn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Notebook-defined task classes reach spawned workers by value."""
    _check_tutorial_pipeline(tmp_path, monkeypatch, "spawn", "SpawnPoolRunnerBackend")


# --- parameter flattening --------------------------------------------------------------------------


def _tracked() -> Tracked:
    return Tracked(
        child=Leaf(seed=3),
        items=[1, "two", Leaf(seed=4)],
        opts={"a": 1.5, "b": {"c": [None, Colour.GREEN]}},
        colour=Colour.RED,
    )


def test_flatten_params_gives_dotted_paths() -> None:
    assert flatten_params(_tracked()) == {
        "child.seed": 3,
        "items.0": 1,
        "items.1": "two",
        "items.2.seed": 4,
        "opts.a": 1.5,
        "opts.b.c.0": None,
        "opts.b.c.1": "Colour.GREEN",
        "colour": "Colour.RED",
        "shade": "Palette.Shade.DARK",
        "ratio": 0.5,
        "flag": True,
        "label": "x",
        "nothing": None,
    }


def test_task_without_parameters_flattens_to_nothing() -> None:
    @labtech.task(mlflow_run=True)
    class NoParams:
        def run(self) -> int:
            return 1

    assert flatten_params(NoParams()) == {}


@pytest.mark.parametrize(
    ("field", "value", "path", "type_name"),
    [
        ("opts", frozendict({"a": 1, "b": {1, 2}}), "opts.b", "set"),
        ("items", (1, b"raw"), "items.1", "bytes"),
        ("child", Leaf(seed=1), "child.seed", "object"),
    ],
)
def test_unloggable_parameter_value_raises_lab_error(field: str, value: Any, path: str, type_name: str) -> None:
    task = _tracked()
    if field == "child":
        # A value no parameter validation would accept, inside a nested task.
        object.__setattr__(value, "seed", object())
    object.__setattr__(task, field, value)
    with pytest.raises(LabError) as raised:
        flatten_params(task)
    # The path is the full dotted path, and the task type the outer (run) task's type.
    assert str(raised.value) == f"Unable to mlflow log parameter '{path}' of type '{type_name}' in task of type 'Tracked'."


def test_run_logs_flattened_params_and_type_tag(tmp_path: Path, tracking_uri: str) -> None:
    lab = new_lab(tmp_path, "serial")
    task = _tracked()
    assert lab.run_task(task) == 31

    (run,) = all_runs(tracking_uri)
    assert run.info.status == "FINISHED"
    assert run.data.tags["labtech_task_type"] == "Tracked"
    # mlflow stores params as strings.
    assert run.data.params == {
        "child.seed": "3",
        "items.0": "1",
        "items.1": "two",
        "items.2.seed": "4",
        "opts.a": "1.5",
        "opts.b.c.0": "None",
        "opts.b.c.1": "Colour.GREEN",
        "colour": "Colour.RED",
        "shade": "Palette.Shade.DARK",
        "ratio": "0.5",
        "flag": "True",
        "label": "x",
        "nothing": "None",
    }
    # Only the mlflow_run task type is recorded (Leaf dependencies are not).
    tracked_entries = [metadata for metadata in entry_metadata(tmp_path / "storage") if "mlflow_run_id" in metadata]
    assert [metadata["mlflow_run_id"] for metadata in tracked_entries] == [run.info.run_id]
    assert len(entry_metadata(tmp_path / "storage")) == 3


def test_nested_enum_qualname_is_logged() -> None:
    task = Tracked(child=Leaf(seed=1), items=[], opts={}, shade=Palette.Shade.DARK)
    assert flatten_params(task)["shade"] == "Palette.Shade.DARK"
    # Empty tuples and dicts contribute no params at all.
    assert not [name for name in flatten_params(task) if name.startswith(("items", "opts"))]


# --- failures, cache loads -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["serial", "fork"])
def test_failing_task_ends_its_run_failed(tmp_path: Path, tracking_uri: str, backend: str) -> None:
    mlflow.set_experiment("failures")
    lab = new_lab(tmp_path, backend)
    with pytest.raises(LabError) as raised:
        lab.run_tasks([Explodes(n=7), Square(x=3)])
    assert [str(error) for error in raised.value.failures.values()] == ["boom 7"]
    assert raised.value.results[Square(x=3)]["value"] == 9

    runs = {run.data.tags["labtech_task_type"]: run for run in all_runs(tracking_uri)}
    assert set(runs) == {"Explodes", "Square"}
    assert runs["Explodes"].info.status == "FAILED"
    assert runs["Explodes"].info.end_time is not None
    assert runs["Explodes"].data.params == {"n": "7"}
    # The failure does not leave a run open that the next task's run would be nested in.
    assert runs["Square"].info.status == "FINISHED"
    assert "mlflow.parentRunId" not in runs["Square"].data.tags
    # Nothing was cached for the failed task.
    assert [metadata["mlflow_run_id"] for metadata in entry_metadata(tmp_path / "storage")] == [runs["Square"].info.run_id]


def test_cache_loads_create_no_runs(tmp_path: Path, tracking_uri: str) -> None:
    total = Total(parts=[Square(x=x) for x in range(4)])
    lab = new_lab(tmp_path, "serial")
    assert lab.run_task(total) == 14
    first_runs = all_runs(tracking_uri)
    assert len(first_runs) == 5
    ids_in_metadata = {metadata["mlflow_run_id"] for metadata in entry_metadata(tmp_path / "storage")}
    assert ids_in_metadata == {run.info.run_id for run in first_runs}

    # A second run loads the result; nothing is recorded and the metadata is untouched.
    assert new_lab(tmp_path, "serial").run_task(total) == 14
    assert len(all_runs(tracking_uri)) == 5
    assert {metadata["mlflow_run_id"] for metadata in entry_metadata(tmp_path / "storage")} == ids_in_metadata

    # Loading a cached dependency to run a new task records the new task only.
    again = new_lab(tmp_path, "serial")
    assert again.run_task(Total(parts=[Square(x=1), Square(x=5)])) == 26
    assert set(again.last_run.progress.mlflow_runs) == {
        name
        for name, task in again.last_run.progress.tasks.items()
        if task in (Total(parts=[Square(x=1), Square(x=5)]), Square(x=5))
    }
    assert len(all_runs(tracking_uri)) == 7


def test_bust_cache_records_new_runs_and_updates_metadata(tmp_path: Path, tracking_uri: str) -> None:
    lab = new_lab(tmp_path, "serial")
    lab.run_tasks([Square(x=1), Square(x=2)])
    old_ids = {run.info.run_id for run in all_runs(tracking_uri)}
    lab.run_tasks([Square(x=1), Square(x=2)], bust_cache=True)
    new_ids = {run.info.run_id for run in all_runs(tracking_uri)} - old_ids
    assert len(old_ids) == len(new_ids) == 2
    assert {metadata["mlflow_run_id"] for metadata in entry_metadata(tmp_path / "storage")} == new_ids
    assert set(lab.last_run.progress.mlflow_runs.values()) == new_ids


# --- every local backend ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_backends_record_one_run_per_execution(tmp_path: Path, tracking_uri: str, backend: str) -> None:
    mlflow.set_experiment(f"labtech_nb_{backend}")
    squares = [Square(x=x) for x in range(4)]
    total = Total(parts=squares)
    reporters = [ReportsActiveRun(n=n) for n in range(4)]
    lab = new_lab(tmp_path, backend)
    results = lab.run_tasks([total, *reporters])
    assert results[total] == 14

    runs = all_runs(tracking_uri)
    assert len(runs) == 9
    assert {run.info.status for run in runs} == {"FINISHED"}
    assert {mlflow.get_experiment(run.info.experiment_id).name for run in runs} == {f"labtech_nb_{backend}"}
    assert not [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    assert collections.Counter(run.data.tags["labtech_task_type"] for run in runs) == {
        "Square": 4,
        "ReportsActiveRun": 4,
        "Total": 1,
    }

    progress = lab.last_run.progress
    # The progress model maps each task's name to its run, named after the task.
    assert progress.mlflow_runs == {run.info.run_name: run.info.run_id for run in runs}
    runs_by_id = {run.info.run_id: run for run in runs}
    for name, run_id in progress.mlflow_runs.items():
        task = progress.tasks[name]
        run = runs_by_id[run_id]
        assert run.data.params == {key: str(value) for key, value in flatten_params(task).items()}, name
        if isinstance(task, ReportsActiveRun):
            # Inside run(), mlflow's active run is the task's own run (even with concurrent threads).
            assert results[task] == run_id
    squares_by_value = {task.x: task for task in squares}
    for metadata in entry_metadata(tmp_path / "storage"):
        run = runs_by_id[metadata["mlflow_run_id"]]
        assert run.data.params == _serialized_params(metadata["task"])
        if run.data.tags["labtech_task_type"] == "Square":
            assert squares_by_value[metadata["task"]["x"]] in progress.tasks.values()
    assert len(entry_metadata(tmp_path / "storage")) == 9


def test_fresh_store_without_experiment(tmp_path: Path) -> None:
    """Forked workers log to a store that did not exist before the run, into the default experiment."""
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    tables_when_tasks_started = []

    def watch(event: Any) -> None:
        if isinstance(event, TaskStarted):
            with contextlib.closing(sqlite3.connect(f"file:{tmp_path / 'mlflow.db'}?mode=ro", uri=True)) as connection:
                names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            tables_when_tasks_started.append({"experiments", "runs"} <= names)

    lab = new_lab(tmp_path, "fork")
    results = lab.run_tasks([Square(x=x) for x in range(6)], observers=[watch])
    # The parent created the store before any worker could.
    assert tables_when_tasks_started == [True] * 6
    runs = all_runs(tracking_uri)
    assert len(runs) == 6 and {run.info.status for run in runs} == {"FINISHED"}
    assert {mlflow.get_experiment(run.info.experiment_id).name for run in runs} == {"Default"}
    # Several workers ran them (so several processes wrote to the store).
    pids = {result["pid"] for result in results.values()}
    assert len(pids) >= 2 and os.getpid() not in pids


# --- mlflow missing ----------------------------------------------------------------------------------


MISSING_MLFLOW = (
    "Task type 'Square' is configured with mlflow_run=True, but mlflow cannot be imported. "
    "You can install mlflow with `pip install mlflow`"
)


@pytest.mark.parametrize("backend", ["serial", "fork"])
def test_mlflow_not_importable_raises_lab_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str, backend: str
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    lab = new_lab(tmp_path, backend)
    with pytest.raises(LabError) as raised:
        lab.run_tasks([Leaf(seed=1), Square(x=2)])
    assert MISSING_MLFLOW in str(raised.value)
    # Nothing ran, and the storage is free for the next run.
    assert entry_metadata(tmp_path / "storage") == []
    assert lab.run_task(Leaf(seed=1)) == 10


def test_cached_mlflow_tasks_load_without_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str) -> None:
    new_lab(tmp_path, "serial").run_task(Square(x=4))
    monkeypatch.setitem(sys.modules, "mlflow", None)
    lab = new_lab(tmp_path, "serial")
    assert lab.run_task(Square(x=4))["value"] == 16
    with pytest.raises(LabError, match="mlflow cannot be imported"):
        lab.run_task(Square(x=5))


def test_mlflow_not_importable_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """The message a user without mlflow sees (mlflow never imported in that process)."""
    import subprocess

    script = (
        "import sys\n"
        "sys.modules['mlflow'] = None\n"
        "import labtech_nb as labtech\n"
        "from labtech_nb.exceptions import LabError\n"
        "from tests.mlflow_tasks import Square\n"
        "lab = labtech.Lab(storage='storage', runner_backend='serial')\n"
        "try:\n"
        "    lab.run_task(Square(x=1))\n"
        "except LabError as error:\n"
        "    print('LABERROR', error)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "LABTECH_NB_PROGRESS": "off"}
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith(f"LABERROR {MISSING_MLFLOW}"), completed.stdout + completed.stderr
    assert not list((tmp_path / "storage").glob("*/metadata.json"))


# --- run ids in the progress model and the dashboard -----------------------------------------------


def test_progress_maps_task_names_to_run_ids(tmp_path: Path, tracking_uri: str) -> None:
    lab = new_lab(tmp_path, "thread")
    lab.run_tasks([Leaf(seed=1), Square(x=1), Square(x=2)])
    progress = lab.last_run.progress
    runs = {run.info.run_id: run for run in all_runs(tracking_uri)}
    assert set(progress.mlflow_runs.values()) == set(runs)
    assert {progress.tasks[name] for name in progress.mlflow_runs} == {Square(x=1), Square(x=2)}
    for name, run_id in progress.mlflow_runs.items():
        assert runs[run_id].info.run_name == name
        assert runs[run_id].data.params == {"x": str(progress.tasks[name].x)}


def test_dashboard_shows_the_run_id_of_a_selected_task(tmp_path: Path, tracking_uri: str) -> None:
    from labtech_nb.notebook.dashboard import Dashboard

    lab = new_lab(tmp_path, "serial")
    lab.run_tasks([Square(x=3)])
    progress = lab.last_run.progress
    ((name, run_id),) = progress.mlflow_runs.items()

    dashboard = Dashboard(progress)
    dashboard.refresh(final=True)
    # The task printed nothing: the Logs tab offers it because it has an mlflow run...
    assert list(dashboard.log_task.options) == [name]
    dashboard.log_task.value = name
    # ...so selecting it shows that run.
    assert run_id in dashboard.log_view.value
