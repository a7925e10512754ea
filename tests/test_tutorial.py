"""The labtech tutorial runs unchanged on labtech_nb, and computes the same numbers as plain sklearn."""

from __future__ import annotations

import contextlib
import io
import re
import sys

import numpy as np
import pytest
from sklearn import datasets
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler

from labtech_nb.runners import registry
from tests.tutorial_source import as_labtech_nb, new_module, tutorial_sections

LOSS_LINE = re.compile(r"^(?P<task>.+?): (?:log_loss\(\w+, prob_y\)|log_loss) = (?P<loss>[0-9.e+-]+)$")


def _datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    digits_X, digits_y = datasets.load_digits(return_X_y=True)
    iris_X, iris_y = datasets.load_iris(return_X_y=True)
    return {
        "digits": (StandardScaler().fit_transform(digits_X), digits_y),
        "iris": (StandardScaler().fit_transform(iris_X), iris_y),
    }


def _expected_final_losses() -> dict[tuple[str, str, bool], float]:
    """The final pipeline's losses computed with sklearn alone: (dataset, classifier, min-max) -> loss."""
    expected = {}
    for dataset_key, (X, y) in _datasets().items():
        classifiers = {"LRClassifierTask()": LogisticRegression(random_state=42)}
        for n_estimators in range(1, 11):
            classifiers[f"RFClassifierTask(n_estimators={n_estimators})"] = RandomForestClassifier(
                n_estimators=n_estimators, random_state=42
            )
        for name, classifier in classifiers.items():
            prob_y = classifier.fit(X, y).predict_proba(X)
            expected[(dataset_key, name, False)] = log_loss(y, prob_y)
            min_max = np.zeros(prob_y.shape)
            min_max[np.arange(len(prob_y)), prob_y.argmax(axis=1)] = 1
            expected[(dataset_key, name, True)] = log_loss(y, min_max)
    return expected


@pytest.fixture(params=["serial", "thread"])
def tutorial_backend(request, monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "default_backend_name", lambda max_workers: request.param)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "storage" / "tutorial").mkdir(parents=True)
    return request.param


def _run(module, code: str) -> str:
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(code, f"<tutorial {module.__name__}>", "exec", dont_inherit=True), module.__dict__)
    return output.getvalue()


def test_tutorial_sections_run_unchanged(tutorial_backend):
    module = new_module(f"tutorial_{tutorial_backend}")
    try:
        printed = {}
        for title, blocks in tutorial_sections():
            if title.startswith("Visualising"):
                continue  # diagrams are covered by the diagram tests
            printed[title] = "".join(_run(module, as_labtech_nb(block, without_mlflow=True)) for block in blocks)
    finally:
        sys.modules.pop(module.__name__, None)

    first = printed["Running a single experiment as a labtech task"].splitlines()
    # The plain sklearn run, the labtech run, and the cached re-run print the same loss.
    assert len(first) == 3 and len(set(first)) == 1 and first[0].startswith("log_loss(digits_y, prob_y) = ")

    parameterised = printed["Parameterising tasks, and running many tasks in parallel"].splitlines()
    assert [line.split(":")[0] for line in parameterised] == [f"ClassifierExperiment(n_estimators={n})" for n in range(1, 11)]

    final = printed["Bringing it all together and aggregating results"].splitlines()
    expected = _expected_final_losses()
    assert len(final) == len(expected) == 44
    for line in final:
        match = LOSS_LINE.match(line)
        assert match, line
        task = match.group("task")
        min_max = task.startswith("MinMaxProbabilityExperiment(")
        dataset_key = re.search(r"dataset_key='(\w+)'", task).group(1)
        classifier = re.search(r"classifier_task=(\w+\([^)]*\))", task).group(1)
        assert float(match.group("loss")) == pytest.approx(expected[(dataset_key, classifier, min_max)], rel=5e-3), line


def test_tutorial_cached_rerun_prints_the_same(tutorial_backend):
    """Running the final pipeline twice loads everything from the cache and prints identical numbers."""
    (_title, blocks) = next(section for section in tutorial_sections() if section[0].startswith("Bringing"))
    outputs, metas = [], []
    for _ in range(2):
        module = new_module(f"tutorial_final_{tutorial_backend}")
        try:
            # The block uses `np`, imported by an earlier section of the tutorial.
            _run(module, "import numpy as np")
            outputs.append(_run(module, as_labtech_nb(blocks[0], without_mlflow=True)))
            metas.append(module.evaluation_task.result_meta)
        finally:
            sys.modules.pop(module.__name__, None)
    assert outputs[0] == outputs[1]
    assert len(outputs[0].splitlines()) == 44
    # A cache load reports when the result was first computed.
    assert metas[1] == metas[0] and metas[0].start is not None
