"""Runner backends by name: a small registry that optional backends (e.g. Ray) add themselves to."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable

from labtech_nb.exceptions import LabError
from labtech_nb.runners.base import RunnerBackend

_FACTORIES: dict[str, Callable[[], RunnerBackend]] = {}


def register_backend(name: str, factory: Callable[[], RunnerBackend]) -> None:
    """Make ``runner_backend=name`` build a backend with ``factory()``.

    Args:
        name: the name users pass to ``Lab(runner_backend=...)``.
        factory: a callable (usually the backend class) returning a new `RunnerBackend`.
    """
    _FACTORIES[name] = factory


def backend_names() -> list[str]:
    """Return the registered backend names."""
    return sorted(_FACTORIES)


def resolve_backend(value: str | RunnerBackend | None, *, max_workers: int | None) -> RunnerBackend:
    """Turn ``Lab(runner_backend=...)`` into a backend instance.

    Args:
        value: a registered name, a `RunnerBackend` instance, or None for the platform default
            (``'thread'`` when ``max_workers == 1``, else ``'fork'`` where available, else ``'spawn'``).
        max_workers: the Lab's worker limit.

    Raises:
        LabError: an unknown name, a value of another type, or no usable default on this platform.
    """
    if isinstance(value, RunnerBackend):
        return value
    if value is None:
        value = default_backend_name(max_workers)
    if not isinstance(value, str):
        raise LabError(f"Unrecognised runner_backend: {value!r}. Pass one of {backend_names()} or a RunnerBackend instance.")
    factory = _FACTORIES.get(value)
    if factory is None:
        raise LabError(f"Unrecognised runner_backend: {value}. Available backends: {', '.join(backend_names())}.")
    return factory()


def default_backend_name(max_workers: int | None) -> str:
    """Return the backend a Lab uses when none is given.

    ``LABTECH_NB_BACKEND`` names a default for every Lab built without ``runner_backend`` (handy to
    run an existing notebook or script under another backend without editing it).
    """
    chosen = os.environ.get("LABTECH_NB_BACKEND", "").strip()
    if chosen:
        if chosen not in _FACTORIES:
            raise LabError(
                f"Unrecognised runner_backend: {chosen} (from LABTECH_NB_BACKEND). Available backends: {', '.join(backend_names())}."
            )
        return chosen
    if max_workers == 1:
        return "thread"
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and sys.platform != "darwin" and "fork" in _FACTORIES:
        return "fork"
    if "spawn" in methods and "spawn" in _FACTORIES:
        return "spawn"
    if "thread" in _FACTORIES:
        return "thread"
    raise LabError(
        "Default 'fork' and 'spawn' multiprocessing runner backends are not supported on your system. "
        "Please specify a system-compatible runner_backend."
    )
