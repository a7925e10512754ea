"""Choosing how a run is shown: the notebook dashboard, the terminal view, or nothing."""

from __future__ import annotations

import os
from typing import Any

from labtech_nb.engine.events import Observer
from labtech_nb.log import logger

PROGRESS_MODES = ("auto", "widget", "text", "off")


def progress_mode(notebook: bool) -> str:
    """Return ``'widget'``, ``'text'`` or ``'off'`` from ``LABTECH_NB_PROGRESS`` and the Lab's notebook flag."""
    mode = os.environ.get("LABTECH_NB_PROGRESS", "auto").strip().lower() or "auto"
    if mode not in PROGRESS_MODES:
        logger.warning(f"Ignoring LABTECH_NB_PROGRESS={mode!r}: use one of {', '.join(PROGRESS_MODES)}.")
        mode = "auto"
    if mode == "auto":
        return "widget" if notebook else "text"
    return mode


def build_views(
    *, notebook: bool, disable_progress: bool, disable_top: bool, top_format: str, top_sort: str, top_n: int
) -> list[Observer]:
    """Return the observers that show a run, following the Lab's settings and run_tasks' options."""
    mode = progress_mode(notebook)
    if mode == "off" or (disable_progress and disable_top):
        return []
    options: dict[str, Any] = {
        "show_bars": not disable_progress,
        "show_top": not disable_top,
        "top_format": top_format,
        "top_sort": top_sort,
        "top_n": top_n,
    }
    if mode == "widget":
        try:
            from labtech_nb.notebook.dashboard import DashboardView
        except ImportError as error:
            logger.warning(f"The notebook dashboard is unavailable ({error}); showing progress as text.")
        else:
            return [DashboardView(**options)]
    from labtech_nb.views.terminal import TerminalView

    return [TerminalView(**options)]
