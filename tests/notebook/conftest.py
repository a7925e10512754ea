"""Shared fixtures of the notebook-layer tests: quiet progress, a recording comm, and leak checks."""

from __future__ import annotations

import collections
import time
from typing import Any

import comm
import psutil
import pytest
from comm import DummyComm

from labtech_nb.engine import run as run_module


class CommRecorder:
    """Counts every message widgets send to the front end (comm open, update, close)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def reset(self) -> None:
        self.counts.clear()


@pytest.fixture
def recording_comm(monkeypatch: pytest.MonkeyPatch) -> CommRecorder:
    """Replace ``comm.create_comm`` so every message of every widget created from now on is counted."""
    recorder = CommRecorder()

    class RecordingComm(DummyComm):
        def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any) -> None:
            recorder.counts[msg_type] += 1

    monkeypatch.setattr(comm, "create_comm", lambda *args, **kwargs: RecordingComm(*args, **kwargs))
    return recorder


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """No terminal progress bars from the runs of these tests (views under test are attached explicitly)."""
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    """Each test must end its runs (releasing their storage) and leave no child process behind."""
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    yield
    deadline = time.monotonic() + 10
    while True:
        with run_module._active_lock:
            busy = list(run_module._active_runs)
        new = [child for child in psutil.Process().children(recursive=True) if child.pid not in before and _alive(child)]
        if not busy and not new:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"test left runs using storage {busy} or child processes {new} behind")
        time.sleep(0.05)
