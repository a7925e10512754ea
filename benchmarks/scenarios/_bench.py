"""Helpers shared by the scenario scripts: argument parsing, memory sampling, result output.

A scenario prints exactly one line starting with ``BENCH_RESULT `` followed by a JSON object:

    {"library": {...}, "metrics": {name: number}, "info": {name: value}}

``metrics`` are compared between the libraries by benchmarks/run.py (median, min-max, ratio);
``info`` is recorded in results.json only (sanity checks, set-up times, counts).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from typing import Any

import psutil

RESULT_PREFIX = "BENCH_RESULT "
MB = 1024 * 1024


def argument_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--storage", required=True, help="empty directory in which this run may create its storage")
    parser.add_argument("--max-workers", type=int, default=2)
    return parser


def library_info() -> dict[str, Any]:
    """Which library ``import labtech`` resolved to (the runner checks it is the intended one)."""
    import labtech

    impl = "labtech_nb" if labtech.Lab.__module__.startswith("labtech_nb") else "labtech"
    return {"impl": impl, "version": labtech.__version__, "module": labtech.__file__}


def emit(metrics: dict[str, float], info: dict[str, Any] | None = None, *, library: bool = True) -> None:
    payload = {
        "library": library_info() if library else {"impl": None},
        "python": sys.version.split()[0],
        "metrics": metrics,
        "info": info or {},
    }
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(payload), flush=True)


def maxrss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak RSS from getrusage (Linux reports KiB). RUSAGE_CHILDREN: the largest waited-for descendant."""
    return resource.getrusage(who).ru_maxrss / 1024


class MemorySampler:
    """Samples the RSS of this process and of all its descendants (the workers) in a thread.

    Peaks are kept per phase: ``phase()`` returns the peaks since the previous call and starts anew.
    - parent_rss: this process's RSS.
    - worker_rss: the largest RSS of any single descendant. After fork, pages shared with the
      parent count in the child's RSS too.
    - workers_uss: the sum of the descendants' USS (memory unique to them): what the workers really add.
    """

    def __init__(self, interval: float = 0.025) -> None:
        self.interval = interval
        self.proc = psutil.Process()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reset()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)

    def _reset(self) -> None:
        self.parent_rss = 0
        self.worker_rss = 0
        self.workers_uss = 0
        self.samples = 0

    def _sample(self) -> None:
        parent = self.proc.memory_info().rss
        worker_max = 0
        uss_total = 0
        try:
            children = self.proc.children(recursive=True)
        except psutil.Error:
            children = []
        for child in children:
            try:
                full = child.memory_full_info()
            except psutil.Error:
                continue
            worker_max = max(worker_max, full.rss)
            uss_total += full.uss
        with self._lock:
            self.parent_rss = max(self.parent_rss, parent)
            self.worker_rss = max(self.worker_rss, worker_max)
            self.workers_uss = max(self.workers_uss, uss_total)
            self.samples += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def phase(self) -> dict[str, float]:
        """Peaks (MiB) since the previous call, including one final sample taken now."""
        self._sample()
        with self._lock:
            peaks = {
                "parent_rss_mb": self.parent_rss / MB,
                "worker_rss_mb": self.worker_rss / MB,
                "workers_uss_mb": self.workers_uss / MB,
                "samples": self.samples,
            }
            self._reset()
        return peaks


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def count_entries(storage_dir: str) -> int:
    """Number of cache entry directories in a LocalStorage directory."""
    return sum(1 for entry in os.scandir(storage_dir) if entry.is_dir())


class FrontEndRecorder:
    """Stands in for a Jupyter kernel's comm channel: every widget message to the front end is
    counted and serialised to JSON (as a kernel would before sending it), then dropped.

    Only for labtech_nb runs: it needs the ``comm`` package, which ipywidgets uses to talk to the
    front end. ``install()`` makes every widget created afterwards send through it.
    """

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.by_type: dict[str, int] = {}

    def install(self) -> FrontEndRecorder:
        import comm

        recorder = self

        class RecordingComm(comm.DummyComm):
            def publish_msg(
                self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
            ) -> None:
                recorder.messages += 1
                recorder.by_type[msg_type] = recorder.by_type.get(msg_type, 0) + 1
                recorder.bytes += len(json.dumps({"data": data, "metadata": metadata}, default=str))
                recorder.bytes += sum(len(memoryview(buffer)) for buffer in buffers or ())

        comm.create_comm = lambda *args, **kwargs: RecordingComm(*args, **kwargs)
        return self

    def counts(self) -> dict[str, Any]:
        """Messages and bytes since the previous call, then starts counting anew."""
        counts = {"messages": self.messages, "bytes": self.bytes, "by_type": dict(self.by_type)}
        self.messages, self.bytes, self.by_type = 0, 0, {}
        return counts
