"""The run timeline: a Gantt chart of a finished run, one lane per worker process."""

from __future__ import annotations

from typing import Any

from labtech_nb.engine.progress import RunProgress

OUTCOME_STYLES: dict[str, dict[str, Any]] = {
    "done": {"hatch": None, "edgecolor": "none", "alpha": 0.9},
    "loaded": {"hatch": "///", "edgecolor": "#555555", "alpha": 0.5},
    "failed": {"hatch": "xx", "edgecolor": "#cf222e", "alpha": 0.9},
}


def plot_timeline(progress: RunProgress, *, title: str | None = None) -> Any:
    """Draw a run's timeline and the durations per task type.

    Args:
        progress: the run's progress model (its ``spans`` are the finished tasks).
        title: the figure title.

    Returns:
        A matplotlib ``Figure`` with two axes: lanes per worker (bars coloured by task type, cache
        loads hatched, failures outlined in red) and the mean duration per task type.

    Raises:
        ValueError: the run has no finished tasks to draw.
    """
    import os

    if _in_kernel():
        # Loads the notebook's figure display (inline backend), so the returned Figure shows as a picture.
        import matplotlib.pyplot  # noqa: F401
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    spans = progress.spans
    if not spans:
        raise ValueError("This run has no finished tasks to draw a timeline of.")
    origin = min(span.start for span in spans)
    lanes = sorted({span.pid or 0 for span in spans})
    lane_of = {pid: index for index, pid in enumerate(lanes)}
    type_names = list(dict.fromkeys(span.task_type for span in spans))
    colour_of = dict(zip(type_names, _distinct_colours(len(type_names)), strict=True))

    # A bare Figure (not pyplot's): nothing piles up in pyplot, and the session's backend is left alone.
    figure = Figure(figsize=(10, 2 + 0.45 * len(lanes) + 0.3 * len(type_names)))
    gantt, durations = figure.subplots(2, 1, height_ratios=[max(len(lanes), 2), max(len(type_names), 2)])
    for span in spans:
        style = OUTCOME_STYLES.get(span.outcome, OUTCOME_STYLES["done"])
        gantt.barh(
            lane_of[span.pid or 0],
            max(span.end - span.start, 1e-3),
            left=span.start - origin,
            color=colour_of[span.task_type],
            label=span.task_type,
            **style,
        )
    main = os.getpid()
    gantt.set_yticks(range(len(lanes)), ["main" if pid in (0, main) else f"pid {pid}" for pid in lanes])
    gantt.set_xlabel("seconds since the first task started")
    gantt.set_title(title or "Run timeline (one lane per worker)")
    handles = [Patch(color=colour_of[name], label=name) for name in type_names]
    handles += [
        Patch(facecolor="white", hatch="///", edgecolor="#555555", label="loaded from cache"),
        Patch(facecolor="white", hatch="xx", edgecolor="#cf222e", label="failed"),
    ]
    gantt.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")

    means = []
    for name in type_names:
        values = [span.end - span.start for span in spans if span.task_type == name and span.outcome == "done"]
        means.append(sum(values) / len(values) if values else 0.0)
    durations.barh(range(len(type_names)), means, color=[colour_of[name] for name in type_names])
    durations.set_yticks(range(len(type_names)), type_names)
    durations.set_xlabel("mean duration of executed tasks (s)")
    figure.tight_layout()
    return figure


def _distinct_colours(count: int) -> list[Any]:
    """``count`` colours that are all different: tab10, then tab20, then evenly spaced hues."""
    from matplotlib import colormaps

    if count <= 10:
        return [colormaps["tab10"](index) for index in range(count)]
    if count <= 20:
        return [colormaps["tab20"](index) for index in range(count)]
    return [colormaps["hsv"](index / count) for index in range(count)]


def _in_kernel() -> bool:
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")
