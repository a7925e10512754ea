"""The worker side of the process runners: a loop that executes tasks sent by the parent.

A worker keeps the results it computed or received in a local store until the parent says they
are no longer needed, so a dependency result reaches each worker at most once however many of its
dependents run there.
"""

from __future__ import annotations

import pickle
import signal
import sys
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

from labtech_nb.engine.capture import routed_output, task_context
from labtech_nb.engine.events import Event, TaskStarted
from labtech_nb.runners.base import TRACEBACK_ATTRIBUTE, attach_traceback, run_or_load_task
from labtech_nb.runners.transfer import data_waiting, decode, encode, receive_message, send_message
from labtech_nb.storage.base import Storage
from labtech_nb.types import LabContext, TaskResult


class WorkerState:
    """What one worker process holds: the context, the storage and the results it was given."""

    def __init__(self, connection: Connection, context: LabContext, storage: Storage, by_value: bool) -> None:
        self.connection = connection
        self.context = context
        self.storage = storage
        self.by_value = by_value
        self.results: dict[Any, TaskResult[Any]] = {}

    def publish(self, event: Event) -> None:
        # The parent announces the start itself when it hands over the task: one message fewer per task.
        if not isinstance(event, TaskStarted):
            send_message(self.connection, ("event", event))

    def execute(self, job_id: int, task: Any, task_name: str, use_cache: bool, keep: bool = True) -> bool:
        """Execute a job and report its outcome; returns whether it succeeded.

        ``keep``: hold the result for dependents that may run here later.
        """
        for dependency in task._lt_dependencies():
            dependency._set_results_map(self.results)
        try:
            filtered_context = None if use_cache else task.filter_context(self.context)
            with task_context(task_name, self.publish):
                result = run_or_load_task(task, use_cache, filtered_context, self.storage)
        except BaseException as error:
            send_message(self.connection, ("failed", job_id, _picklable_error(error)))
            return False
        if keep:
            self.results[task] = result
        try:
            payload = encode(result.value, by_value=self.by_value)
        except Exception as error:
            failure = TypeError(f"The result of task '{task}' cannot be sent to the main process: {error}")
            attach_traceback(failure, error)
            send_message(self.connection, ("failed", job_id, _picklable_error(failure)))
            return False
        send_message(self.connection, ("done", job_id, result.meta), [payload])
        return True


def _picklable_error(error: BaseException) -> BaseException:
    attach_traceback(error)
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        replacement = RuntimeError(f"{type(error).__qualname__}: {error}")
        setattr(replacement, TRACEBACK_ATTRIBUTE, getattr(error, TRACEBACK_ATTRIBUTE, ""))
        return replacement
    return error


def serve(state: WorkerState) -> None:
    """Execute tasks until the parent says to exit or goes away."""
    connection = state.connection
    more_waiting = data_waiting(connection)
    inbox: deque[tuple[Any, list[Any]]] = deque()
    cancelled: set[int] = set()
    with routed_output():
        while True:
            try:
                if not inbox:
                    inbox.append(receive_message(connection))
                # Read whatever else arrived, so a cancellation overtakes the tasks it cancels.
                while more_waiting():
                    inbox.append(receive_message(connection))
            except (EOFError, OSError):
                return
            header, payloads = inbox.popleft()
            kind = header[0]
            if kind == "exit":
                return
            if kind == "cancel":
                cancelled.update(header[1])
            elif kind == "resume":
                pass
            elif kind == "run":
                _, job_id, task, task_name, use_cache, keep, dependencies, releases = header
                if state.by_value:
                    expose_main_classes(task)
                for released in releases:
                    state.results.pop(released, None)
                for (dependency, meta), payload in zip(dependencies, payloads, strict=True):
                    state.results[dependency] = TaskResult(decode(payload), meta)
                if any(message[0] == "cancel" and job_id in message[1] for message, _ in inbox) or job_id in cancelled:
                    send_message(connection, ("cancelled", job_id))
                    continue
                if not state.execute(job_id, task, task_name, use_cache, keep):
                    # After a failure, wait for the parent's word: it may stop the run and cancel what
                    # is already waiting in this pipe.
                    paused = True
                    while paused:
                        try:
                            message = receive_message(connection)
                        except (EOFError, OSError):
                            return
                        if message[0][0] == "resume":
                            paused = False
                        else:
                            inbox.append(message)


def expose_main_classes(task: Any) -> None:
    """Make task classes that arrived by value (defined in a notebook) importable as ``__main__.<name>``.

    A spawned worker's ``__main__`` is not the notebook's, so a result holding such a task (e.g. a
    dict keyed by tasks) could not be pickled for the cache or the parent. Registering the classes
    lets those pickles refer to ``__main__.<name>``, exactly as they do in the notebook itself.
    """
    main = sys.modules.get("__main__")
    if main is None:
        return
    stack = [task]
    seen: set[int] = set()
    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        value_type = type(value)
        if getattr(value_type, "_lt_task_type", False):
            stack.extend(getattr(value, name) for name in value_type._lt_field_names)
        elif isinstance(value, (tuple, list)):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        if (
            value_type.__module__ == "__main__"
            and "." not in value_type.__qualname__
            and not hasattr(main, value_type.__qualname__)
        ):
            setattr(main, value_type.__qualname__, value_type)


def _watch_parent(interval: float = 0.2) -> None:
    """End this worker soon after the lab process dies (even mid-task): nothing would use its work.

    Its cache writes are staged, so ending at any point leaves no partial entry.
    """
    import os
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="labtech_nb-parent-watch", daemon=True).start()


def prepare_worker_process() -> None:
    """Settings every worker process applies first: the parent alone handles Ctrl-C.

    A forked worker also gets standard streams of its own: it inherits the parent's (in a notebook,
    the kernel's, maybe holding unsent text), which would otherwise be flushed a second time when
    the worker exits.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent()
    import io

    for name, descriptor in (("stdout", 1), ("stderr", 2)):
        try:
            stream = io.TextIOWrapper(io.FileIO(descriptor, "w", closefd=False), line_buffering=True)
        except OSError:
            continue
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def forked_worker_main(connection: Connection, context: LabContext, storage: Storage) -> None:
    """Entry point of a pool worker made by fork (context and storage inherited, not copied)."""
    prepare_worker_process()
    serve(WorkerState(connection, context, storage, by_value=False))
    connection.close()


def spawned_worker_main(connection: Connection) -> None:
    """Entry point of a pool worker made by spawn: receives the context and storage once."""
    prepare_worker_process()
    _header, payloads = receive_message(connection)
    context, storage = decode(payloads[0])
    serve(WorkerState(connection, context, storage, by_value=True))
    connection.close()
    sys.stdout.flush()
