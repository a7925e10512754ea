"""Module-level task types for the notebook-layer tests (importable, so process backends can run them).

Tasks never share memory with the test: they wait on, and leave behind, files in directories the test
names through their parameters, so the same tasks work under threads and forked processes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import labtech_nb as labtech

#: The longest a gated task waits for its gate before giving up (keeps a broken test bounded).
GATE_TIMEOUT_SECONDS = 30.0


def wait_for_file(path: Path, timeout: float = GATE_TIMEOUT_SECONDS) -> bool:
    """Poll until ``path`` exists; False on timeout."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@labtech.task
class Gated:
    """Marks that it started, then waits until the file ``gate`` exists."""

    i: int
    gate: str
    markers: str

    def run(self) -> int:
        Path(self.markers, f"started-{self.i}").touch()
        if not wait_for_file(Path(self.gate)):
            raise TimeoutError(f"gate {self.gate} never opened")
        Path(self.markers, f"finished-{self.i}").touch()
        return self.i * 10


@labtech.task
class Sleeper:
    """Marks that it started, then sleeps ``seconds``."""

    i: int
    seconds: float
    markers: str

    def run(self) -> int:
        Path(self.markers, f"started-{self.i}").touch()
        time.sleep(self.seconds)
        Path(self.markers, f"finished-{self.i}").touch()
        return self.i


@labtech.task
class Chatty:
    """Prints to stdout and stderr, then returns."""

    i: int

    def run(self) -> int:
        print(f"chatty-out-{self.i}")
        print(f"chatty-err-{self.i}", file=sys.stderr)
        return self.i


@labtech.task
class Breaks:
    """Raises ValueError."""

    i: int

    def run(self) -> int:
        raise ValueError(f"broken-{self.i}")


@labtech.task
class Trivial:
    """Returns its parameter."""

    i: int

    def run(self) -> int:
        return self.i


def started(markers: Path) -> list[int]:
    """The ``i`` of every task that started, sorted."""
    return sorted(int(path.name.split("-", 1)[1]) for path in Path(markers).glob("started-*"))


def finished(markers: Path) -> list[int]:
    """The ``i`` of every task that finished, sorted."""
    return sorted(int(path.name.split("-", 1)[1]) for path in Path(markers).glob("finished-*"))


def wait_until(condition, timeout: float = 15.0, message: str = "condition never became true") -> None:  # type: ignore[no-untyped-def]
    """Poll ``condition()`` until true, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.01)
