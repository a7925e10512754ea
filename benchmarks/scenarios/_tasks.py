"""Task types used by the scenarios.

They live in an importable module (not in a scenario's ``__main__``) so that every backend, spawn
included, can import them by name in both libraries.
"""

from __future__ import annotations

from typing import Any

import labtech
import numpy as np


def _array(mb: float, fill: float) -> np.ndarray:
    return np.full(int(mb * 1024 * 1024) // 8, fill, dtype=np.float64)


@labtech.task
class Trivial:
    i: int

    def run(self) -> int:
        return self.i


@labtech.task
class Source:
    mb: float

    def run(self) -> np.ndarray:
        return _array(self.mb, 1.0)


@labtech.task
class Dependent:
    source: Source
    i: int

    def run(self) -> float:
        array = self.source.result
        return float(array[self.i % len(array)]) + self.i


@labtech.task
class Big:
    i: int
    mb: float

    def run(self) -> np.ndarray:
        return _array(self.mb, float(self.i))


@labtech.task
class Listed:
    i: int

    def run(self) -> int:
        return self.i


# The load scenario's DAG: one shared dependency, chains of large intermediate results, many leaves.


@labtech.task
class LoadShared:
    """The one dependency every task of the load DAG shares, directly or through its chain."""

    mb: float

    def run(self) -> np.ndarray:
        return _array(self.mb, 1.0)


@labtech.task
class LoadLink:
    """A link of a chain: a fresh array (its pages touched) that only the next link uses."""

    chain: int
    link: int
    shared: LoadShared
    mb: float
    previous: Any = None

    def run(self) -> np.ndarray:
        base = float(self.previous.result[-1]) if self.previous is not None else 0.0
        return _array(self.mb, base + float(self.shared.result[0]))


@labtech.task
class LoadChainEnd:
    last: LoadLink

    def run(self) -> float:
        return float(self.last.result[-1])


@labtech.task
class LoadLeaf:
    i: int
    shared: LoadShared

    def run(self) -> int:
        return self.i + int(self.shared.result[0])
