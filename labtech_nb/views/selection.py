"""Choosing how a run is shown: the notebook dashboard, the terminal view, or nothing."""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Any

from labtech_nb.engine.events import Observer
from labtech_nb.log import logger

PROGRESS_MODES = ("auto", "widget", "text", "off")


def progress_mode(notebook: bool) -> str:
    """Choose how a run is shown.

    ``LABTECH_NB_PROGRESS`` decides when it names a view. Otherwise (``auto``, the default) a notebook
    gets the dashboard and anywhere else gets text; a notebook without ipywidgets gets text too, with a
    warning the first time.

    Args:
        notebook: the Lab's notebook flag: it runs in a Jupyter kernel, or was created with ``notebook=True``.

    Returns:
        ``'widget'``, ``'text'`` or ``'off'``.
    """
    mode = os.environ.get("LABTECH_NB_PROGRESS", "auto").strip().lower() or "auto"
    if mode not in PROGRESS_MODES:
        logger.warning(f"Ignoring LABTECH_NB_PROGRESS={mode!r}: use one of {', '.join(PROGRESS_MODES)}.")
        mode = "auto"
    if mode != "auto":
        return mode
    if notebook and importlib.util.find_spec("ipywidgets") is None:
        _warn_that_ipywidgets_is_missing()
        return "text"
    return "widget" if notebook else "text"


# Once per session: a notebook runs many cells, and the same advice in each would bury their output.
@functools.cache
def _warn_that_ipywidgets_is_missing() -> None:
    logger.warning("ipywidgets is not installed, so progress is shown as text. Install labtech_nb[jupyter] for the dashboard.")


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
