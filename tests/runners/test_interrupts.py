"""Ctrl-C while a lab runs in a real process: the first stops new tasks and lets running ones finish
and cache; the second terminates them. Either way no worker process is left behind and no entry is
half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import labtech_nb as labtech

    MARKERS = sys.argv[2]

    @labtech.task
    class Slow:
        i: int

        def run(self):
            open(os.path.join(MARKERS, f"started-{self.i}"), "w").close()
            time.sleep(float(os.environ["TASK_SECONDS"]))
            return self.i

    if __name__ == "__main__":
        lab = labtech.Lab(storage=sys.argv[1], runner_backend=sys.argv[3], max_workers=2)
        try:
            lab.run_tasks([Slow(i=i) for i in range(6)])
        except KeyboardInterrupt:
            print("KeyboardInterrupt reached the caller", flush=True)
            sys.exit(130)
    """
)


def _start(tmp_path: Path, backend: str, task_seconds: float) -> tuple[subprocess.Popen[str], Path, Path]:
    script = tmp_path / "interrupt_lab.py"
    script.write_text(SCRIPT)
    storage, markers = tmp_path / "storage", tmp_path / "markers"
    markers.mkdir()
    process = subprocess.Popen(
        [sys.executable, str(script), str(storage), str(markers), backend],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TASK_SECONDS": str(task_seconds)},
    )
    deadline = time.monotonic() + 30
    while len(list(markers.iterdir())) < 2:
        assert time.monotonic() < deadline, "tasks never started"
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        time.sleep(0.02)
    return process, storage, markers


def _descendants(process: subprocess.Popen[str]) -> list[psutil.Process]:
    try:
        return psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _entries(storage: Path) -> list[str]:
    return sorted(path.name for path in storage.iterdir() if not path.name.startswith("."))


@pytest.mark.parametrize("backend", ["fork", "spawn", "fork-per-task", "thread"])
def test_first_ctrl_c_finishes_running_tasks_then_raises(tmp_path, backend):
    process, storage, markers = _start(tmp_path, backend, task_seconds=1.5)
    children = _descendants(process)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)

    assert process.returncode == 130, output
    assert "Interrupted. Finishing running tasks. Press Ctrl-C again to terminate running tasks immediately" in output
    assert "KeyboardInterrupt reached the caller" in output
    started = sorted(path.name for path in markers.iterdir())
    assert len(started) == 2, started  # nothing new started after Ctrl-C
    # The two running tasks finished and were cached, completely.
    assert len(_entries(storage)) == 2
    for entry in _entries(storage):
        assert {path.name for path in (storage / entry).iterdir()} == {"metadata.json", "data.pickle"}
    psutil.wait_procs(children, timeout=5)
    assert not [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("backend", ["fork", "spawn", "fork-per-task"])
def test_second_ctrl_c_terminates_running_tasks(tmp_path, backend):
    process, storage, _markers = _start(tmp_path, backend, task_seconds=30)
    children = _descendants(process)
    assert children, "the process backends run tasks in child processes"
    process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    output, _ = process.communicate(timeout=30)

    assert time.monotonic() - started < 15, "running tasks were not terminated"
    assert "Terminating running tasks." in output
    assert process.returncode == 130, output
    assert _entries(storage) == []  # nothing half-written is visible as an entry
    psutil.wait_procs(children, timeout=5)
    assert not [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
