"""Task types for the pool-worker tests: importable, so spawned workers find them too."""

from __future__ import annotations

import gc
import os
import time

import labtech_nb as labtech


class Held:
    """A result object whose live instances a task can count inside its worker."""

    def __init__(self, n: int) -> None:
        self.n = n


@labtech.task
class MakeHeld:
    n: int

    def run(self) -> Held:
        return Held(self.n)


@labtech.task
class CountHeld:
    after: MakeHeld

    def run(self) -> int:
        """How many `Held` results are alive in the worker that runs this task."""
        gc.collect()
        return sum(1 for value in gc.get_objects() if isinstance(value, Held))


@labtech.task
class AwaitGate:
    """Runs until the file ``gate`` exists, or ``seconds`` pass; returns whether the gate opened."""

    gate: str
    seconds: float

    def run(self) -> bool:
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            if os.path.exists(self.gate):
                return True
            time.sleep(0.01)
        return False
