"""Pool workers (fork and spawn): what travels through their pipes, and what they keep."""

from __future__ import annotations

import threading
import tracemalloc
from multiprocessing import Pipe
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import labtech_nb as labtech
from labtech_nb.engine.events import Event, TaskSucceeded
from labtech_nb.runners.process import ProcessRunner
from labtech_nb.runners.transfer import INLINE_LIMIT, decode, encode, receive_message, send_message
from tests.runners.pool_tasks import AwaitGate, CountHeld, MakeHeld
from tests.support.tasks import Number


@pytest.mark.parametrize("backend", ["fork", "spawn"])
def test_a_worker_keeps_only_results_a_pending_task_needs(backend: str, tmp_path: Path) -> None:
    makers = [MakeHeld(n=n) for n in range(6)]
    counter = CountHeld(after=makers[-1])
    lab = labtech.Lab(storage=tmp_path, runner_backend=backend, max_workers=1)

    results = lab.run_tasks([*makers, counter], disable_progress=True, disable_top=True)

    # Six results went through the single worker; only the one its next task reads is still there.
    assert [results[maker].n for maker in makers] == list(range(6))
    assert results[counter] == 1


@pytest.mark.parametrize("megabytes", [0, 1, 24])
def test_payloads_arrive_whole_and_writable_without_a_second_copy(megabytes: int) -> None:
    array = np.arange(megabytes * 1024 * 1024 // 8 + 3, dtype=np.float64)
    small = {"name": "x" * 100, "values": list(range(50))}
    receiver, sender = Pipe(duplex=True)
    payloads = [encode(array), encode(small)]
    assert (array.nbytes > INLINE_LIMIT) == (megabytes > 0)

    thread = threading.Thread(target=send_message, args=(sender, ("run", 7), payloads))
    thread.start()
    tracemalloc.start()
    try:
        header, received = receive_message(receiver)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        thread.join()
        receiver.close()
        sender.close()

    assert header == ("run", 7)
    got_array, got_small = decode(received[0]), decode(received[1])
    np.testing.assert_array_equal(got_array, array)
    assert got_small == small
    got_array[0] = -1.0  # the array uses the received buffer, which is writable
    if megabytes:
        assert peak < array.nbytes * 1.1, f"receiving {array.nbytes} bytes peaked at {peak} bytes"


@pytest.mark.parametrize("backend", ["fork", "spawn"])
def test_workers_start_only_when_a_task_must_run(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[int] = []
    start_worker = ProcessRunner._start_worker

    def counting_start(self: ProcessRunner, job: Any = None) -> Any:
        worker = start_worker(self, job)
        started.append(worker.process.pid)
        return worker

    monkeypatch.setattr(ProcessRunner, "_start_worker", counting_start)
    makers = [MakeHeld(n=n) for n in range(3)]
    lab = labtech.Lab(storage=tmp_path, runner_backend=backend, max_workers=4)

    lab.run_tasks(makers[:1], disable_progress=True, disable_top=True)
    assert len(started) == 4  # a task to run: the whole pool starts

    results = lab.run_tasks(makers[:1], disable_progress=True, disable_top=True)
    assert len(started) == 4  # everything cached: no worker at all
    assert results[makers[0]].n == 0

    lab.run_tasks(makers, disable_progress=True, disable_top=True)
    assert len(started) == 8


@pytest.mark.parametrize("backend", ["fork", "spawn"])
def test_quick_tasks_never_wait_behind_a_long_one_while_another_worker_is_free(backend: str, tmp_path: Path) -> None:
    # Quick tasks are handed to workers several at a time. The long task runs until every quick task has
    # finished (an observer then opens its gate): had quick tasks been queued behind it on its worker,
    # they could only finish after it, and it would give up waiting.
    gate = tmp_path / "gate"
    quick = [Number(value=n) for n in range(200)]
    long = AwaitGate(gate=str(gate), seconds=20.0)
    finished: list[Any] = []

    def open_gate_after_quick_tasks(event: Event) -> None:
        if isinstance(event, TaskSucceeded) and isinstance(event.task, Number):
            finished.append(event.task)
            if len(finished) == len(quick):
                gate.touch()

    lab = labtech.Lab(storage=tmp_path / "storage", runner_backend=backend, max_workers=2)
    results = lab.run_tasks(
        [*quick[:20], long, *quick[20:]], disable_progress=True, disable_top=True, observers=[open_gate_after_quick_tasks]
    )

    assert results[long] is True, "quick tasks waited for the long task to end"
    assert [results[task] for task in quick] == list(range(200))


@pytest.mark.parametrize("backend", ["serial", "thread", "fork", "spawn"])
def test_a_run_that_only_loads_cached_results_starts_no_sampler_thread(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []
    start = threading.Thread.start

    def recording_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", recording_start)
    lab = labtech.Lab(storage=tmp_path, runner_backend=backend, max_workers=2)

    lab.run_tasks([MakeHeld(n=1)], disable_progress=True, disable_top=True)
    assert "labtech_nb-sampler" in started  # a task ran: its CPU and memory are sampled

    started.clear()
    lab.run_tasks([MakeHeld(n=1)], disable_progress=True, disable_top=True)
    assert "labtech_nb-sampler" not in started
