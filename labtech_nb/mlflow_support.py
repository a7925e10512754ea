"""Recording task executions as mlflow runs (``@task(mlflow_run=True)``); mlflow is imported only here."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from enum import Enum
from typing import Any

from frozendict import frozendict

from labtech_nb.exceptions import LabError
from labtech_nb.params import is_task


def require_mlflow(task_type: type) -> Any:
    """Import mlflow for a task type that records runs.

    Raises:
        LabError: mlflow is not installed.
    """
    try:
        import mlflow
    except ImportError:
        raise LabError(
            f"Task type '{task_type.__qualname__}' is configured with mlflow_run=True, but mlflow cannot be imported. "
            "You can install mlflow with `pip install mlflow` (or `pip install labtech_nb[mlflow]`)."
        ) from None
    return mlflow


def flatten_params(task: Any) -> dict[str, Any]:
    """A task's parameters as mlflow params: nested tasks, lists and dicts become dotted paths.

    Raises:
        LabError: a parameter value has a type mlflow cannot log.
    """
    flat: dict[str, Any] = {}
    owner = type(task)
    # An explicit stack (last in, first out: children pushed in reverse), as dependencies may nest deeply.
    stack = [(getattr(task, name), name) for name in reversed(owner._lt_field_names)]
    while stack:
        value, path = stack.pop()
        if is_task(value):
            stack += [(getattr(value, name), f"{path}.{name}") for name in reversed(type(value)._lt_field_names)]
        elif isinstance(value, Enum):
            flat[path] = f"{type(value).__qualname__}.{value.name}"
        elif isinstance(value, tuple):
            stack += [(item, f"{path}.{index}") for index, item in reversed(list(enumerate(value)))]
        elif isinstance(value, (dict, frozendict)):
            stack += [(item, f"{path}.{key}") for key, item in reversed(list(value.items()))]
        elif value is None or isinstance(value, (str, bool, int, float)):
            flat[path] = value
        else:
            raise LabError(
                f"Unable to mlflow log parameter '{path}' of type '{type(value).__qualname__}' in task of type '{owner.__qualname__}'."
            )
    return flat


def prepare_tracking(tasks: Any) -> None:
    """In the parent, before workers start: make sure the tracking store exists and workers find it.

    Several processes creating a fresh sqlite store at once can break it, so the store is created
    here; the tracking URI and experiment are put in the environment, which every worker inherits.
    """
    types = {type(task) for task in tasks if type(task)._lt_options.mlflow_run}
    if not types:
        return
    mlflow = require_mlflow(next(iter(types)))
    uri = mlflow.get_tracking_uri()
    os.environ["MLFLOW_TRACKING_URI"] = str(uri)
    client = mlflow.tracking.MlflowClient(uri)
    client.search_experiments(max_results=1)
    experiment_id = _active_experiment_id(mlflow)
    if experiment_id is not None:
        os.environ["MLFLOW_EXPERIMENT_ID"] = str(experiment_id)


def _active_experiment_id(mlflow: Any) -> str | None:
    try:
        from mlflow.tracking.fluent import _get_experiment_id

        return _get_experiment_id()  # type: ignore[no-any-return]
    except Exception:
        return None


@contextlib.contextmanager
def task_run(task: Any, task_name: str | None) -> Iterator[Any]:
    """Wrap one execution of ``run()`` in an mlflow run named after the task; yields the run."""
    mlflow = require_mlflow(type(task))
    name = task_name or type(task).__qualname__
    with mlflow.start_run(run_name=name, experiment_id=os.environ.get("MLFLOW_EXPERIMENT_ID")) as active:
        mlflow.set_tag("labtech_task_type", type(task).__qualname__)
        params = flatten_params(task)
        if params:
            mlflow.log_params(params)
        yield active
