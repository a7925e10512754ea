"""Stopping a run on Ray: Ctrl-C in a lab process, and `BackgroundRun.cancel()` / the Stop button.

The first stop hands Ray no new task and cancels those Ray has not started, while running tasks
finish and cache; the second force-cancels the running ones, which kills their Ray workers. The
`Beating` tasks leave their worker's pid and a heartbeat in a markers directory and run until the
test opens their gate, so every step waits on a file rather than on time. A killed worker shows on
the Ray side as its pid being gone while the driver is still connected (so it is not the end of the
driver's job that stopped it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import labtech_nb as labtech
from labtech_nb.engine.background import BackgroundRun
from labtech_nb.exceptions import LabError
from labtech_nb.notebook.dashboard import RunControl

from .ray_tasks import Beating

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Bound on every wait (the tasks themselves give up after `ray_tasks.GATE_TIMEOUT_SECONDS`).
TIMEOUT = 20.0
#: Bound on the wait for the first tasks to start: Ray may first have to start worker processes.
START_TIMEOUT = 30.0


def wait_until(condition: Callable[[], Any], message: str, timeout: float = TIMEOUT) -> None:
    """Poll ``condition()`` until true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.01)


class Markers:
    """The gate the `Beating` tasks wait for and the files they leave; the gate opens at the latest at teardown."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory / "markers"
        self.directory.mkdir()
        self.gate = directory / "gate"

    def task(self, i: int, cpus: int = 1) -> Beating:
        return Beating(i=i, gate=str(self.gate), markers=str(self.directory), cpus=cpus)

    def open_gate(self) -> None:
        self.gate.touch()

    def started(self) -> dict[int, int]:
        """``{i: pid of the Ray worker}`` for every task that started."""
        return {int(path.name.split("-")[1]): int(path.read_text()) for path in self.directory.glob("started-*")}

    def finished(self) -> list[int]:
        return sorted(int(path.name.split("-")[1]) for path in self.directory.glob("finished-*"))

    def beats(self, i: int) -> int:
        path = self.directory / f"beat-{i}"
        return int(path.read_text()) if path.exists() else 0


@pytest.fixture
def markers(tmp_path: Path) -> Iterator[Markers]:
    opened = Markers(tmp_path)
    yield opened
    opened.open_gate()  # lets anything a failed test left running end


def entries(storage: Path) -> list[str]:
    """The cache entries in a storage directory (staging directories are hidden)."""
    return sorted(path.name for path in storage.iterdir() if not path.name.startswith(".")) if storage.exists() else []


def assert_complete(storage: Path) -> None:
    for entry in entries(storage):
        assert {path.name for path in (storage / entry).iterdir()} == {"metadata.json", "data.pickle"}


def wait_gone(pids: list[int], message: str, timeout: float = 10.0) -> None:
    """Wait until no process has one of ``pids`` (Ray workers are not our children: poll)."""
    wait_until(lambda: not any(psutil.pid_exists(pid) for pid in pids), message, timeout=timeout)


# --- Ctrl-C in a lab process ----------------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path

    import ray

    import labtech_nb as labtech
    from tests.distributed.ray_tasks import Beating

    address, storage, markers, gate, release = sys.argv[1:]
    ray.init(address=address, log_to_driver=False)
    lab = labtech.Lab(storage=storage, runner_backend="ray")
    try:
        lab.run_tasks([Beating(i=i, gate=gate, markers=markers) for i in range(4)])
    except KeyboardInterrupt:
        print("KeyboardInterrupt reached the caller", flush=True)
        # Stay connected (so the job's workers live on unless cancelled) until the test has looked.
        deadline = time.monotonic() + 20
        while not Path(release).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        sys.exit(130)
    print("the run was never interrupted", flush=True)
    """
)


class LabProcess:
    """A lab process running four `Beating` tasks on the session's Ray cluster, as a separate driver."""

    def __init__(self, tmp_path: Path, markers: Markers, address: str) -> None:
        script = tmp_path / "ray_interrupt_lab.py"
        script.write_text(SCRIPT)
        self.storage = tmp_path / "storage"
        self.release = tmp_path / "release"
        self.output = tmp_path / "output.txt"
        self.markers = markers
        with self.output.open("w") as output:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    str(script),
                    address,
                    str(self.storage),
                    str(markers.directory),
                    str(markers.gate),
                    str(self.release),
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "LABTECH_NB_PROGRESS": "off"},
            )

    def text(self) -> str:
        return self.output.read_text()

    def wait_for_output(self, text: str, message: str) -> None:
        wait_until(lambda: text in self.text() or self.process.poll() is not None, message)
        assert text in self.text(), f"{message}:\n{self.text()}"

    def wait_for_tasks(self, count: int) -> dict[int, int]:
        wait_until(
            lambda: len(self.markers.started()) >= count or self.process.poll() is not None,
            "the tasks never started",
            timeout=START_TIMEOUT,
        )
        assert self.process.poll() is None, self.text()
        return self.markers.started()

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def finish(self) -> int:
        """Let the process exit after its KeyboardInterrupt; its return code."""
        self.release.touch()
        return self.process.wait(timeout=TIMEOUT)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=TIMEOUT)


@pytest.fixture
def lab_process(ray_cluster: Any, tmp_path: Path, markers: Markers) -> Iterator[LabProcess]:
    process = LabProcess(tmp_path, markers, ray_cluster.get_runtime_context().gcs_address)
    try:
        yield process
    finally:
        process.kill()


def test_first_ctrl_c_lets_running_ray_tasks_finish_and_cache(lab_process: LabProcess, markers: Markers) -> None:
    workers = lab_process.wait_for_tasks(2)
    assert sorted(workers) == [0, 1], "the lab hands Ray only as many tasks as the cluster has CPUs"
    lab_process.interrupt()
    lab_process.wait_for_output("Interrupted. Finishing running tasks.", "the lab never acknowledged the Ctrl-C")
    # The running tasks were not interrupted: they still beat.
    beats = {i: markers.beats(i) for i in workers}
    wait_until(lambda: all(markers.beats(i) > beats[i] + 2 for i in workers), "a running task stopped at the first Ctrl-C")
    markers.open_gate()
    lab_process.wait_for_output("KeyboardInterrupt reached the caller", "KeyboardInterrupt never reached the caller")

    assert markers.finished() == [0, 1]
    assert sorted(markers.started()) == [0, 1], "no task may start after Ctrl-C"
    assert len(entries(lab_process.storage)) == 2
    assert_complete(lab_process.storage)
    assert lab_process.finish() == 130
    assert "Terminating" not in lab_process.text()
    assert sorted(markers.started()) == [0, 1]
    # The driver's job ended with it: Ray stops its workers.
    wait_gone(list(workers.values()), "the lab process's Ray workers outlived it")


def test_second_ctrl_c_cancels_running_ray_tasks(lab_process: LabProcess, markers: Markers) -> None:
    workers = lab_process.wait_for_tasks(2)
    lab_process.interrupt()
    lab_process.wait_for_output("Interrupted. Finishing running tasks.", "the lab never acknowledged the Ctrl-C")
    interrupted = time.monotonic()
    lab_process.interrupt()
    lab_process.wait_for_output("KeyboardInterrupt reached the caller", "KeyboardInterrupt never reached the caller")
    assert time.monotonic() - interrupted < 10, "the second Ctrl-C must not wait for the running tasks"

    # The lab process is still connected, so its job is alive: only the cancellation can have killed
    # the workers. Once they are gone, the tasks beat no more.
    wait_gone(list(workers.values()), "the running Ray tasks were not cancelled")
    beats = {i: markers.beats(i) for i in workers}
    assert all(count > 0 for count in beats.values())
    assert markers.finished() == []
    assert sorted(markers.started()) == [0, 1]
    assert entries(lab_process.storage) == [], "nothing half-written may show as an entry"
    assert lab_process.finish() == 130
    assert {i: markers.beats(i) for i in workers} == beats


# --- the Stop button and BackgroundRun.cancel() ----------------------------------------------------


def control_of(handle: BackgroundRun) -> RunControl:
    handle._repr_mimebundle_()
    control = handle._control  # type: ignore[attr-defined]
    assert isinstance(control, RunControl)
    return control


@pytest.mark.parametrize("how", ["button", "cancel"])
def test_first_stop_cancels_what_ray_has_not_started(
    ray_cluster: Any,
    tmp_path: Path,
    markers: Markers,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    lab = labtech.Lab(storage=tmp_path / "storage", runner_backend="ray")
    # On 2 CPUs, one of these runs and the other waits on the cluster for CPUs.
    tasks = {0: markers.task(0), 1: markers.task(1, cpus=2)}
    handle = lab.run_tasks_in_background(list(tasks.values()))
    control = control_of(handle)
    wait_until(lambda: markers.started(), "no task started", timeout=START_TIMEOUT)
    # Stop at once: the driver may not have heard that the task started yet.
    if how == "button":
        control.stop_button.click()
        assert control.stop_button.description == "Terminate"
    else:
        handle.cancel()
    assert handle.stop_requests == 1
    (running,) = markers.started()
    beats = markers.beats(running)
    wait_until(lambda: markers.beats(running) > beats + 2, "the running task stopped at the first stop")
    assert not handle.done, "the running task must be allowed to finish"
    # The run reacts to the stop in its own thread. Only once it has (and cancelled the waiting task)
    # may the running task finish: finishing frees the CPUs the waiting task is queued for.
    wait_until(lambda: "Stop requested." in caplog.text, "the run never handled the stop")
    markers.open_gate()

    with pytest.raises(LabError, match=r"Run stopped before completing 1 submitted task\(s\)") as raised:
        handle.wait(TIMEOUT)
    assert raised.value.results == {tasks[running]: 10 * running}
    assert handle.failures == {}
    assert handle.state == "interrupted"
    assert list(markers.started()) == [running], "the task waiting for CPUs must never start"
    assert markers.finished() == [running]
    assert [lab.is_cached(task) for task in tasks.values()] == [i == running for i in tasks]
    assert_complete(tmp_path / "storage")
    wait_until(lambda: control.status.value.startswith("Run ended"), "the control never showed the end")
    assert control.stop_button.disabled


@pytest.mark.parametrize("how", ["button", "force"])
def test_second_stop_cancels_running_ray_tasks(
    ray_cluster: Any, tmp_path: Path, markers: Markers, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    lab = labtech.Lab(storage=tmp_path / "storage", runner_backend="ray")
    tasks = [markers.task(i) for i in range(3)]
    handle = lab.run_tasks_in_background(tasks)
    control = control_of(handle)
    wait_until(lambda: len(markers.started()) == 2, "the first tasks never started", timeout=START_TIMEOUT)
    workers = markers.started()
    wait_until(lambda: handle.progress.totals.running == 2, "the dashboard never showed the running tasks")

    stopped = time.monotonic()
    if how == "button":
        control.stop_button.click()
        control.stop_button.click()
        assert control.stop_button.disabled
        assert control.status.value == "Terminating running tasks."
    else:
        handle.cancel(force=True)
    with pytest.raises(LabError, match=r"Run stopped before completing 3 submitted task\(s\)") as raised:
        handle.wait(TIMEOUT)
    assert time.monotonic() - stopped < 10, "terminating must not wait for the running tasks"

    # This process is the driver, still connected: only the cancellation can have killed the workers.
    wait_gone(list(workers.values()), "the running Ray tasks were not cancelled")
    beats = {i: markers.beats(i) for i in workers}
    assert all(count > 0 for count in beats.values())
    assert raised.value.results == {}
    assert handle.failures == {}, "terminated tasks are not failures"
    assert handle.state == "interrupted"
    assert sorted(markers.started()) == [0, 1]
    assert markers.finished() == []
    assert not any(lab.is_cached(task) for task in tasks)
    assert entries(tmp_path / "storage") == []
    wait_until(lambda: control.status.value.startswith("Run ended: interrupted"), "the control never showed the end")
    assert {i: markers.beats(i) for i in workers} == beats
