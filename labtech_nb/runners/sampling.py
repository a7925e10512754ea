"""Sampling the CPU and memory of running tasks with psutil, at a bounded rate."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from labtech_nb.engine.events import Event, ResourceSample

#: How often the CPU and memory of running tasks are sampled.
SAMPLE_SECONDS = 1.0


class ResourceSampler:
    """A daemon thread that samples each active task's process (children included) once a second.

    The thread starts with the first task that runs (`ensure_started`): a run that only loads cached
    results never starts it.

    Args:
        active_tasks: returns ``(task_name, pid)`` for every running task.
        publish: receives a `ResourceSample` per running task and sample.
    """

    def __init__(self, active_tasks: Callable[[], list[tuple[str, int]]], publish: Callable[[Event], None]) -> None:
        self._active_tasks = active_tasks
        self.publish = publish
        self.latest: dict[str, tuple[float, int]] = {}
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def ensure_started(self) -> None:
        """Start sampling, unless it has started or been stopped already (thread-safe)."""
        if self._thread is not None:
            return
        # Imported here, not in the new thread: a process forked just after this must not inherit
        # an import that the thread was in the middle of (its module lock would never be released).
        import psutil  # noqa: F401

        with self._start_lock:
            if self._thread is None and not self._stopped.is_set():
                self._thread = threading.Thread(target=self._loop, name="labtech_nb-sampler", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Stop sampling (returns at once)."""
        self._stopped.set()

    def _loop(self) -> None:
        import psutil

        handles: dict[int, Any] = {}
        while not self._stopped.wait(SAMPLE_SECONDS):
            active = self._active_tasks()
            for task_name, pid in active:
                try:
                    handle = handles.get(pid)
                    if handle is None:
                        handle = handles[pid] = psutil.Process(pid)
                        handle.cpu_percent()  # the first reading only starts the measurement
                        continue
                    children = handle.children(recursive=True)
                    processes = [handle, *children]
                    cpu = sum(process.cpu_percent() for process in processes)
                    memory = [process.memory_info() for process in processes]
                    rss = sum(info.rss for info in memory)
                    vms = sum(info.vms for info in memory)
                    threads = handle.num_threads()
                except psutil.Error:
                    handles.pop(pid, None)
                    continue
                self.latest[task_name] = (cpu, rss)
                self.publish(ResourceSample(task_name, cpu, rss, vms_bytes=vms, children=len(children), threads=threads))
            live = {name for name, _ in active}
            for name in [name for name in self.latest if name not in live]:
                del self.latest[name]
