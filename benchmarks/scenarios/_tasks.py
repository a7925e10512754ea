"""Task types used by the scenarios.

They live in an importable module (not in a scenario's ``__main__``) so that every backend, spawn
included, can import them by name in both libraries.
"""

from __future__ import annotations

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
