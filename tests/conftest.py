"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.storage import TaskModules


def _terminate_as_interrupt(signum: int, frame: Any) -> None:
    # pytest runs fixture teardown (servers, Ray, worker pools) on KeyboardInterrupt, not on SIGTERM.
    raise KeyboardInterrupt


signal.signal(signal.SIGTERM, _terminate_as_interrupt)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """One local Ray instance (2 CPUs) for the whole session."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import ray

    # Ray's socket paths must stay short, so its temporary directory cannot live under pytest's tmp_path.
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, _temp_dir=temp_dir, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def task_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TaskModules]:
    """Importable modules of task types, written by the test inside ``tmp_path``."""
    directory = tmp_path / "modules"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    modules = TaskModules(directory)
    yield modules
    modules.forget()
