"""Task types for the Ray tests (importable by Ray workers)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

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


#: The longest a `Beating` task waits for its gate (keeps a broken test bounded).
GATE_TIMEOUT_SECONDS = 30.0


def _write_atomically(path: Path, text: str) -> None:
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(text)
    os.replace(staged, path)


@labtech.task
class Beating:
    """Leaves ``started-<i>`` (holding its worker's pid) in ``markers``, then beats until ``gate`` exists.

    While it runs, it rewrites ``beat-<i>`` with a growing count every 20 ms; once the gate file
    exists it leaves ``finished-<i>`` and returns ``10 * i``. ``cpus`` is the number of CPUs it asks
    Ray for.
    """

    i: int
    gate: str
    markers: str
    cpus: int = 1

    def runner_options(self) -> dict[str, Any]:
        return {"ray": {"remote_options": {"num_cpus": self.cpus}}}

    def run(self) -> int:
        markers = Path(self.markers)
        _write_atomically(markers / f"started-{self.i}", str(os.getpid()))
        deadline = time.monotonic() + GATE_TIMEOUT_SECONDS
        beats = 0
        while not Path(self.gate).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"gate {self.gate} never opened")
            beats += 1
            _write_atomically(markers / f"beat-{self.i}", str(beats))
            time.sleep(0.02)
        (markers / f"finished-{self.i}").touch()
        return 10 * self.i
