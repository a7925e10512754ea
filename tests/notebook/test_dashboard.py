"""The run dashboard, checked through its widgets' state: feed event sequences to a `DashboardView`
and read what the front end would show (header, bars, active table, failures, logs, final state)."""

from __future__ import annotations

import html
import re
import time
from datetime import datetime
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import labtech_nb as labtech
from labtech_nb.engine.events import (
    ResourceSample,
    RunFinished,
    RunStarted,
    TaskProgress,
    TaskSkipped,
    TaskSucceeded,
)
from labtech_nb.engine.progress import RunProgress
from labtech_nb.exceptions import DependencyFailedError, LabError
from labtech_nb.notebook import dashboard as dashboard_module
from labtech_nb.notebook.dashboard import MAX_FAILURES_SHOWN, Dashboard, DashboardView, RunControl
from tests.support.events import EventFeed

from .nb_tasks import Trivial

EVIL = "<script>alert('owned')</script>"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


# --- building event sequences -------------------------------------------------------------------


def task_of(type_name: str) -> Any:
    """A stand-in task object whose type has the given name (as `TaskSkipped` handlers read it)."""
    return type(type_name, (), {})()


def new_view(base: float | None = None, **options: Any) -> tuple[DashboardView, EventFeed]:
    """A dashboard that redraws on every event, and a feed of events (stamped from ``base``, default now) to it."""
    options.setdefault("min_interval", 0.0)
    view = DashboardView(display=False, **options)
    return view, EventFeed(time.time() if base is None else base, observer=view)


def table_cells(table: str) -> list[list[str]]:
    """The body rows of a `table_html` table, cells unescaped."""
    body = table.split("<tbody>", 1)[1] if "<tbody>" in table else ""
    return [
        [html.unescape(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)] for row in re.findall(r"<tr>(.*?)</tr>", body)
    ]


def header_text(view: DashboardView) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", view.dashboard.header.value))


def bar(view: DashboardView, task_type: str) -> tuple[int, int, str, str]:
    progress_bar, label = view.dashboard.bars[task_type]
    return progress_bar.value, progress_bar.max, label.value, progress_bar.bar_style


def pre_text(value: str) -> str:
    """The unescaped text inside a ``<pre>`` block."""
    match = re.search(r"<pre[^>]*>(.*)</pre>", value, re.S)
    assert match is not None, value
    return html.unescape(match.group(1))


# --- header ---------------------------------------------------------------------------------------


def test_header_before_the_run_says_starting() -> None:
    dashboard = Dashboard(RunProgress())
    dashboard.refresh()
    assert dashboard.header.value.startswith("<b")
    text = html.unescape(re.sub(r"<[^>]+>", "", dashboard.header.value))
    assert text.split(" · ")[0] == "starting"
    assert "0 done" in text and "ETA" not in text


def test_header_shows_state_counts_elapsed_and_eta() -> None:
    view, feed = new_view(base=time.time() - 100)
    feed.start({"Fit": 5})
    assert header_text(view).startswith("running · elapsed 0:01:4")
    assert "ETA" not in header_text(view), "no ETA before any task was executed"
    feed.run_ok("Fit[1]", "Fit", 0, 50)
    feed.run_ok("Fit[2]", "Fit", 0, 50)
    feed.run_loaded("Fit[3]", "Fit", 50, 51)
    text = header_text(view)
    parts = text.split(" · ")
    assert parts[0] == "running"
    assert re.fullmatch(r"elapsed 0:01:4[01]", parts[1]), text
    assert parts[2:7] == ["2 done", "1 from cache", "0 failed", "0 skipped", "2 remaining"]
    # Two tasks executed in 100 s since the first started, two remain: about 100 s to go.
    assert re.fullmatch(r"ETA 0:01:4[01]", parts[7]), text
    feed.finish("finished", offset=100)
    text = header_text(view)
    assert text.startswith("finished · elapsed 0:01:40")
    assert "ETA" not in text
    assert "#1a7f37" in view.dashboard.header.value  # the finished colour


# --- bars -----------------------------------------------------------------------------------------


def test_one_bar_per_type_with_counts_in_its_label() -> None:
    view, feed = new_view()
    feed.start({"Load": 3, "Fit": 2})
    assert [b.description for b, _ in view.dashboard.bars.values()] == ["Load", "Fit"]
    assert bar(view, "Load") == (0, 3, "0/3 (0 from cache)", "")
    feed.run_loaded("Load[1]", "Load")
    feed.run_ok("Load[2]", "Load")
    feed.run_failed("Load[3]", "Load", "boom", "Traceback: boom")
    feed(TaskSkipped("Fit[1]", task_of("Fit"), DependencyFailedError("Fit(1)", "Load(3)")))
    feed.queue("Fit[2]", "Fit")
    feed.begin("Fit[2]")
    assert bar(view, "Load") == (2, 3, "2/3 (1 from cache, 1 failed)", "")
    assert bar(view, "Fit") == (0, 2, "0/2 (0 from cache, 1 skipped)", "")
    feed.finish("failed")
    assert bar(view, "Load")[3] == "danger"
    assert bar(view, "Fit")[3] == "danger"


def test_show_bars_and_show_top_can_be_turned_off() -> None:
    view, feed = new_view(show_bars=False, show_top=False)
    feed.start({"Fit": 1})
    feed.queue("Fit[1]", "Fit")
    feed.begin("Fit[1]")
    assert view.dashboard.bars == {}
    assert view.dashboard.active.value == ""
    assert view.dashboard.active not in view.dashboard.tabs.children[0].children


# --- active tasks ---------------------------------------------------------------------------------


def test_active_table_lists_running_and_loading_tasks_with_resources_and_progress() -> None:
    view, feed = new_view()
    feed.start({"Fit": 3, "Load": 1})
    assert view.dashboard.active.value == "<i>No active tasks.</i>"
    feed.queue("Fit[1]", "Fit", 1)
    feed.queue("Fit[2]", "Fit", 1)
    feed.queue("Fit[3]", "Fit", 1)
    feed.queue("Load[1]", "Load", 1, cached=True)
    feed.begin("Fit[2]", 2)
    feed.begin("Fit[1]", 3)
    feed.begin("Load[1]", 4, kind="load")
    feed(ResourceSample("Fit[2]", cpu_percent=150.0, rss_bytes=3 * 2**29))
    feed(TaskProgress("Fit[2]", 3, 10, "epochs"))
    feed(TaskProgress("Fit[1]", 7, None))
    rows = table_cells(view.dashboard.active.value)
    since = datetime.fromtimestamp(feed.at(2)).strftime("%H:%M:%S")
    # Oldest first; the queued Fit[3] is not shown.
    assert [row[0] for row in rows] == ["Fit[2]", "Fit[1]", "Load[1]"]
    assert rows[0] == ["Fit[2]", "running", since, "150%", "1.5 GiB", "3/10 epochs"]
    assert rows[1][1:] == ["running", datetime.fromtimestamp(feed.at(3)).strftime("%H:%M:%S"), "", "", "7"]
    assert rows[2][:2] == ["Load[1]", "loading"]
    assert "<th style='text-align:left;padding:0 8px'>CPU</th>" in view.dashboard.active.value
    feed(TaskSucceeded("Fit[2]", "t", 1.0))
    assert [row[0] for row in table_cells(view.dashboard.active.value)] == ["Fit[1]", "Load[1]"]
    feed.finish("interrupted")
    assert view.dashboard.active.value == "<i>No active tasks.</i>"


def test_active_table_shows_at_most_top_n_rows() -> None:
    view, feed = new_view(top_n=2)
    feed.start({"Fit": 3})
    for index in range(1, 4):
        feed.queue(f"Fit[{index}]", "Fit", index)
        feed.begin(f"Fit[{index}]", index)
    assert [row[0] for row in table_cells(view.dashboard.active.value)] == ["Fit[1]", "Fit[2]"]


# --- escaping -------------------------------------------------------------------------------------

MERMAID_LINE = "```mermaid\nclassDiagram\n    A <-- B\n```"
MARKDOWN_LINE = "# Title **bold** [click](javascript:alert(1)) <img src=x onerror=alert(1)> & more"


def test_names_progress_logs_and_tracebacks_are_html_escaped() -> None:
    view, feed = new_view()
    feed.start({"Evil": 2})
    feed.queue(EVIL, "Evil")
    feed.begin(EVIL)
    feed(TaskProgress(EVIL, 1, 2, MARKDOWN_LINE))
    feed.log(EVIL, MERMAID_LINE)
    feed.log(EVIL, MARKDOWN_LINE)
    active = view.dashboard.active.value
    assert "<script>" not in active and "<img" not in active
    assert "&lt;script&gt;" in active
    assert table_cells(active)[0][0] == EVIL
    assert table_cells(active)[0][5] == f"1/2 {MARKDOWN_LINE}"
    trace = f'Traceback (most recent call last):\n  File "x.py"\nValueError: {EVIL} {MERMAID_LINE}'
    feed.run_failed("Evil[2]", "Evil", EVIL, trace)
    feed.finish("failed")
    dashboard = view.dashboard
    # Failures: the traceback is shown verbatim, inert.
    shown = dashboard.failures.children[0].value
    assert "<script>" not in shown and "A <-- B" not in shown
    assert pre_text(shown) == trace
    # Logs: the task's lines, inert; mermaid and markdown stay plain text.
    dashboard.log_task.value = EVIL
    log_html = dashboard.log_view.value
    assert "<script>" not in log_html and "<img" not in log_html and "A <-- B" not in log_html
    assert pre_text(log_html) == f"{MERMAID_LINE}\n{MARKDOWN_LINE}"
    assert "```mermaid" in log_html  # no markdown processing either
    # The saved HTML summary has nothing executable either.
    bundle = view._repr_mimebundle_()
    assert "<script" not in bundle["text/html"] and "<img" not in bundle["text/html"]


@labtech.task
class Boom:
    label: str

    def run(self) -> int:
        raise ValueError(f"bad {self.label}")


@labtech.task
class NeedsBoom:
    boom: Boom

    def run(self) -> int:
        return self.boom.result


def test_a_real_run_with_hostile_reprs_shows_them_escaped() -> None:
    view = DashboardView(display=False, min_interval=0.0)
    lab = labtech.Lab(storage=None, runner_backend="serial")
    boom = Boom(label=EVIL)
    with pytest.raises(LabError):
        lab.run_tasks([NeedsBoom(boom=boom), Trivial(i=1)], observers=[view])
    dashboard = view.dashboard
    assert dashboard.failures.titles == ("failed: Boom[1]", "skipped: NeedsBoom[1]")
    failed, skipped = (child.value for child in dashboard.failures.children)
    assert "<script>" not in failed + skipped
    assert f"ValueError: bad {EVIL}" in pre_text(failed)
    assert "Traceback (most recent call last)" in pre_text(failed)
    assert repr(boom) in pre_text(skipped)  # the skip reason names the failed dependency
    assert "&lt;script&gt;" in skipped
    text = view._repr_mimebundle_()["text/plain"]
    assert f"failed: Boom[1]: bad {EVIL}" in text
    assert bar(view, "Trivial")[3] == "success"
    assert bar(view, "Boom")[3] == "danger"


# --- failures -------------------------------------------------------------------------------------


def test_failures_accordion_has_a_titled_panel_per_failure() -> None:
    view, feed = new_view()
    feed.start({"Fit": 2, "Report": 1})
    assert view.dashboard.failures_note.value == "<i>No failures.</i>"
    assert view.dashboard.failures.children == ()
    feed.run_failed("Fit[1]", "Fit", "diverged", "Traceback (most recent call last):\nRuntimeError: diverged")
    feed(TaskSkipped("Report[1]", task_of("Report"), DependencyFailedError("Report(1)", "Fit(1)")))
    failures = view.dashboard.failures
    assert failures.titles == ("failed: Fit[1]", "skipped: Report[1]")
    assert pre_text(failures.children[0].value) == "Traceback (most recent call last):\nRuntimeError: diverged"
    # A skipped task has no traceback: its reason is shown.
    assert pre_text(failures.children[1].value) == str(DependencyFailedError("Report(1)", "Fit(1)"))
    assert view.dashboard.failures_note.value == "2 failed or skipped tasks"
    assert view.dashboard.tabs.titles == ("Overview", "Failures", "Logs", "Graph")


def test_failures_beyond_the_limit_are_counted_not_shown() -> None:
    view, feed = new_view()
    count = MAX_FAILURES_SHOWN + 5
    feed.start({"Fit": count})
    for index in range(count):
        feed.run_failed(f"Fit[{index}]", "Fit", f"error {index}", f"trace {index}")
    assert len(view.dashboard.failures.children) == MAX_FAILURES_SHOWN
    assert view.dashboard.failures.titles[-1] == f"failed: Fit[{MAX_FAILURES_SHOWN - 1}]"
    assert view.dashboard.failures_note.value == f"{count} failed or skipped tasks (5 not shown)"
    feed.finish("failed")
    text = view._repr_mimebundle_()["text/plain"]
    assert text.endswith(f"... and {count - 10} more failures")
    assert "failed: Fit[0]: error 0" in text


# --- logs -----------------------------------------------------------------------------------------


def test_log_viewer_shows_the_selected_tasks_lines() -> None:
    view, feed = new_view()
    feed.start({"Fit": 2})
    for name in ("Fit[1]", "Fit[2]"):
        feed.queue(name, "Fit")
        feed.begin(name)
    feed.log("Fit[1]", "one: epoch 1")
    feed.log("Fit[2]", "two: epoch 1")
    feed.log("Fit[1]", "one: epoch 2", stream="stderr")
    feed.finish("finished")
    dashboard = view.dashboard
    assert list(dashboard.log_task.options) == ["Fit[1]", "Fit[2]"]
    dashboard.log_task.value = "Fit[2]"
    assert pre_text(dashboard.log_view.value) == "two: epoch 1"
    dashboard.log_task.value = "Fit[1]"
    assert pre_text(dashboard.log_view.value) == "one: epoch 1\none: epoch 2"


def test_log_viewer_lists_new_tasks_during_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard_module, "LOG_OPTIONS_SECONDS", 0.0)
    view, feed = new_view()
    feed.start({"Fit": 2})
    feed.log("Fit[1]", "first")
    assert list(view.dashboard.log_task.options) == ["Fit[1]"]
    feed.log("Fit[2]", "second")
    assert list(view.dashboard.log_task.options) == ["Fit[1]", "Fit[2]"]


def test_log_viewer_keeps_the_users_selection_when_new_tasks_appear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard_module, "LOG_OPTIONS_SECONDS", 0.0)
    view, feed = new_view()
    feed.start({"Fit": 3})
    feed.log("Fit[1]", "first")
    feed.log("Fit[2]", "second")
    view.dashboard.log_task.value = "Fit[2]"
    feed.log("Fit[3]", "third")  # the list of tasks grows while the user reads Fit[2]
    assert list(view.dashboard.log_task.options) == ["Fit[1]", "Fit[2]", "Fit[3]"]
    assert view.dashboard.log_task.value == "Fit[2]"
    assert pre_text(view.dashboard.log_view.value) == "second"


# --- final state ----------------------------------------------------------------------------------


def test_final_state_finished_marks_every_bar_success() -> None:
    view, feed = new_view()
    feed.start({"Load": 1, "Fit": 1})
    feed.run_loaded("Load[1]", "Load")
    feed.run_ok("Fit[1]", "Fit")
    assert bar(view, "Fit")[3] == ""  # no final colour while running
    feed.finish("finished")
    assert bar(view, "Load") == (1, 1, "1/1 (1 from cache)", "success")
    assert bar(view, "Fit") == (1, 1, "1/1 (0 from cache)", "success")
    assert header_text(view).startswith("finished")


def test_final_state_failed_marks_only_failing_types_danger() -> None:
    view, feed = new_view()
    feed.start({"Load": 1, "Fit": 2})
    feed.run_ok("Load[1]", "Load")
    feed.run_ok("Fit[1]", "Fit")
    feed.run_failed("Fit[2]", "Fit", "no", "trace")
    feed.finish("failed")
    assert bar(view, "Load")[3] == "success"
    assert bar(view, "Fit")[3] == "danger"
    assert header_text(view).startswith("failed")
    assert "#cf222e" in view.dashboard.header.value


def test_final_state_interrupted_marks_unfinished_types_warning() -> None:
    view, feed = new_view()
    feed.start({"Load": 1, "Fit": 3})
    feed.run_ok("Load[1]", "Load")
    feed.run_ok("Fit[1]", "Fit")
    feed.queue("Fit[2]", "Fit")
    feed.begin("Fit[2]")
    feed.finish("interrupted")
    assert bar(view, "Load")[3] == "success"
    assert bar(view, "Fit") == (1, 3, "1/3 (0 from cache)", "warning")
    text = header_text(view)
    assert text.startswith("interrupted")
    assert "2 remaining" in text
    assert view._repr_mimebundle_()["text/plain"].startswith("labtech_nb run: interrupted, 2/4 done")


# --- mime bundle ----------------------------------------------------------------------------------


def test_mimebundle_has_the_widget_a_text_summary_and_html() -> None:
    view, feed = new_view()
    feed.start({"Load": 1, "Fit": 2})
    feed.run_loaded("Load[1]", "Load")
    feed.run_ok("Fit[1]", "Fit")
    feed.run_failed("Fit[2]", "Fit", "diverged\nmore detail", "trace")
    feed.finish("failed")
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {WIDGET_MIME, "text/plain", "text/html"}
    assert bundle[WIDGET_MIME]["model_id"] == view.dashboard.root.model_id
    assert bundle["text/plain"].splitlines() == [
        "labtech_nb run: failed, 2/3 done, 1 from cache, 0 running, 1 failed, 0 skipped, elapsed 0:00:10",
        "  Load: 1/1 (1 from cache)",
        "  Fit: 1/2 (0 from cache, 1 failed)",
        "  failed: Fit[2]: diverged",
    ]
    page = bundle["text/html"]
    assert page.startswith("<div><b style='color:#cf222e'>failed</b>")
    assert table_cells(page) == [["Load", "1/1", "1", "0", "0"], ["Fit", "1/2", "0", "1", "0"]]


def test_displayed_dashboard_is_updated_in_place_when_the_run_ends() -> None:
    shell = InteractiveShell.instance()
    assert shell is not None
    view = DashboardView(display=True)
    lab = labtech.Lab(storage=None, runner_backend="serial")
    with capture_output() as captured:
        lab.run_tasks([Trivial(i=i) for i in range(3)], observers=[view])
    first, *rest = captured.outputs
    assert not first.update
    assert WIDGET_MIME in first.data
    assert len(rest) == 1 and rest[0].update
    assert rest[0].transient["display_id"] == first.transient["display_id"]
    assert rest[0].data["text/plain"].startswith("labtech_nb run: finished, 3/3 done")


# --- throttling -----------------------------------------------------------------------------------


def test_redraws_are_throttled_to_min_interval_of_the_clock() -> None:
    now = [100.0]
    view = DashboardView(display=False, min_interval=1.0, clock=lambda: now[0])
    feed = EventFeed(time.time(), observer=view)
    feed.start({"Fit": 3})
    assert view.dashboard.refresh_count == 1
    now[0] = 100.5
    feed.run_ok("Fit[1]", "Fit")
    now[0] = 100.99
    feed.run_ok("Fit[2]", "Fit")
    assert view.dashboard.refresh_count == 1
    assert "0 done" in header_text(view), "a throttled event must not redraw"
    now[0] = 101.0
    feed.log("Fit[2]", "a line")
    assert view.dashboard.refresh_count == 2
    assert "2 done" in header_text(view)
    now[0] = 101.5
    feed.run_ok("Fit[3]", "Fit")
    assert view.dashboard.refresh_count == 2
    feed.finish("finished")  # the final state is always drawn
    assert view.dashboard.refresh_count == 3
    assert bar(view, "Fit") == (3, 3, "3/3 (0 from cache)", "success")


def test_without_min_interval_every_event_redraws() -> None:
    view, feed = new_view(min_interval=0.0)
    feed.start({"Fit": 1})
    feed.run_ok("Fit[1]", "Fit")
    feed.finish("finished")
    assert view.dashboard.refresh_count == 5  # start, queued, started, succeeded, finished


# --- traffic to the front end ---------------------------------------------------------------------


def test_messages_to_the_front_end_stay_bounded_for_a_5000_task_run(recording_comm: Any) -> None:
    tasks = [Trivial(i=i) for i in range(5000)]
    lab = labtech.Lab(storage=None, runner_backend="serial")
    view = DashboardView(display=False)
    started = time.monotonic()
    results = lab.run_tasks(tasks, observers=[view])
    elapsed = time.monotonic() - started
    assert len(results) == 5000
    assert bar(view, "Trivial") == (5000, 5000, "5000/5000 (0 from cache)", "success")
    sent = recording_comm.total
    assert recording_comm.counts["comm_msg"] > 0, "the recording comm saw no updates: it is not installed"
    # At most ~4 redraws a second, each a handful of widget updates, plus opening the widgets.
    assert sent < 20 * elapsed * 4 + 200, (sent, elapsed, recording_comm.counts)
    assert sent < len(tasks) / 10
    assert view.dashboard.refresh_count <= 4 * elapsed + 2


def test_a_redraw_sends_only_changed_values(recording_comm: Any) -> None:
    view, feed = new_view()
    feed.start({"Fit": 2})
    feed.run_ok("Fit[1]", "Fit")
    recording_comm.reset()
    view.dashboard.refresh()
    view.dashboard.refresh()
    # Only the header (its elapsed time may tick) can change between identical redraws.
    assert recording_comm.counts["comm_msg"] <= 2, recording_comm.counts


# --- the background-run control (with a stand-in handle) ------------------------------------------


class FakeHandle:
    """The parts of a `BackgroundRun` that `RunControl` uses."""

    def __init__(self, *, cancel_error: Exception | None = None) -> None:
        self.progress = RunProgress()
        self.done = False
        self.error: BaseException | None = None
        self.log_lines = ["fit: <b>line</b>"]
        self.stop_requests = 0
        self.cancel_error = cancel_error
        self.listeners: list[Any] = []

    def cancel(self, *, force: bool = False) -> None:
        if self.cancel_error is not None:
            raise self.cancel_error
        self.stop_requests += 1

    def add_done_listener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def end(self, state: str, error: BaseException | None = None) -> None:
        self.progress.observe(RunStarted("r", 1, {"Fit": 1}, 0))
        self.progress.observe(RunFinished("r", state, {}))
        self.error = error
        self.done = True
        for listener in self.listeners:
            listener(self)


def test_run_control_stop_button_first_finishes_then_terminates() -> None:
    handle = FakeHandle()
    control = RunControl(handle, refresh_seconds=0.01)
    assert control.stop_button.description == "Stop"
    assert pre_text(control.log.value) == "fit: <b>line</b>"
    control.stop_button.click()
    assert handle.stop_requests == 1
    assert control.stop_button.description == "Terminate"
    assert control.stop_button.button_style == "danger"
    assert "Click again to terminate" in control.status.value
    control.stop_button.click()
    assert handle.stop_requests == 2
    assert control.stop_button.disabled
    assert control.status.value == "Terminating running tasks."
    handle.end("interrupted", LabError("Run stopped before completing 1 submitted task(s)"))
    assert control.status.value == "Run ended: interrupted (Run stopped before completing 1 submitted task(s))"
    bundle = control.mimebundle()
    assert set(bundle) == {WIDGET_MIME, "text/plain", "text/html"}
    assert bundle["text/plain"].startswith("labtech_nb background run: interrupted")


def test_run_control_reports_a_failing_stop_in_its_status() -> None:
    handle = FakeHandle(cancel_error=RuntimeError("cannot <stop>"))
    control = RunControl(handle, refresh_seconds=0.01)
    control.stop_button.click()  # ipywidgets would swallow an exception here: it must show instead
    assert "Could not stop the run: cannot &lt;stop&gt;" in control.status.value
    assert control.stop_button.description == "Stop"
    handle.end("finished")


def test_graph_tab_shows_the_run_as_a_status_coloured_graph(tmp_path: Any, monkeypatch: Any) -> None:
    import labtech_nb as labtech
    from labtech_nb.diagram import STATUS_COLOURS
    from labtech_nb.exceptions import LabError
    from labtech_nb.notebook.dashboard import DashboardView

    from .nb_tasks import Breaks, Trivial

    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    view = DashboardView(display=False)
    lab = labtech.Lab(storage=tmp_path / "storage", runner_backend="serial")
    with pytest.raises(LabError):
        lab.run_tasks([Trivial(i=2), Breaks(i=1)], observers=[view])
    dashboard = view.dashboard
    assert dashboard.tabs.get_title(3) == "Graph"
    value = dashboard.graph.value
    assert value.startswith("<img alt='task graph' src='data:image/svg+xml;base64,")
    import base64

    svg = base64.b64decode(value.split("base64,", 1)[1].rstrip("'>")).decode()
    assert "<svg" in svg
    assert "Trivial" in svg and "Breaks" in svg
    assert "[done]" in svg and "[failed]" in svg
    assert STATUS_COLOURS["done"].lower() in svg.lower() and STATUS_COLOURS["failed"].lower() in svg.lower()
