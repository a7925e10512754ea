"""The process runners: ``'fork'`` and ``'spawn'`` pools, and ``'fork-per-task'``.

The parent talks to each worker over its own pipe: it sends a task together with the dependency
results that worker does not hold yet, and receives output lines, progress, the start of the task
and finally its result, all as they happen. A result travels as its pickled frames; the parent keeps
those frames and forwards them to other workers as they are, so a large result is pickled once.
No manager processes, proxies or sockets are involved.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from labtech_nb.engine.capture import task_context
from labtech_nb.engine.events import Event, TaskStarted
from labtech_nb.exceptions import RunnerError, TaskDiedError
from labtech_nb.runners.base import Runner, RunnerBackend, attach_traceback, run_or_load_task
from labtech_nb.runners.forking import FORK_LOCK
from labtech_nb.runners.loading import CachedLoads
from labtech_nb.runners.sampling import ResourceSampler
from labtech_nb.runners.transfer import INLINE_LIMIT, Payload, data_waiting, decode, encode, receive_message, send_message
from labtech_nb.runners.worker import forked_worker_main, prepare_worker_process, spawned_worker_main
from labtech_nb.storage.base import Storage
from labtech_nb.types import LabContext, ResultMeta, TaskResult

#: How many tasks a pool worker may hold at once (the running one included), by how long the last
#: task of each type it holds ran: tasks wait in its pipe behind short tasks only, so the worker never
#: sits idle for a round trip to the parent, and the parent handles the completions of very short
#: tasks in bursts. A worker holding a task of a type not seen to finish yet, or of a long-running
#: type, gets no other task until it is done: nothing waits behind a long task while a worker is free.
QUEUE_DEPTHS = ((0.002, 8), (0.1, 2))
#: The deepest a worker's queue gets.
MAX_JOBS_PER_WORKER = max(depth for _seconds, depth in QUEUE_DEPTHS)


class _Job:
    __slots__ = ("dependencies", "id", "keep", "start", "task", "task_name", "use_cache")

    def __init__(self, job_id: int, task: Any, task_name: str, use_cache: bool) -> None:
        self.id = job_id
        self.task = task
        self.task_name = task_name
        self.use_cache = use_cache
        self.start: datetime | None = None
        #: Whether the worker keeps the result for dependents it may run later.
        self.keep = True


class _StoredResult:
    """A result held by the parent: its decoded value and/or the frames it arrived as."""

    __slots__ = ("has_value", "meta", "payload", "value")

    def __init__(self, meta: ResultMeta, *, payload: Payload | None = None, value: Any = None, has_value: bool = False) -> None:
        self.meta = meta
        self.payload = payload
        self.value = value
        self.has_value = has_value

    def get_value(self) -> Any:
        if not self.has_value:
            assert self.payload is not None
            self.value = decode(self.payload)
            self.has_value = True
        return self.value

    def get_payload(self, by_value: bool) -> Payload:
        if self.payload is None:
            self.payload = encode(self.value, by_value=by_value)
        return self.payload


class _Worker:
    __slots__ = ("connection", "data_waiting", "held", "jobs", "paused", "pending_releases", "process")

    def __init__(self, process: Any, connection: Connection) -> None:
        self.process = process
        self.connection = connection
        self.data_waiting = data_waiting(connection)
        #: Jobs sent to this worker, oldest (the running one) first.
        self.jobs: deque[_Job] = deque()
        self.held: set[Any] = set()
        self.pending_releases: list[Any] = []
        #: The worker reported a failure and waits for "resume" before its next task.
        self.paused = False

    @property
    def job(self) -> _Job | None:
        """The job the worker is running."""
        return self.jobs[0] if self.jobs else None


def died_message(task: Any, exitcode: int | None) -> str:
    """Describe how a task's process ended, e.g. "killed by signal 9 (SIGKILL)"."""
    if exitcode is None:
        how = "its process ended unexpectedly"
    elif exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        how = f"its process was killed by signal {-exitcode} ({name})"
    else:
        how = f"its process exited with code {exitcode}"
    return f"Task '{task}' died: {how}."


class ProcessRunner(Runner):
    """Runs tasks in worker processes: a reused pool (fork or spawn), or one fork per task."""

    def __init__(
        self, *, context: LabContext, storage: Storage, max_workers: int, start_method: str, per_task: bool = False
    ) -> None:
        self.context = context
        self.storage = storage
        #: Where the parent loads cached results (the Lab's storage; workers may see it elsewhere).
        self.parent_storage = storage
        self.max_concurrency = max_workers
        self.per_task = per_task
        self.start_method = start_method
        self.by_value = start_method == "spawn"
        self._mp: Any = multiprocessing.get_context(start_method)
        self._queue: deque[_Job] = deque()
        self._workers: list[_Worker] = []
        self._results: dict[Any, _StoredResult] = {}
        self._completed: deque[tuple[Any, ResultMeta | BaseException]] = deque()
        self._next_job_id = 0
        #: How many tasks a worker may hold behind a task of each type (see `QUEUE_DEPTHS`).
        self._depth_behind: dict[type, int] = {}
        #: Polls the pipes of workers that have jobs (kept across waits, not rebuilt for each).
        self._poller = select.poll()
        self._watched: dict[int, _Worker] = {}
        self._publish: Any = lambda event: None
        self._result_needed: Callable[[Any], bool] = lambda task: True
        self._sampler = ResourceSampler(self._active_tasks, lambda event: self._publish(event))
        #: Cached results are loaded here, where they are needed first, not in a worker.
        self._loads = CachedLoads(self._load_in_parent, threads=max_workers)
        self._loads_watched = False

    @property
    def max_in_flight(self) -> int:
        """How many tasks the scheduler may hand over at once: enough to fill every worker's pipe."""
        return MAX_JOBS_PER_WORKER * self.max_concurrency

    def set_event_publisher(self, publish: Any) -> None:
        """Send events from workers (output, progress, resource samples) to ``publish``."""
        self._publish = publish

    def set_result_needed_hint(self, result_needed: Callable[[Any], bool]) -> None:
        """Learn which results dependents will read: a worker keeps no copy of the others."""
        self._result_needed = result_needed

    # --- workers --------------------------------------------------------------------------------

    def _start_worker(self, job: _Job | None = None) -> _Worker:
        parent_end, child_end = self._mp.Pipe(duplex=True)
        # No load may be under way on a thread during a fork: the child would inherit whatever locks it held.
        self._loads.wait_for_all()
        if job is not None:
            process = self._mp.Process(
                target=_run_one_forked_task, args=(child_end, job, self.context, self.storage, self._results), daemon=True
            )
        elif self.start_method == "fork":
            process = self._mp.Process(target=forked_worker_main, args=(child_end, self.context, self.storage), daemon=True)
        else:
            main = sys.modules.get("__main__")
            if main is not None and not hasattr(main, "__spec__"):
                # Terminal IPython's __main__ has no __spec__, which spawn's start-up data reads.
                main.__spec__ = None
            process = self._mp.Process(target=spawned_worker_main, args=(child_end,), daemon=True)
        with FORK_LOCK:
            process.start()
        child_end.close()
        worker = _Worker(process, parent_end)
        if job is None and self.start_method == "spawn":
            send_message(parent_end, ("init",), [encode((self.context, self.storage), by_value=True)], by_value=True)
        return worker

    def _dispatch(self) -> None:
        if self.per_task:
            while self._queue and len(self._workers) < self.max_concurrency:
                job = self._queue.popleft()
                for dependency in job.task._lt_dependencies():
                    stored = self._results.get(dependency)
                    if stored is not None:
                        stored.get_value()
                worker = self._start_worker(job)
                worker.jobs.append(job)
                self._workers.append(worker)
                self._announce_start(worker, job)
                self._sampler.ensure_started()
            return
        # The pool starts when the first task needs computing (a run that only loads cached results
        # starts none), all of it at once: a worker forked later would share whatever results the
        # parent gathered meanwhile, which shows in its memory use. A dead worker is replaced here too.
        if self._queue:
            while len(self._workers) < self.max_concurrency:
                self._workers.append(self._start_worker())
            # After the pool has forked: a thread running during a fork can leave a lock held in the child.
            self._sampler.ensure_started()
        allowed = {worker: self._allowed_jobs(worker) for worker in self._workers}
        for depth in range(1, MAX_JOBS_PER_WORKER + 1):
            if not self._queue:
                break
            available = [worker for worker in self._workers if len(worker.jobs) < min(depth, allowed[worker])]
            while self._queue and available:
                if depth > 1 and not self._needs_nothing_sent(self._queue[0], available):
                    # A busy worker may be sending a large result: never make the parent wait on a
                    # large send to it at the same time (both would block). Payloads go to idle workers.
                    break
                job = self._queue.popleft()
                worker = max(
                    available,
                    key=lambda candidate: sum(1 for dependency in job.task._lt_dependencies() if dependency in candidate.held),
                )
                available.remove(worker)
                allowed[worker] = min(allowed[worker], self._depth_behind.get(type(job.task), 1))
                self._send_job(worker, job)

    def _allowed_jobs(self, worker: _Worker) -> int:
        """How many tasks ``worker`` may hold, given the tasks it holds (see `QUEUE_DEPTHS`)."""
        allowed = MAX_JOBS_PER_WORKER
        for job in worker.jobs:
            allowed = min(allowed, self._depth_behind.get(type(job.task), 1))
        return allowed

    def _needs_nothing_sent(self, job: _Job, workers: list[_Worker]) -> bool:
        dependencies = job.task._lt_dependencies()
        if not dependencies:
            return True
        dependencies = [dependency for dependency in dependencies if dependency in self._results]
        return any(all(dependency in worker.held for dependency in dependencies) for worker in workers)

    def _send_job(self, worker: _Worker, job: _Job) -> None:
        dependencies, payloads = [], []
        for dependency in dict.fromkeys(job.task._lt_dependencies()):
            if dependency in worker.held:
                continue
            stored = self._results.get(dependency)
            if stored is None:
                continue
            dependencies.append((dependency, stored.meta))
            payloads.append(stored.get_payload(self.by_value))
            worker.held.add(dependency)
        releases, worker.pending_releases = worker.pending_releases, []
        job.keep = self._result_needed(job.task)
        worker.jobs.append(job)
        send_message(
            worker.connection,
            ("run", job.id, job.task, job.task_name, job.use_cache, job.keep, dependencies, releases),
            payloads,
            by_value=self.by_value,
        )
        if worker.jobs[0] is job:
            self._announce_start(worker, job)

    def _announce_start(self, worker: _Worker, job: _Job) -> None:
        job.start = datetime.now()
        self._publish(TaskStarted(job.task_name, "load" if job.use_cache else "run", job.start, worker.process.pid or 0))

    # --- the Runner contract --------------------------------------------------------------------

    def submit_task(self, task: Any, task_name: str, use_cache: bool) -> None:
        self._next_job_id += 1
        job = _Job(self._next_job_id, task, task_name, use_cache)
        if use_cache:
            outcome = self._loads.submit(task, task_name)
            if outcome is not None:
                self._completed.append(self._keep_loaded(*outcome))
        else:
            self._queue.append(job)

    def _load_in_parent(self, task: Any, task_name: str) -> TaskResult[Any]:
        try:
            with task_context(task_name, self._publish):
                return run_or_load_task(task, True, None, self.parent_storage)
        except Exception as error:
            attach_traceback(error)
            raise

    def _keep_loaded(self, task: Any, outcome: TaskResult[Any] | BaseException) -> tuple[Any, ResultMeta | BaseException]:
        if isinstance(outcome, BaseException):
            return task, outcome
        self._results[task] = _StoredResult(outcome.meta, value=outcome.value, has_value=True)
        return task, outcome.meta

    def wait(self, *, timeout_seconds: float | None) -> Iterator[tuple[Any, ResultMeta | BaseException]]:
        # The run has reacted to earlier failures (cancelling what it wanted to): workers may go on.
        for worker in self._workers:
            if worker.paused:
                worker.paused = False
                send_message(worker.connection, ("resume",))
                if worker.jobs:
                    self._announce_start(worker, worker.jobs[0])
        self._dispatch()
        while self._completed:
            yield self._completed.popleft()
        for task, outcome in self._loads.finished():
            yield self._keep_loaded(task, outcome)
        if not self._watch_busy_workers() and not self._loads.pending:
            return
        if not self._loads_watched and self._loads.wakeup_descriptor is not None:
            self._poller.register(self._loads.wakeup_descriptor, select.POLLIN)
            self._loads_watched = True
        timeout = None if timeout_seconds is None else max(0, int(timeout_seconds * 1000))
        for descriptor, _ in self._poller.poll(timeout):
            ready = self._watched.get(descriptor)
            if ready is not None:
                yield from self._read_worker(ready)
        for task, outcome in self._loads.finished():
            yield self._keep_loaded(task, outcome)
        self._dispatch()

    def _watch_busy_workers(self) -> bool:
        """Make the poller watch exactly the workers that have jobs; returns whether there are any."""
        busy = {worker.connection.fileno(): worker for worker in self._workers if worker.job is not None}
        for descriptor in [descriptor for descriptor in self._watched if descriptor not in busy]:
            self._poller.unregister(descriptor)
            del self._watched[descriptor]
        for descriptor, worker in busy.items():
            if self._watched.get(descriptor) is not worker:
                self._poller.register(descriptor, select.POLLIN)
                self._watched[descriptor] = worker
        return bool(busy)

    def _read_worker(self, worker: _Worker) -> Iterator[tuple[Any, ResultMeta | BaseException]]:
        while worker.job is not None:
            try:
                if not worker.data_waiting():
                    return
                header, payloads = receive_message(worker.connection)
            except (EOFError, OSError):
                yield self._worker_died(worker)
                return
            kind = header[0]
            if kind == "event":
                self._on_event(worker, header[1])
                continue
            job = worker.jobs.popleft()
            if kind == "cancelled":
                continue
            if kind == "done" and worker.jobs:
                self._announce_start(worker, worker.jobs[0])
            if kind == "done":
                self._note_speed(job, header[2], payloads[0])
                self._results[job.task] = _StoredResult(header[2], payload=payloads[0])
                if job.keep:
                    worker.held.add(job.task)
                yield job.task, header[2]
            else:
                worker.paused = not self.per_task
                yield job.task, header[2]
            if self.per_task:
                self._retire(worker)

    def _note_speed(self, job: _Job, meta: ResultMeta, payload: Payload) -> None:
        """Learn how many tasks may wait behind one of this task's type, from how long it ran."""
        allowed = 1
        if meta.duration is not None and sum(len(frame) for frame in payload) <= INLINE_LIMIT:
            seconds = meta.duration.total_seconds()
            allowed = next((depth for limit, depth in QUEUE_DEPTHS if seconds < limit), 1)
        self._depth_behind[type(job.task)] = allowed

    def _on_event(self, worker: _Worker, event: Event) -> None:
        self._publish(event)

    def _worker_died(self, worker: _Worker) -> tuple[Any, BaseException]:
        job = worker.jobs.popleft()
        # Tasks that were waiting in the dead worker's pipe never started: queue them again.
        self._queue.extendleft(reversed(worker.jobs))
        worker.jobs.clear()
        worker.process.join(timeout=5)
        error = TaskDiedError(died_message(job.task, worker.process.exitcode))
        attach_traceback(error)
        self._retire(worker)
        return job.task, error

    def _retire(self, worker: _Worker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        self._unwatch(worker)
        worker.connection.close()
        worker.process.join(timeout=5)

    def _unwatch(self, worker: _Worker) -> None:
        for descriptor, watched in list(self._watched.items()):
            if watched is worker:
                self._poller.unregister(descriptor)
                del self._watched[descriptor]

    def cancel(self) -> None:
        self._queue.clear()
        self._loads.cancel()
        for worker in self._workers:
            # A paused worker has started none of its jobs; otherwise the first one is running.
            waiting = [job.id for job in (worker.jobs if worker.paused else list(worker.jobs)[1:])]
            if waiting and not self.per_task:
                send_message(worker.connection, ("cancel", waiting))

    def stop(self) -> None:
        self._queue.clear()
        self._loads.cancel()
        for worker in list(self._workers):
            if worker.jobs:
                worker.process.kill()
                worker.process.join(timeout=5)
                worker.jobs.clear()
                self._retire(worker)

    def pending_task_count(self) -> int:
        return len(self._queue) + len(self._completed) + self._loads.pending + sum(len(worker.jobs) for worker in self._workers)

    def get_result(self, task: Any) -> TaskResult[Any]:
        stored = self._results[task]
        return TaskResult(stored.get_value(), stored.meta)

    def remove_results(self, tasks: Sequence[Any]) -> None:
        for task in tasks:
            self._results.pop(task, None)
            for worker in self._workers:
                if task in worker.held:
                    worker.held.discard(task)
                    worker.pending_releases.append(task)

    def get_task_infos(self) -> list[dict[str, Any]]:
        rows = []
        for worker in self._workers:
            job = worker.job
            if job is None:
                continue
            cpu, rss = self._sampler.latest.get(job.task_name, (0.0, 0))
            rows.append(
                {
                    "name": job.task_name,
                    "pid": worker.process.pid,
                    "status": "running",
                    "start_time": job.start,
                    "cpu": cpu,
                    "rss": rss,
                }
            )
        return rows

    def close(self) -> None:
        self._sampler.stop()
        if self._loads_watched and self._loads.wakeup_descriptor is not None:
            self._poller.unregister(self._loads.wakeup_descriptor)
            self._loads_watched = False
        self._loads.close()
        for worker in list(self._workers):
            try:
                if worker.job is None and not self.per_task:
                    if worker.paused:
                        worker.paused = False
                        send_message(worker.connection, ("resume",))
                    send_message(worker.connection, ("exit",))
            except OSError:
                pass
        for worker in list(self._workers):
            worker.process.join(timeout=2)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)
            self._unwatch(worker)
            worker.connection.close()
        self._workers.clear()
        self._results.clear()

    def _active_tasks(self) -> list[tuple[str, int]]:
        return [
            (worker.jobs[0].task_name, worker.process.pid) for worker in list(self._workers) if worker.jobs and worker.process.pid
        ]


def _run_one_forked_task(
    connection: Connection, job: _Job, context: LabContext, storage: Storage, results: dict[Any, _StoredResult]
) -> None:
    """Entry point of a ``'fork-per-task'`` process: dependency results are shared by fork, not sent."""
    from labtech_nb.engine.capture import routed_output
    from labtech_nb.runners.worker import WorkerState

    prepare_worker_process()
    state = WorkerState(connection, context, storage, by_value=False)
    state.results = {task: TaskResult(stored.value, stored.meta) for task, stored in results.items() if stored.has_value}
    with routed_output():
        state.execute(job.id, job.task, job.task_name, job.use_cache)
    connection.close()


def _require_start_method(name: str) -> None:
    if name not in multiprocessing.get_all_start_methods() or (name == "fork" and sys.platform == "darwin"):
        if name == "fork":
            raise RunnerError(
                "The 'fork' start method for processes is not supported by your operating system. "
                "Try switching to runner_backend='spawn' or specify another system-compatible runner_backend."
            )
        raise RunnerError(
            f"The '{name}' start method for processes is not supported by your operating system. "
            "Please specify a system-compatible runner_backend."
        )


class ForkPoolRunnerBackend(RunnerBackend):
    """A reused pool of forked workers (``runner_backend='fork'``); the context is inherited, not copied."""

    def build_runner(self, *, context: LabContext, storage: Storage, max_workers: int | None) -> Runner:
        _require_start_method("fork")
        return ProcessRunner(
            context=context, storage=storage, max_workers=max_workers or os.cpu_count() or 1, start_method="fork"
        )


class SpawnPoolRunnerBackend(RunnerBackend):
    """A pool of spawned workers (``runner_backend='spawn'``); the context is sent once per worker.

    Task classes defined in ``__main__`` (a notebook or a script) are pickled by value, so they run too.
    """

    def build_runner(self, *, context: LabContext, storage: Storage, max_workers: int | None) -> Runner:
        _require_start_method("spawn")
        return ProcessRunner(
            context=context, storage=storage, max_workers=max_workers or os.cpu_count() or 1, start_method="spawn"
        )


class ForkPerTaskRunnerBackend(RunnerBackend):
    """One forked process per task (``runner_backend='fork-per-task'``): dependency results are shared by fork."""

    def build_runner(self, *, context: LabContext, storage: Storage, max_workers: int | None) -> Runner:
        _require_start_method("fork")
        return ProcessRunner(
            context=context, storage=storage, max_workers=max_workers or os.cpu_count() or 1, start_method="fork", per_task=True
        )
