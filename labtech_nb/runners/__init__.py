"""Runner backends: where tasks execute. Select one with ``Lab(runner_backend=...)`` by name or instance.

| name | class |
|---|---|
| ``'serial'`` | `SerialRunnerBackend` |
| ``'thread'`` | `ThreadRunnerBackend` |
"""

from labtech_nb.runners.base import Runner, RunnerBackend, run_or_load_task
from labtech_nb.runners.registry import backend_names, register_backend, resolve_backend
from labtech_nb.runners.serial import SerialRunnerBackend
from labtech_nb.runners.thread import ThreadRunnerBackend

register_backend("serial", SerialRunnerBackend)
register_backend("thread", ThreadRunnerBackend)

__all__ = [
    "Runner",
    "RunnerBackend",
    "SerialRunnerBackend",
    "ThreadRunnerBackend",
    "backend_names",
    "register_backend",
    "resolve_backend",
    "run_or_load_task",
]
