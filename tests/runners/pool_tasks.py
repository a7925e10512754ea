"""Task types for the pool-worker tests: importable, so spawned workers find them too."""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any

import labtech_nb as labtech
from labtech_nb.cache import PickleCache


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


class RecordingLoadCache(PickleCache):
    """Records on which thread each cached result is loaded.

    With ``slow``, every load takes 20 ms, and each load after the first waits (up to 10 s) until a
    second load is under way beside it: loads done one after another fail.
    """

    def __init__(self, *, slow: bool) -> None:
        super().__init__()
        self.slow = slow
        self.load_threads: list[str] = []
        #: Loads that waited in vain for a second load beside them.
        self.lone_loads = 0
        self._side_by_side = threading.Barrier(2, timeout=10)

    def forget_loads(self) -> None:
        self.load_threads.clear()
        self.lone_loads = 0
        self._side_by_side.reset()

    def load_result(self, storage: Any, task: Any) -> Any:
        first = not self.load_threads
        self.load_threads.append(threading.current_thread().name)
        if self.slow:
            time.sleep(0.02)
            if not first:
                try:
                    self._side_by_side.wait()
                except threading.BrokenBarrierError:
                    self.lone_loads += 1
                    raise
        return super().load_result(storage, task)


@labtech.task(cache=RecordingLoadCache(slow=True))
class SlowLoad:
    n: int

    def run(self) -> int:
        return self.n * 2


@labtech.task(cache=RecordingLoadCache(slow=False))
class QuickLoad:
    n: int

    def run(self) -> int:
        return self.n * 3
