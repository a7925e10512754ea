"""Task types for the Ray tests (importable by Ray workers)."""

from __future__ import annotations

import numpy as np

import labtech_nb as labtech


@labtech.task
class Matrix:
    size: int

    def run(self) -> np.ndarray:
        print(f"building a {self.size}x{self.size} matrix")
        return np.ones((self.size, self.size))


@labtech.task
class Trace:
    matrix: Matrix
    scale: int

    def run(self) -> float:
        for _ in labtech.progress(range(3), desc="steps"):
            pass
        labtech.logger.info(f"scaling by {self.scale}")
        return float(np.trace(self.matrix.result)) * self.scale


@labtech.task
class Explodes:
    x: int

    def run(self) -> int:
        raise RuntimeError(f"exploded {self.x}")


@labtech.task
class Dies:
    x: int

    def run(self) -> int:
        import os

        os._exit(3)
