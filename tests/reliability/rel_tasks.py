"""Task types, storages and gates for the reliability suite.

Everything lives at module level so that every runner backend (forked, spawned or per-task
processes) can import it. Tasks never talk to a test through shared memory: they leave execution
markers in the directory named by the Lab context's ``marker_dir``, and they wait at *gates*: a
gate announces itself with a file ``<stage>.<pid>`` in its control directory and then blocks until
a ``release`` file appears there. A test can therefore kill a process at an exact point (in
``run()``, or halfway through writing its cache entry) without any sleep.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

import labtech_nb as labtech
from labtech_nb.cache import BaseCache
from labtech_nb.storage import LocalStorage

#: The longest a gate waits for its release before giving up (a safety net; tests release or kill).
GATE_TIMEOUT = 60.0
#: Bytes written to an entry before its gate blocks, so a kill at the gate leaves a partial file.
BLOB = b"\x5a" * (2 * 1024 * 1024)
RELEASE = "release"


# --- gates and markers ------------------------------------------------------------------------------


def wait_for_file(path: Path | str, timeout: float) -> bool:
    """Wait until ``path`` exists; return False if it did not appear within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def hold(control: str, stage: str) -> None:
    """Block at a gate: announce ``<stage>.<pid>`` and wait for ``release`` (no-op once released)."""
    release = os.path.join(control, RELEASE)
    if os.path.exists(release):
        return
    Path(control, f"{stage}.{os.getpid()}").touch()
    if not wait_for_file(release, GATE_TIMEOUT):
        raise RuntimeError(f"gate '{stage}' in {control} was never released")


def marker_label(task: Any) -> str:
    """A file-name-safe label, the same for equal tasks."""
    return f"{type(task).__name__}-{hashlib.sha1(repr(task).encode()).hexdigest()[:16]}"


def record_execution(task: Any) -> None:
    """Leave one marker file per execution of ``task.run()``."""
    Path(task.context["marker_dir"], f"run.{marker_label(task)}.{uuid.uuid4().hex}").touch()


def execution_count(marker_dir: Path | str, task: Any) -> int:
    """How many times ``run()`` of this task (or an equal one) executed with this marker directory."""
    return len(list(Path(marker_dir).glob(f"run.{marker_label(task)}.*")))


class Gate:
    """A value whose pickling blocks at the ``writing`` gate: put it last in a result to stop a cache
    write halfway (everything pickled before it is already in the file)."""

    def __init__(self, control: str) -> None:
        self.control = control

    def __reduce__(self) -> tuple[Any, ...]:
        hold(self.control, "writing")
        return (Gate, (self.control,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Gate)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "Gate()"


# --- task types for fault injection -----------------------------------------------------------------


@labtech.task
class Steady:
    """An ordinary task."""

    i: int

    def run(self) -> int:
        record_execution(self)
        return self.i * 10


@labtech.task
class Follow:
    """Depends on another task and reports the type of its result."""

    source: Any

    def run(self) -> str:
        record_execution(self)
        return f"followed {type(self.source.result).__name__}"


@labtech.task
class Victim:
    """Stops at a gate: in ``run()`` (stage ``'run'``) or halfway through pickling its result for the
    cache (stage ``'write'``, after 2 MiB are in the file)."""

    control: str
    stage: str

    def run(self) -> Any:
        record_execution(self)
        if self.stage == "run":
            hold(self.control, "running")
            return ("victim", 7)
        return ("victim", BLOB, Gate(self.control))


def victim_value(stage: str, control: str) -> Any:
    return ("victim", 7) if stage == "run" else ("victim", BLOB, Gate(control))


class TwoPartCache(BaseCache):
    """A custom cache writing two files; between them it stops at the ``writing`` gate."""

    KEY_PREFIX = "twopart__"

    def save_result(self, storage: Any, task: Any, result: Any) -> None:
        with storage.file_handle(task.cache_key, "part1.bin", mode="wb") as part:
            part.write(pickle.dumps(result[0]) + BLOB)
        hold(task.control, "writing")
        with storage.file_handle(task.cache_key, "part2.bin", mode="wb") as part:
            part.write(pickle.dumps(result[1]))

    def load_result(self, storage: Any, task: Any) -> Any:
        with storage.file_handle(task.cache_key, "part1.bin", mode="rb") as part:
            first = pickle.loads(part.read()[: -len(BLOB)])
        with storage.file_handle(task.cache_key, "part2.bin", mode="rb") as part:
            second = pickle.loads(part.read())
        return (first, second)


@labtech.task(cache=TwoPartCache())
class CustomVictim:
    """Cached by `TwoPartCache`, which stops at the gate between its two files."""

    control: str

    def run(self) -> tuple[str, int]:
        record_execution(self)
        return ("custom", 11)


@labtech.task
class Chunk:
    """For the parent-death scenario: ``quick`` returns at once, ``hold-run`` waits at the running gate,
    ``hold-write`` waits halfway through writing its entry."""

    i: int
    control: str
    mode: str = "quick"

    def run(self) -> Any:
        record_execution(self)
        if self.mode == "hold-run":
            hold(self.control, "running")
        if self.mode == "hold-write":
            return (self.i, BLOB, Gate(self.control))
        return (self.i, len(BLOB))


@labtech.task
class Heavy:
    """Returns about 1 MiB, so a write can fail halfway."""

    i: int

    def run(self) -> bytes:
        record_execution(self)
        return bytes([self.i % 256]) * (1024 * 1024)


@labtech.task
class Cell:
    """For concurrent writers: a deterministic 256 KiB result."""

    i: int

    def run(self) -> dict[str, Any]:
        record_execution(self)
        return cell_value(self.i)


def cell_value(i: int) -> dict[str, Any]:
    return {"i": i, "square": i * i, "blob": bytes([i % 251]) * (256 * 1024)}


# --- storages whose disk fills up halfway through a write --------------------------------------------


class _FullDiskFile:
    """Writes through to ``handle`` until ``limit`` bytes, then fails like a full disk."""

    def __init__(self, handle: Any, limit: int) -> None:
        self._handle = handle
        self._limit = limit
        self._written = 0

    def write(self, data: Any) -> int:
        size = len(memoryview(data).cast("B"))
        room = self._limit - self._written
        if size > room:
            self._handle.write(memoryview(data).cast("B")[: max(room, 0)])
            self._handle.flush()
            self._written = self._limit
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._written += size
        return int(self._handle.write(data))

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> _FullDiskFile:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


class FullDiskLocalStorage(LocalStorage):
    """A storage written for labtech's contract (it overrides ``file_handle``): writing one file of
    one key fails with ENOSPC after ``full_after`` bytes."""

    full_key = ""
    full_filename = "data.pickle"
    full_after = 64 * 1024

    def file_handle(self, key: str, filename: str, *, mode: str = "r") -> Any:
        handle = super().file_handle(key, filename, mode=mode)
        if key == self.full_key and filename == self.full_filename and "w" in mode:
            return _FullDiskFile(handle, self.full_after)
        return handle


class _FullDiskWriter:
    def __init__(self, writer: Any, filename: str, limit: int) -> None:
        self._writer = writer
        self._filename = filename
        self._limit = limit

    def file_handle(self, filename: str, *, mode: str = "wb") -> Any:
        handle = self._writer.file_handle(filename, mode=mode)
        return _FullDiskFile(handle, self._limit) if filename == self._filename else handle

    def commit(self) -> None:
        self._writer.commit()

    def abort(self) -> None:
        self._writer.abort()


class FullDiskStagedStorage(LocalStorage):
    """A plain `LocalStorage` (staged writes) whose staged write of one file of one key fails with ENOSPC."""

    full_key = ""
    full_filename = "data.pickle"
    full_after = 64 * 1024

    def begin_write(self, key: str) -> Any:
        writer = super().begin_write(key)
        return _FullDiskWriter(writer, self.full_filename, self.full_after) if key == self.full_key else writer


# --- large results -----------------------------------------------------------------------------------

MIB_FLOATS = 131072  # float64 values in one MiB


@labtech.task
class SharedArray:
    """The one dependency every task of the load DAG shares."""

    mib: int

    def run(self) -> np.ndarray:
        return np.full(self.mib * MIB_FLOATS, 1.0)


@labtech.task
class Intermediate:
    """A link of a chain: a fresh array (pages touched) that only the next link uses."""

    chain: int
    link: int
    shared: SharedArray
    previous: Any = None
    mib: int = 5

    def run(self) -> np.ndarray:
        base = float(self.previous.result[-1]) if self.previous is not None else 0.0
        return np.full(self.mib * MIB_FLOATS, base + self.shared.result[0])


@labtech.task
class ChainEnd:
    last: Intermediate

    def run(self) -> float:
        return float(self.last.result[-1])


@labtech.task
class Trivial:
    i: int
    shared: SharedArray

    def run(self) -> int:
        return self.i + int(self.shared.result[0])


@labtech.task(cache=None)
class GatedArray:
    """Returns a large array once its gate opens (it announces itself as ``running`` first)."""

    control: str
    mib: int

    def run(self) -> np.ndarray:
        Path(self.control, f"started.{os.getpid()}").touch()
        if not wait_for_file(os.path.join(self.control, "open"), GATE_TIMEOUT):
            raise RuntimeError("gate never opened")
        return np.full(self.mib * MIB_FLOATS, 2.0)


@labtech.task(cache=None)
class SumArray:
    data: SharedArray

    def run(self) -> float:
        return float(self.data.result.sum())


@labtech.task
class Link:
    """One link of a long chain of dependent tasks."""

    n: int
    previous: Any = None

    def run(self) -> int:
        return (self.previous.result if self.previous is not None else 0) + 1
