"""Labs run in a fresh interpreter by the reliability tests (so a test can SIGKILL the parent, or run
two labs against one storage at the same time). The last line printed is a JSON summary.

    python lab_process.py parent-death STORAGE MARKERS CONTROL BACKEND
    python lab_process.py restart STORAGE MARKERS CONTROL BACKEND
    python lab_process.py concurrent STORAGE MARKERS GO_FILE FIRST LAST BACKEND
    python lab_process.py load LEAVES CHAINS LINKS BACKEND
    python lab_process.py transfer STORAGE CONTROL BACKEND
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import labtech_nb as labtech
from tests.reliability.rel_tasks import (
    Cell,
    ChainEnd,
    Chunk,
    GatedArray,
    Intermediate,
    SharedArray,
    SumArray,
    Trivial,
    wait_for_file,
)

QUIET = {"disable_progress": True, "disable_top": True}


def chunk_tasks(control: str) -> tuple[list[Any], list[Any]]:
    quick = [Chunk(i, control) for i in range(4)]
    later = [Chunk(4, control, "hold-run"), Chunk(5, control, "hold-write"), Chunk(6, control)]
    return quick, later


def summarize(value: Any) -> Any:
    return [value[0], len(value[1]) if isinstance(value[1], bytes) else value[1]]


def parent_death(storage: str, markers: str, control: str, backend: str) -> None:
    """Cache four tasks, then start three more (two stop at gates) and wait to be killed."""
    lab = labtech.Lab(storage=storage, runner_backend=backend, max_workers=2, context={"marker_dir": markers})
    quick, later = chunk_tasks(control)
    lab.run_tasks(quick, **QUIET)
    lab.run_tasks([*quick, *later], **QUIET)


def restart(storage: str, markers: str, control: str, backend: str) -> None:
    lab = labtech.Lab(storage=storage, runner_backend=backend, max_workers=2, context={"marker_dir": markers})
    quick, later = chunk_tasks(control)
    results = lab.run_tasks([*quick, *later], **QUIET)
    print(json.dumps({"results": [summarize(value) for value in results.values()]}), flush=True)


def concurrent(storage: str, markers: str, go_file: str, first: str, last: str, backend: str) -> None:
    """Wait for the go signal, run Cell(first..last), then run them again overwriting every entry."""
    lab = labtech.Lab(storage=storage, runner_backend=backend, max_workers=2, context={"marker_dir": markers})
    tasks = [Cell(i) for i in range(int(first), int(last) + 1)]
    Path(go_file + f".ready-{os.getpid()}").touch()
    if not wait_for_file(go_file, 60):
        raise SystemExit("no go signal")
    summary = {}
    for bust_cache in (False, True):
        results = lab.run_tasks(tasks, bust_cache=bust_cache, **QUIET)
        summary[str(bust_cache)] = sorted(value["i"] for value in results.values())
    print(json.dumps(summary), flush=True)


def load(leaves: str, chains: str, links: str, backend: str) -> None:
    """Run the load DAG with storage=None while a thread samples this process's peak RSS."""
    import psutil

    process = psutil.Process()
    peak = [process.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            stop.wait(0.002)

    shared = SharedArray(mib=20)
    ends = []
    for chain in range(int(chains)):
        previous = None
        for link in range(int(links)):
            previous = Intermediate(chain=chain, link=link, shared=shared, previous=previous)
        ends.append(ChainEnd(last=previous))
    tasks = [Trivial(i=i, shared=shared) for i in range(int(leaves))] + ends
    lab = labtech.Lab(storage=None, runner_backend=backend, max_workers=None if backend == "serial" else 2)
    sampler = threading.Thread(target=sample, daemon=True)
    baseline = process.memory_info().rss
    started = time.perf_counter()
    sampler.start()
    results = lab.run_tasks(tasks, **QUIET)
    stop.set()
    sampler.join()
    elapsed = time.perf_counter() - started
    trivial_ok = all(results[task] == task.i + 1 for task in tasks[: int(leaves)])
    print(
        json.dumps(
            {
                "tasks": len(lab.last_run.graph.nodes) if lab.last_run is not None else None,
                "peak_rss": peak[0],
                "baseline_rss": baseline,
                "seconds": elapsed,
                "trivial_ok": trivial_ok,
                "chain_ends": sorted({results[end] for end in ends}),
            }
        ),
        flush=True,
    )


def transfer(storage: str, control: str, backend: str) -> None:
    """One worker: a task returning 4 MiB runs while the next task, whose 4 MiB dependency the worker
    does not hold, becomes ready. The gate (letting the running task return its 4 MiB) opens as soon
    as the pool either starts sending that job to the busy worker (so both directions carry megabytes
    at once) or has dispatched without sending it (keeping it for an idle worker)."""
    import labtech_nb.runners.process as process_module

    lab = labtech.Lab(storage=storage, runner_backend="serial")
    lab.run_tasks([SharedArray(mib=4)], **QUIET)  # cached: loaded in the parent, then sent to the worker

    real_send = process_module.send_message
    real_dispatch = process_module.ProcessRunner._dispatch

    def open_gate() -> None:
        if wait_started(control):
            Path(control, "open").touch()

    def send_message(connection: Any, header: Any, payloads: Any = (), **kwargs: Any) -> None:
        if header[0] == "run" and payloads:
            open_gate()
        real_send(connection, header, payloads, **kwargs)

    def dispatch(self: Any) -> None:
        real_dispatch(self)
        if any(isinstance(job.task, SumArray) for job in self._queue):
            open_gate()

    process_module.send_message = send_message
    process_module.ProcessRunner._dispatch = dispatch
    lab = labtech.Lab(storage=storage, runner_backend=backend, max_workers=1)
    gated, consumer = GatedArray(control=control, mib=4), SumArray(data=SharedArray(mib=4))
    started = time.perf_counter()
    results = lab.run_tasks([gated, consumer], **QUIET)
    print(
        json.dumps({"sum": results[consumer], "gated": float(results[gated][0]), "seconds": time.perf_counter() - started}),
        flush=True,
    )


def wait_started(control: str) -> bool:
    """Wait until the gated task runs in its worker (so the next job is sent to a busy worker)."""
    deadline = time.monotonic() + 60
    while not list(Path(control).glob("started.*")):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


MODES = {"parent-death": parent_death, "restart": restart, "concurrent": concurrent, "load": load, "transfer": transfer}

if __name__ == "__main__":
    MODES[sys.argv[1]](*sys.argv[2:])
