"""The tutorial's complete pipeline as a script: train classifiers on two datasets, post-process their
predictions, evaluate everything in one aggregating task, and print the evaluation table.

Run it twice: the second run loads every result from the cache in ``storage/pipeline``.

    python scripts/tutorial_pipeline.py [--storage DIR] [--backend NAME] [--workers N]
"""

from __future__ import annotations

import argparse
from typing import Protocol

import numpy as np
from sklearn import datasets
from sklearn.base import ClassifierMixin, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler

import labtech_nb as labtech


def load_datasets() -> dict[str, dict[str, np.ndarray]]:
    """Both datasets, standardised, keyed by the name tasks use to look them up in the context."""
    loaded = {}
    for name, loader in (("digits", datasets.load_digits), ("iris", datasets.load_iris)):
        X, y = loader(return_X_y=True)
        loaded[name] = {"X": StandardScaler().fit_transform(X), "y": y}
    return loaded


class ClassifierTask(Protocol):
    def run(self) -> ClassifierMixin: ...


@labtech.task(cache=None)
class RandomForestFactory:
    """Builds an untrained random forest; cheap, so never cached."""

    n_estimators: int

    def run(self) -> ClassifierMixin:
        return RandomForestClassifier(n_estimators=self.n_estimators, random_state=42)


@labtech.task(cache=None)
class LogisticRegressionFactory:
    """Builds an untrained logistic regression; cheap, so never cached."""

    def run(self) -> ClassifierMixin:
        return LogisticRegression(random_state=42)


class ExperimentTask(Protocol):
    dataset_key: str

    def run(self) -> np.ndarray: ...


@labtech.task
class TrainAndPredict:
    """Fits a fresh copy of the factory's classifier and returns its class probabilities."""

    classifier_task: ClassifierTask
    dataset_key: str

    def run(self) -> np.ndarray:
        data = self.context["DATASETS"][self.dataset_key]
        classifier = clone(self.classifier_task.result)
        classifier.fit(data["X"], data["y"])
        return classifier.predict_proba(data["X"])


@labtech.task
class HardenPredictions:
    """Turns another experiment's probabilities into one-hot predictions of the likeliest class."""

    experiment: ExperimentTask

    @property
    def dataset_key(self) -> str:
        return self.experiment.dataset_key

    def run(self) -> np.ndarray:
        probabilities = self.experiment.result
        hardened = np.zeros(probabilities.shape)
        hardened[np.arange(len(probabilities)), probabilities.argmax(axis=1)] = 1
        return hardened


@labtech.task
class Evaluate:
    """Scores every experiment with log loss, so the whole evaluation is cached as one result."""

    experiments: list[ExperimentTask]

    def run(self) -> dict[ExperimentTask, float]:
        return {
            experiment: log_loss(self.context["DATASETS"][experiment.dataset_key]["y"], experiment.result)
            for experiment in self.experiments
        }


def build_evaluation(dataset_keys: list[str]) -> Evaluate:
    """Every classifier on every dataset, each also hardened, all scored by one evaluation task."""
    factories = [LogisticRegressionFactory(), *(RandomForestFactory(n_estimators=n) for n in range(1, 11))]
    trained = [TrainAndPredict(classifier_task=factory, dataset_key=key) for key in dataset_keys for factory in factories]
    hardened = [HardenPredictions(experiment=experiment) for experiment in trained]
    return Evaluate(experiments=[*trained, *hardened])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default="storage/pipeline", help="cache directory (default: storage/pipeline)")
    parser.add_argument("--backend", default=None, help="runner backend name (default: the platform default)")
    parser.add_argument("--workers", type=int, default=None, help="the most tasks running at once")
    arguments = parser.parse_args()

    data = load_datasets()
    lab = labtech.Lab(
        storage=arguments.storage,
        context={"DATASETS": data},
        runner_backend=arguments.backend,
        max_workers=arguments.workers,
    )
    evaluation = lab.run_task(build_evaluation(list(data)))

    print(format_table(evaluation))


def describe(experiment: ExperimentTask) -> tuple[str, str, str]:
    """(classifier, dataset, predictions) for one row of the evaluation table."""
    hardened = isinstance(experiment, HardenPredictions)
    trained = experiment.experiment if hardened else experiment
    factory = trained.classifier_task
    classifier = (
        f"random forest, {factory.n_estimators} trees" if isinstance(factory, RandomForestFactory) else "logistic regression"
    )
    return classifier, trained.dataset_key, "hardened" if hardened else "probabilities"


def format_table(evaluation: dict[ExperimentTask, float]) -> str:
    """The evaluation as an aligned text table, one experiment per line."""
    header = ("classifier", "dataset", "predictions", "log loss")
    rows = [(*describe(experiment), f"{loss:.3f}") for experiment, loss in evaluation.items()]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(width) if column < 3 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=False))
        )
        for row in [header, *rows]
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
