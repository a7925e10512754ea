"""labtech_nb: run machine-learning experiments as cached, parallel task graphs, from Jupyter or scripts.

A drop-in for labtech 1.x: ``import labtech_nb as labtech`` and existing code runs unchanged.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from labtech_nb.engine.lab import Lab
from labtech_nb.engine.reporting import progress, report_progress
from labtech_nb.log import logger
from labtech_nb.params import is_task, is_task_type
from labtech_nb.tasks import task


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%labtech`` magics (``%load_ext labtech_nb``)."""
    from labtech_nb.notebook.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Unregister the ``%labtech`` magics (used by ``%reload_ext labtech_nb``)."""
    from labtech_nb.notebook.magics import unload_ipython_extension as unload

    unload(ipython)


__all__ = [
    "Lab",
    "__version__",
    "is_task",
    "is_task_type",
    "load_ipython_extension",
    "logger",
    "progress",
    "report_progress",
    "task",
]
