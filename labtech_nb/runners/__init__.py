"""Runner backends: where tasks execute. Select one with ``Lab(runner_backend=...)`` by name or instance.

| name | class |
|---|---|
| ``'serial'`` | `SerialRunnerBackend` |
| ``'thread'`` | `ThreadRunnerBackend` |
| ``'fork'`` | `ForkPoolRunnerBackend` |
| ``'spawn'`` | `SpawnPoolRunnerBackend` |
| ``'fork-per-task'`` | `ForkPerTaskRunnerBackend` |
| ``'ray'`` | `labtech_nb.runners.ray.RayRunnerBackend` (where ray is installed) |
"""

import importlib.util

from labtech_nb.runners.base import Runner, RunnerBackend, run_or_load_task
from labtech_nb.runners.process import ForkPerTaskRunnerBackend, ForkPoolRunnerBackend, SpawnPoolRunnerBackend
from labtech_nb.runners.registry import backend_names, register_backend, resolve_backend
from labtech_nb.runners.serial import SerialRunnerBackend
from labtech_nb.runners.thread import ThreadRunnerBackend

register_backend("serial", SerialRunnerBackend)
register_backend("thread", ThreadRunnerBackend)
register_backend("fork", ForkPoolRunnerBackend)
register_backend("spawn", SpawnPoolRunnerBackend)
register_backend("fork-per-task", ForkPerTaskRunnerBackend)


def _ray_backend() -> RunnerBackend:
    from labtech_nb.runners.ray import RayRunnerBackend

    return RayRunnerBackend()


# Ray is optional: the name is registered only where the package is installed.
if importlib.util.find_spec("ray") is not None:
    register_backend("ray", _ray_backend)

__all__ = [
    "ForkPerTaskRunnerBackend",
    "ForkPoolRunnerBackend",
    "Runner",
    "RunnerBackend",
    "SerialRunnerBackend",
    "SpawnPoolRunnerBackend",
    "ThreadRunnerBackend",
    "backend_names",
    "register_backend",
    "resolve_backend",
    "run_or_load_task",
]
