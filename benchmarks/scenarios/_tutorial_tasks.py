"""Task types of the ``tutorial`` scenario: the shape of the labtech tutorial's final pipeline.

Model specifications (not cached) feed one fit-and-predict task per model and data set; each
prediction feeds a task that keeps only its most likely class; one evaluation task scores every
prediction by log loss. The data sets reach the tasks through the lab's context. mlflow is not
used. The classes live in an importable module so that any backend can unpickle them.
"""

from __future__ import annotations

import labtech
import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.datasets import load_digits, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler

LOADERS = {"digits": load_digits, "iris": load_iris}


def load_datasets(names: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """The named scikit-learn toy data sets, features standardised: ``{name: {"X": ..., "y": ...}}``."""
    datasets = {}
    for name in names:
        features, labels = LOADERS[name](return_X_y=True)
        datasets[name] = {"X": StandardScaler().fit_transform(features), "y": labels}
    return datasets


@labtech.task(cache=None)
class RandomForestSpec:
    n_estimators: int

    def run(self) -> BaseEstimator:
        return RandomForestClassifier(n_estimators=self.n_estimators, random_state=42)


@labtech.task(cache=None)
class LogisticRegressionSpec:
    def run(self) -> BaseEstimator:
        return LogisticRegression(random_state=42)


@labtech.task
class FitAndPredict:
    model: RandomForestSpec | LogisticRegressionSpec
    dataset: str

    def run(self) -> np.ndarray:
        data = self.context["datasets"][self.dataset]
        estimator = clone(self.model.result)
        estimator.fit(data["X"], data["y"])
        return estimator.predict_proba(data["X"])


@labtech.task
class MostLikelyClass:
    prediction: FitAndPredict

    @property
    def dataset(self) -> str:
        return self.prediction.dataset

    def run(self) -> np.ndarray:
        probabilities = self.prediction.result
        one_hot = np.zeros_like(probabilities)
        one_hot[np.arange(len(probabilities)), probabilities.argmax(axis=1)] = 1.0
        return one_hot


@labtech.task
class Evaluation:
    predictions: list

    def run(self) -> list[float]:
        datasets = self.context["datasets"]
        return [float(log_loss(datasets[p.dataset]["y"], p.result)) for p in self.predictions]


def build_pipeline(estimators: int, datasets: list[str]) -> Evaluation:
    """The evaluation task over every prediction: logistic regression and random forests of
    1..estimators trees, fitted on each data set, and each fit's most-likely-class variant."""
    models = [LogisticRegressionSpec(), *(RandomForestSpec(n_estimators=n) for n in range(1, estimators + 1))]
    fits = [FitAndPredict(model=model, dataset=name) for name in datasets for model in models]
    return Evaluation(predictions=[*fits, *(MostLikelyClass(prediction=fit) for fit in fits)])
