"""Task types for the runner contract suite.

They live at module level and keep to picklable values, so that every runner backend (threads,
forked or spawned processes, Ray) can execute them. A task never talks to the test through shared
memory: it reports what it did through its result and through files written to the directory named
by the Lab context's ``marker_dir``.
"""

from __future__ import annotations

import hashlib
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import labtech_nb as labtech

# --- what tasks leave behind in the marker directory ----------------------------------------------


def marker_label(task: Any) -> str:
    """A file-name-safe label that is the same for equal tasks."""
    digest = hashlib.sha1(repr(task).encode()).hexdigest()[:16]
    return f"{type(task).__name__}-{digest}"


def record_execution(task: Any, marker_dir: str) -> None:
    """Leave one file per execution of ``task.run()``."""
    Path(marker_dir, f"run.{marker_label(task)}.{uuid.uuid4().hex}").touch()


def execution_count(marker_dir: Path, task: Any) -> int:
    """How many times ``run()`` of this task (or an equal one) executed."""
    return len(list(Path(marker_dir).glob(f"run.{marker_label(task)}.*")))


def record_interval(marker_dir: str, start: float, end: float) -> None:
    Path(marker_dir, f"interval.{uuid.uuid4().hex}").write_text(f"{start!r} {end!r}")


def read_intervals(marker_dir: Path) -> list[tuple[float, float]]:
    intervals = []
    for path in Path(marker_dir).glob("interval.*"):
        start, end = path.read_text().split()
        intervals.append((float(start), float(end)))
    return intervals


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an interval ending as another starts does not overlap)."""
    boundaries = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals], key=lambda b: (b[0], b[1]))
    open_count = peak = 0
    for _, change in boundaries:
        open_count += change
        peak = max(peak, open_count)
    return peak


# --- result values ----------------------------------------------------------------------------------


class Payload:
    """A result object that can be weakly referenced (ints and dicts cannot)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Payload) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"Payload({self.value})"


# --- task types -----------------------------------------------------------------------------------


@labtech.task
class Leaf:
    x: int

    def run(self) -> int:
        record_execution(self, self.context["marker_dir"])
        return self.x


@labtech.task
class Scale:
    source: Any
    factor: int

    def run(self) -> int:
        record_execution(self, self.context["marker_dir"])
        return self.source.result * self.factor


@labtech.task
class Add:
    left: Any
    right: Any

    def run(self) -> int:
        record_execution(self, self.context["marker_dir"])
        return self.left.result + self.right.result


@labtech.task
class Gather:
    """Depends on tasks held in a list, a dict, and a list inside a dict."""

    items: Any
    named: Any
    nested: Any

    def run(self) -> dict[str, Any]:
        record_execution(self, self.context["marker_dir"])
        return {
            "items": [item.result for item in self.items],
            "named": {name: item.result for name, item in self.named.items()},
            "nested": {name: [item.result for item in items] for name, items in self.nested.items()},
        }


#: How long a `GatedLeaf` waits for its gate before it fails.
GATE_TIMEOUT_SECONDS = 30


@labtech.task
class GatedLeaf:
    """Records that it started, then returns ``x`` once the file ``gate`` exists in the marker directory."""

    x: int

    def run(self) -> int:
        record_execution(self, self.context["marker_dir"])
        gate = Path(self.context["marker_dir"], "gate")
        deadline = time.monotonic() + GATE_TIMEOUT_SECONDS
        while not gate.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{gate} never appeared")
            time.sleep(0.005)
        return self.x


@labtech.task
class Fails:
    x: int

    def run(self) -> int:
        record_execution(self, self.context["marker_dir"])
        raise ValueError(f"boom {self.x}")


@labtech.task
class OutlivesFailure:
    """Runs until the task with the given marker label has started (or ``patience`` seconds pass), then a little longer."""

    watched_label: str
    patience: float

    def run(self) -> str:
        record_execution(self, self.context["marker_dir"])
        deadline = time.monotonic() + self.patience
        while not list(Path(self.context["marker_dir"]).glob(f"run.{self.watched_label}.*")) and time.monotonic() < deadline:
            time.sleep(0.01)
        # Still running while the failure is handled by the Lab.
        time.sleep(0.3)
        return "finished"


@labtech.task(max_parallel=2)
class Limited:
    i: int

    def run(self) -> int:
        start = time.monotonic()
        record_execution(self, self.context["marker_dir"])
        time.sleep(0.15)
        record_interval(self.context["marker_dir"], start, time.monotonic())
        return self.i


@labtech.task
class ContextReader:
    """Receives only the part of the Lab context its ``filter_context`` picks, using its parameter."""

    name: str

    def filter_context(self, context: dict[str, Any]) -> dict[str, Any]:
        return {"marker_dir": context["marker_dir"], "setting": context["settings"][self.name]}

    def run(self) -> dict[str, Any]:
        record_execution(self, self.context["marker_dir"])
        return dict(self.context)


@labtech.task
class Talker:
    """Writes to stdout, stderr and the labtech_nb logger."""

    n: int

    def run(self) -> int:
        print(f"out {self.n} a")
        print(f"err {self.n} a", file=sys.stderr)
        labtech.logger.info(f"log {self.n} a")
        print(f"out {self.n} b\nout {self.n} c")
        sys.stdout.write(f"partial {self.n}")
        return self.n


@labtech.task
class MakePayload:
    source: Any
    n: int

    def run(self) -> Payload:
        record_execution(self, self.context["marker_dir"])
        base = 0 if self.source is None else self.source.result.value
        return Payload(base + self.n)
