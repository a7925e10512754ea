"""Redraws stay bounded however many tasks finish, and LABTECH_NB_PROGRESS picks the view."""

from __future__ import annotations

import io
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

import IPython
import pytest

import labtech_nb as labtech
from labtech_nb.views import selection
from labtech_nb.views.selection import build_views, progress_mode
from labtech_nb.views.terminal import TerminalView
from tests.support.ipython import KernelShell, TerminalShell

TASK_COUNT = 10_000


@labtech.task
class Trivial:
    index: int

    def run(self) -> int:
        return self.index


def run_many(view: TerminalView, monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    lab = labtech.Lab(storage=None, runner_backend="serial")
    tasks = [Trivial(index=index) for index in range(TASK_COUNT)]
    started = time.monotonic()
    results = lab.run_tasks(tasks, observers=[view])
    elapsed = time.monotonic() - started
    assert len(results) == TASK_COUNT
    assert view.progress.state == "finished"
    assert view.progress.types["Trivial"].done == TASK_COUNT
    return elapsed


def test_plain_lines_are_bounded_by_the_summary_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    interval = 0.2
    view = TerminalView(stream=stream, interactive=False, summary_interval=interval)
    elapsed = run_many(view, monkeypatch)
    assert view.draw_count <= elapsed / interval + 3, (view.draw_count, elapsed)
    lines = stream.getvalue().splitlines()
    # A start line, at most one summary per interval, the final summary and the one type line.
    assert lines[0] == f"labtech_nb: running {TASK_COUNT} tasks (Trivial: {TASK_COUNT})"
    assert lines[-1] == f"  Trivial: {TASK_COUNT}/{TASK_COUNT} (0 from cache)"
    assert lines[-2].startswith(f"labtech_nb: finished, {TASK_COUNT}/{TASK_COUNT} done, ")
    assert len(lines) <= elapsed / interval + 4
    if elapsed > 3 * interval:
        # Long enough for periodic summaries: at least one was written.
        assert any(line.startswith("labtech_nb: running, ") for line in lines), lines
    assert "\x1b" not in stream.getvalue()


def test_terminal_redraws_are_bounded_by_the_minimum_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    interval = 0.1
    view = TerminalView(stream=stream, interactive=True, min_interval=interval)
    elapsed = run_many(view, monkeypatch)
    assert view.draw_count <= elapsed / interval + 3, (view.draw_count, elapsed)
    output = stream.getvalue()
    assert f"Trivial: {TASK_COUNT}/{TASK_COUNT} [" in output
    # Each redraw writes a bounded amount: the output does not grow with the number of tasks.
    assert len(output) < 5_000 * (view.draw_count + 1)


# --- choosing the view -------------------------------------------------------------------------

VIEW_OPTIONS: dict[str, Any] = {
    "disable_progress": False,
    "disable_top": False,
    "top_format": "$name $status",
    "top_sort": "-cpu",
    "top_n": 3,
}


def labtech_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and record.name.startswith("labtech_nb")
    ]


@pytest.mark.parametrize("value", [None, "auto", "", "  Auto  "])
def test_auto_means_text_outside_a_kernel(
    value: str | None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if value is None:
        monkeypatch.delenv("LABTECH_NB_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("LABTECH_NB_PROGRESS", value)
    assert labtech.Lab(storage=None).notebook is False
    assert progress_mode(notebook=False) == "text"
    assert progress_mode(notebook=True) == "widget"
    (view,) = build_views(notebook=False, **VIEW_OPTIONS)
    assert isinstance(view, TerminalView)
    assert (view.show_bars, view.show_top, view.top_format, view.top_sort, view.top_n) == (True, True, "$name $status", "-cpu", 3)
    assert labtech_warnings(caplog) == []


def test_text_overrides_a_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "text")
    assert progress_mode(notebook=True) == "text"
    (view,) = build_views(notebook=True, **VIEW_OPTIONS)
    assert isinstance(view, TerminalView)


def test_disable_options_reach_the_view(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "text")
    (view,) = build_views(notebook=False, **{**VIEW_OPTIONS, "disable_progress": True})
    assert (view.show_bars, view.show_top) == (False, True)
    (view,) = build_views(notebook=False, **{**VIEW_OPTIONS, "disable_top": True})
    assert (view.show_bars, view.show_top) == (True, False)
    assert build_views(notebook=False, **{**VIEW_OPTIONS, "disable_progress": True, "disable_top": True}) == []


def test_widget_falls_back_to_text_with_a_warning_when_the_dashboard_cannot_be_imported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "widget")
    monkeypatch.setitem(sys.modules, "labtech_nb.notebook.dashboard", None)  # any import of it now fails
    assert progress_mode(notebook=False) == "widget"
    (view,) = build_views(notebook=False, **VIEW_OPTIONS)
    assert isinstance(view, TerminalView)
    (warning,) = labtech_warnings(caplog)
    assert warning.startswith("The notebook dashboard is unavailable (")
    assert warning.endswith("); showing progress as text.")

    # And a whole run shows its progress as text.
    caplog.clear()
    capfd.readouterr()
    lab = labtech.Lab(storage=None, runner_backend="serial")
    assert lab.run_tasks([Trivial(index=1)]) == {Trivial(index=1): 1}
    err = capfd.readouterr().err
    assert "labtech_nb: running 1 tasks (Trivial: 1)" in err
    assert "  Trivial: 1/1 (0 from cache)" in err
    assert any(message.endswith("showing progress as text.") for message in labtech_warnings(caplog))


def test_off_means_no_view(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    assert progress_mode(notebook=True) == "off"
    assert build_views(notebook=True, **VIEW_OPTIONS) == []
    assert build_views(notebook=False, **VIEW_OPTIONS) == []
    assert labtech.Lab(storage=None).notebook is False
    labtech.Lab(storage=None, runner_backend="serial").run_tasks([Trivial(index=2)])
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("value", ["bogus", "tqdm", "none"])
def test_an_invalid_value_warns_and_means_auto(
    value: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", value)
    assert progress_mode(notebook=False) == "text"
    assert labtech_warnings(caplog) == [f"Ignoring LABTECH_NB_PROGRESS='{value}': use one of auto, widget, text, off."]
    caplog.clear()
    (view,) = build_views(notebook=False, **VIEW_OPTIONS)
    assert isinstance(view, TerminalView)
    assert len(labtech_warnings(caplog)) == 1


@pytest.mark.parametrize("value", [None, "auto", "widget", "text", "off", "bogus"])
def test_the_lab_detects_a_kernel_whatever_the_variable_says(value: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    if value is None:
        monkeypatch.delenv("LABTECH_NB_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("LABTECH_NB_PROGRESS", value)
    for shell, in_kernel in ((KernelShell(), True), (TerminalShell(), False), (None, False)):
        monkeypatch.setattr(IPython, "get_ipython", lambda shell=shell: shell)
        assert labtech.Lab(storage=None).notebook is in_kernel
        assert labtech.Lab(storage=None, notebook=not in_kernel).notebook is not in_kernel


@pytest.mark.parametrize(("value", "expected"), [("widget", "widget"), ("text", "text"), ("off", "off")])
def test_the_variable_overrides_the_kernel_for_every_run(
    value: str, expected: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(IPython, "get_ipython", lambda: KernelShell())
    lab = labtech.Lab(storage=None, runner_backend="serial")
    monkeypatch.setenv("LABTECH_NB_PROGRESS", value)  # read at each run, not when the Lab was created
    assert progress_mode(lab.notebook) == expected
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert progress_mode(labtech.Lab(storage=None).notebook) == expected
    if value == "text":
        capfd.readouterr()
        lab.run_tasks([Trivial(index=3)])
        assert "labtech_nb: running 1 tasks (Trivial: 1)" in capfd.readouterr().err


@pytest.fixture
def without_ipywidgets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A Jupyter kernel where ipywidgets is not installed, and the advice to install it not yet given."""
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # find_spec now says it is not installed
    monkeypatch.setattr(IPython, "get_ipython", lambda: KernelShell())
    selection._warn_that_ipywidgets_is_missing.cache_clear()
    yield
    selection._warn_that_ipywidgets_is_missing.cache_clear()


def test_a_kernel_without_ipywidgets_shows_text_and_warns_once(
    without_ipywidgets: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("LABTECH_NB_PROGRESS", raising=False)
    lab = labtech.Lab(storage=None)
    assert lab.notebook is True
    assert progress_mode(lab.notebook) == "text"
    (view,) = build_views(notebook=lab.notebook, **VIEW_OPTIONS)
    assert isinstance(view, TerminalView)
    assert progress_mode(labtech.Lab(storage=None).notebook) == "text"
    assert labtech_warnings(caplog) == [
        "ipywidgets is not installed, so progress is shown as text. Install labtech_nb[jupyter] for the dashboard."
    ]


@pytest.mark.parametrize("value", ["text", "off"])
def test_a_kernel_without_ipywidgets_does_not_warn_when_the_variable_chose_no_widgets(
    value: str, without_ipywidgets: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", value)
    lab = labtech.Lab(storage=None, runner_backend="serial")
    assert progress_mode(lab.notebook) == value
    lab.run_tasks([Trivial(index=4)])
    assert labtech_warnings(caplog) == []
