"""The run dashboard: a live ipywidgets view of a run, drawn from its `RunProgress`.

It holds a header (state, elapsed time, counts, ETA), a bar per task type, the active tasks, the
failures with their tracebacks, and a log viewer. All updates of one redraw are sent together
(``hold_sync``), redraws happen at most a few times a second, and only changed values are sent, so
the traffic to the browser stays bounded however many tasks finish.
"""

from __future__ import annotations

import base64
import html
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from labtech_nb.engine.events import Event, RunFinished, RunStarted
from labtech_nb.engine.progress import RunProgress
from labtech_nb.notebook.render import (
    ACTIVE_COLUMNS,
    STATE_COLOURS,
    active_rows,
    header_html,
    summary_html,
    summary_text,
    table_html,
)
from labtech_nb.runners.forking import FORK_LOCK

#: Failures shown in the failures tab (the rest are counted).
MAX_FAILURES_SHOWN = 100
#: How often the list of tasks in the log viewer is refreshed.
LOG_OPTIONS_SECONDS = 2.0
#: How often the live task graph is redrawn (it runs graphviz).
GRAPH_SECONDS = 5.0
BAR_STYLES = {"finished": "success", "failed": "danger", "interrupted": "warning"}


class Dashboard:
    """The widgets of a run dashboard, refreshed from a `RunProgress` by `refresh`."""

    def __init__(self, progress: RunProgress, *, show_bars: bool = True, show_top: bool = True, top_n: int = 10) -> None:
        self.progress = progress
        self.show_bars = show_bars
        self.show_top = show_top
        self.top_n = top_n
        self.header = widgets.HTML()
        self.bars: dict[str, tuple[widgets.IntProgress, widgets.HTML]] = {}
        self.bars_box = widgets.VBox()
        self.active = widgets.HTML()
        self.failures = widgets.Accordion()
        self.failures_note = widgets.HTML()
        self.log_task = widgets.Dropdown(options=[], description="Task:", layout=widgets.Layout(width="40%"))
        self.log_view = widgets.HTML()
        self.graph = widgets.HTML()
        self.log_task.observe(lambda change: self._show_log(), names="value")
        overview = widgets.VBox([self.bars_box, self.active] if show_top else [self.bars_box])
        self.tabs = widgets.Tab(
            children=[
                overview,
                widgets.VBox([self.failures_note, self.failures]),
                widgets.VBox([self.log_task, self.log_view]),
                self.graph,
            ]
        )
        for index, title in enumerate(["Overview", "Failures", "Logs", "Graph"]):
            self.tabs.set_title(index, title)
        self.root = widgets.VBox([self.header, self.tabs])
        self._failures_shown = 0
        self._log_options_at = 0.0
        self._graph_at = float("-inf")
        self.refresh_count = 0

    def refresh(self, *, final: bool = False) -> None:
        """Bring every widget up to date with the model, sending the changes together."""
        self.refresh_count += 1
        progress = self.progress
        with self.root.hold_sync():
            self.header.value = header_html(progress)
            if self.show_bars:
                self._refresh_bars(final)
            if self.show_top:
                rows = active_rows(progress)[: self.top_n]
                self.active.value = table_html(ACTIVE_COLUMNS, rows, empty="No active tasks.")
            self._refresh_failures()
            now = time.monotonic()
            if final or now - self._log_options_at >= LOG_OPTIONS_SECONDS:
                self._log_options_at = now
                options = list(dict.fromkeys([*progress.logs, *progress.mlflow_runs]))
                if options != list(self.log_task.options):
                    selected = self.log_task.value
                    self.log_task.options = options
                    if selected in options:
                        self.log_task.value = selected
            self._show_log()
            if final or now - self._graph_at >= GRAPH_SECONDS:
                self._graph_at = now
                self.graph.value = live_graph_html(progress)

    def _refresh_bars(self, final: bool) -> None:
        progress = self.progress
        for name, counts in progress.types.items():
            if name not in self.bars:
                bar = widgets.IntProgress(min=0, max=max(counts.total, 1), description=name, layout=widgets.Layout(width="60%"))
                bar.style.description_width = "initial"
                label = widgets.HTML()
                self.bars[name] = (bar, label)
                self.bars_box.children = (*self.bars_box.children, widgets.HBox([bar, label]))
            bar, label = self.bars[name]
            bar.max = max(counts.total, 1)
            bar.value = counts.done + counts.loaded
            extra = "".join(
                f", {count} {word}" for word, count in (("failed", counts.failed), ("skipped", counts.skipped)) if count
            )
            label.value = f"{counts.done + counts.loaded}/{counts.total} ({counts.loaded} from cache{extra})"
            if final:
                bad = counts.failed or counts.skipped or counts.remaining
                bar.bar_style = BAR_STYLES.get(progress.state, "") if bad or progress.state == "finished" else "success"

    def _refresh_failures(self) -> None:
        failures = self.progress.failures
        shown = min(len(failures), MAX_FAILURES_SHOWN)
        if shown > self._failures_shown:
            new = [
                widgets.HTML(f"<pre style='white-space:pre-wrap'>{html.escape(failure.traceback or failure.message)}</pre>")
                for failure in failures[self._failures_shown : shown]
            ]
            self.failures.children = (*self.failures.children, *new)
            for index in range(self._failures_shown, shown):
                failure = failures[index]
                self.failures.set_title(index, f"{'skipped' if failure.skipped else 'failed'}: {failure.name}")
            self._failures_shown = shown
        hidden = len(failures) - shown
        self.failures_note.value = (
            f"{len(failures)} failed or skipped tasks" + (f" ({hidden} not shown)" if hidden else "")
            if failures
            else "<i>No failures.</i>"
        )

    def _show_log(self) -> None:
        name = self.log_task.value
        lines = self.progress.logs.get(name, ()) if name else ()
        run_id = self.progress.mlflow_runs.get(name) if name else None
        mlflow_line = f"<div>mlflow run: <code>{html.escape(run_id)}</code></div>" if run_id else ""
        text = f"<pre style='max-height:20em;overflow:auto'>{html.escape(chr(10).join(lines))}</pre>" if lines else ""
        self.log_view.value = mlflow_line + text

    def mimebundle(self, title: str = "labtech_nb run") -> dict[str, Any]:
        """The widget view plus text and HTML summaries for places that cannot show widgets."""
        bundle = dict(self.root._repr_mimebundle_() or {})
        bundle["text/plain"] = summary_text(self.progress, title)
        bundle["text/html"] = summary_html(self.progress)
        return bundle


def live_graph_html(progress: RunProgress) -> str:
    """The run's tasks as a graphviz graph coloured by status (SVG), or a note when graphviz is missing."""
    from labtech_nb import diagram

    tasks = list(progress.tasks.values())
    if not tasks:
        return "<i>No tasks yet.</i>"
    if not diagram.graphviz_available():
        return "<i>Install graphviz (the package and its 'dot' program) to see the live task graph.</i>"
    try:
        graph = diagram.build_graphviz_instance_diagram(tasks, statuses=progress.statuses())
        with FORK_LOCK:  # a run's worker forked meanwhile would hold on to dot's pipes
            svg = graph.pipe(format="svg")
    except Exception as error:
        return f"<i>The task graph could not be drawn: {html.escape(str(error))}</i>"
    # As an image: the picture cannot add markup (or scripts) to the page it is shown in.
    return f"<img alt='task graph' src='data:image/svg+xml;base64,{base64.b64encode(svg).decode()}'>"


class DashboardView:
    """An observer that shows a run as a `Dashboard` in the notebook cell that runs it."""

    def __init__(
        self,
        *,
        show_bars: bool = True,
        show_top: bool = True,
        top_format: str = "",
        top_sort: str = "start_time",
        top_n: int = 10,
        min_interval: float = 0.25,
        display: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.progress = RunProgress()
        self.dashboard = Dashboard(self.progress, show_bars=show_bars, show_top=show_top, top_n=top_n)
        self.min_interval = min_interval
        self.clock = clock
        self._display = display
        self._handle: Any = None
        self._last = float("-inf")

    def __call__(self, event: Event) -> None:
        self.progress.observe(event)
        if isinstance(event, RunStarted):
            self.dashboard.refresh()
            self._last = self.clock()
            if self._display:
                from IPython.display import display

                self._handle = display(self, display_id=True)
        elif isinstance(event, RunFinished):
            self.dashboard.refresh(final=True)
            if self._handle is not None:
                self._handle.update(self)
        elif self.clock() - self._last >= self.min_interval:
            self._last = self.clock()
            self.dashboard.refresh()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return self.dashboard.mimebundle()


class RunControl:
    """A background run's display: its dashboard, a Stop button, a status line and the run's log."""

    def __init__(self, handle: Any, *, refresh_seconds: float = 0.25) -> None:
        self.handle = handle
        self.dashboard = Dashboard(handle.progress)
        self.stop_button = widgets.Button(
            description="Stop", icon="stop", button_style="warning", tooltip="Finish running tasks, then stop"
        )
        self.status = widgets.HTML()
        self.log = widgets.HTML()
        self.stop_button.on_click(lambda _button: self.click_stop())
        self.root = widgets.VBox([widgets.HBox([self.stop_button, self.status]), self.dashboard.root, self.log])
        self._refresh_seconds = refresh_seconds
        self.refresh()
        handle.add_done_listener(lambda _handle: self.refresh())
        if not handle.done:
            threading.Thread(target=self._refresh_until_done, name="labtech_nb-dashboard", daemon=True).start()

    def click_stop(self) -> None:
        """First click: finish running tasks and stop. Second click: terminate them."""
        try:
            self.handle.cancel()
        except Exception as error:
            self.status.value = (
                f"<span style='color:{STATE_COLOURS['failed']}'>Could not stop the run: {html.escape(str(error))}</span>"
            )
            return
        if self.handle.stop_requests == 1:
            self.stop_button.description = "Terminate"
            self.stop_button.button_style = "danger"
            self.stop_button.tooltip = "Terminate running tasks now"
            self.status.value = "Stopping: running tasks will finish and be cached. Click again to terminate them."
        else:
            self.stop_button.disabled = True
            self.status.value = "Terminating running tasks."

    def refresh(self) -> None:
        """Redraw from the run's progress."""
        handle = self.handle
        final = handle.done
        self.dashboard.refresh(final=final)
        lines = list(handle.log_lines)[-200:]
        self.log.value = f"<pre style='max-height:15em;overflow:auto'>{html.escape(chr(10).join(lines))}</pre>" if lines else ""
        if final:
            self.stop_button.disabled = True
            self.stop_button.description = "Stopped" if handle.stop_requests else "Done"
            self.stop_button.button_style = ""
            self.stop_button.icon = ""
            error = handle.error
            self.status.value = html.escape(f"Run ended: {handle.progress.state}" + (f" ({error})" if error is not None else ""))

    def _refresh_until_done(self) -> None:
        while not self.handle.done:
            time.sleep(self._refresh_seconds)
            self.refresh()

    def mimebundle(self) -> dict[str, Any]:
        bundle = dict(self.root._repr_mimebundle_() or {})
        bundle["text/plain"] = summary_text(self.handle.progress, "labtech_nb background run")
        bundle["text/html"] = summary_html(self.handle.progress)
        return bundle


def background_run_bundle(handle: Any) -> dict[str, Any]:
    """The mime bundle of a `BackgroundRun`: its `RunControl` (built once per handle)."""
    control = getattr(handle, "_control", None)
    if control is None:
        control = RunControl(handle)
        handle._control = control
    return control.mimebundle()
