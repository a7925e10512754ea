"""Helpers of the reliability suite: killing at gates, inspecting storage directories, process trees."""

from __future__ import annotations

import collections
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

from tests.reliability.rel_tasks import RELEASE

REPO_ROOT = Path(__file__).resolve().parents[2]
#: What this session's reliability tests did (faults injected, inputs fuzzed, entries verified, peaks),
#: printed at the end of the run by ``conftest.py``.
FIGURES: collections.Counter[str] = collections.Counter()
LAB_PROCESS = Path(__file__).with_name("lab_process.py")


class KillAtGate(threading.Thread):
    """Waits for a gate announcement ``<stage>.<pid>`` in ``control`` and SIGKILLs that process.

    At the moment of the kill it records the hidden staging directories of ``storage_dir`` and the
    size of each file in them, which shows how far the entry's write had got. If no process reaches
    the gate within ``timeout`` seconds it opens the gate instead, so the run can end and the test fail.
    """

    def __init__(self, control: Path, stage: str, storage_dir: Path | None = None, timeout: float = 30.0) -> None:
        super().__init__(daemon=True)
        self.control = control
        self.stage = stage
        self.storage_dir = storage_dir
        self.timeout = timeout
        self.killed_pid: int | None = None
        self.staged_files: dict[str, int] = {}

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            found = list(self.control.glob(f"{self.stage}.*"))
            if found:
                pid = int(found[0].name.rsplit(".", 1)[1])
                if self.storage_dir is not None:
                    self.staged_files = staged_file_sizes(self.storage_dir)
                os.kill(pid, signal.SIGKILL)
                FIGURES["worker processes SIGKILLed at a gate"] += 1
                self.killed_pid = pid
                return
            time.sleep(0.002)
        (self.control / RELEASE).touch()


def staged_file_sizes(storage_dir: Path) -> dict[str, int]:
    """``{'<staging dir>/<file>': size}`` for every file in a hidden staging directory."""
    sizes = {}
    for staging in storage_dir.glob(".staging-*"):
        for file in staging.iterdir():
            try:
                sizes[f"{staging.name}/{file.name}"] = file.stat().st_size
            except FileNotFoundError:
                pass
    return sizes


def raw_names(storage_dir: Path) -> set[str]:
    """Every name in the storage directory (hidden ones included), except ``.gitignore``."""
    return {path.name for path in storage_dir.iterdir()} - {".gitignore"}


def entry_keys(storage_dir: Path) -> set[str]:
    """The visible entries: directories whose names are keys."""
    return {path.name for path in storage_dir.iterdir() if path.is_dir() and not path.name.startswith(".")}


def read_pickle_entry(storage_dir: Path, key: str) -> tuple[dict[str, Any], Any]:
    """Read a PickleCache entry the way labtech would: metadata JSON, then the pickled result.

    Raises if either file is missing, truncated or invalid.
    """
    metadata = json.loads((storage_dir / key / "metadata.json").read_text())
    assert metadata["cache_key"] == key, metadata
    assert metadata["cache"] == "PickleCache", metadata
    with open(storage_dir / key / "data.pickle", "rb") as data:
        value = pickle.load(data)
        assert data.read() == b"", f"trailing bytes after the pickle of {key}"
    FIGURES["cache entries read back and checked"] += 1
    return metadata, value


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(processes: Iterable[psutil.Process]) -> list[psutil.Process]:
    """The processes still running (zombies count as gone)."""
    result = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                result.append(process)
        except psutil.NoSuchProcess:
            pass
    return result


def wait_until_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` seconds for the processes to end; return the survivors."""
    deadline = time.monotonic() + timeout
    survivors = alive(processes)
    while survivors and time.monotonic() < deadline:
        time.sleep(0.02)
        survivors = alive(survivors)
    return survivors


def kill_processes(processes: Iterable[psutil.Process]) -> None:
    """SIGKILL each given process (by its own pid) and wait for it."""
    targets = alive(processes)
    for process in targets:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(targets, timeout=5)


class TreeWatch(threading.Thread):
    """Records every descendant of a process while it runs, so that none can outlive a test unnoticed."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.seen: dict[int, psutil.Process] = {}
        self._halt = threading.Event()
        self.start()

    def run(self) -> None:
        while not self._halt.is_set():
            self.snapshot()
            if not psutil.pid_exists(self.pid):
                return
            self._halt.wait(0.02)

    def snapshot(self) -> list[psutil.Process]:
        current = descendants(self.pid)
        for process in current:
            self.seen.setdefault(process.pid, process)
        return current

    def stop(self) -> list[psutil.Process]:
        """Stop watching; return every descendant ever seen."""
        self._halt.set()
        self.join(timeout=5)
        return list(self.seen.values())


def lab_process(log_dir: Path, *args: str) -> tuple[subprocess.Popen[bytes], TreeWatch]:
    """Start ``lab_process.py`` with the given arguments in a fresh interpreter, watching its descendants.

    Its output goes to files in ``log_dir`` (not pipes: a surviving worker would hold a pipe open).
    """
    env = {**os.environ, "LABTECH_NB_PROGRESS": "off", "PYTHONPATH": str(REPO_ROOT)}
    log_dir.mkdir(parents=True, exist_ok=True)
    name = f"lab-{len(list(log_dir.glob('lab-*.out')))}"
    with open(log_dir / f"{name}.out", "wb") as out, open(log_dir / f"{name}.err", "wb") as err:
        process = subprocess.Popen(
            [sys.executable, str(LAB_PROCESS), *args], stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=REPO_ROOT
        )
    process.log_files = (log_dir / f"{name}.out", log_dir / f"{name}.err")  # type: ignore[attr-defined]
    return process, TreeWatch(process.pid)


def finish(process: subprocess.Popen[bytes], watch: TreeWatch, timeout: float) -> tuple[int, str, str, list[int]]:
    """Wait for a ``lab_process`` (killing it on timeout). Returns its exit code, its output, and the
    pids of descendants that outlived it (they are killed before returning)."""
    try:
        code = process.wait(timeout=timeout)
        note = ""
    except subprocess.TimeoutExpired:
        watch.snapshot()
        process.kill()
        process.wait()
        code, note = -9, f"\n[killed after {timeout} s]"
    # Helpers such as multiprocessing's resource tracker end a moment after the process they served.
    survivors = wait_until_gone(watch.stop(), 3.0)
    kill_processes(survivors)
    out_file, err_file = process.log_files  # type: ignore[attr-defined]
    return code, out_file.read_text(), err_file.read_text() + note, [survivor.pid for survivor in survivors]


def last_json_line(text: str) -> Any:
    for line in reversed(text.splitlines()):
        if line.startswith("{") or line.startswith("["):
            return json.loads(line)
    raise AssertionError(f"no JSON line in output:\n{text}")
