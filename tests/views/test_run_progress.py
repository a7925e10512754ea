"""`RunProgress`: the run model every view reads, folded from recorded and real event streams."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import pytest

import labtech_nb as labtech
from labtech_nb.engine.events import (
    Event,
    ResourceSample,
    RunFinished,
    RunStarted,
    TaskFailed,
    TaskLoaded,
    TaskLogLine,
    TaskProgress,
    TaskQueued,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
)
from labtech_nb.engine.progress import LOG_LINES_PER_TASK
from labtech_nb.exceptions import DependencyFailedError, LabError
from labtech_nb.views.run_progress import RunProgress, TypeCounts, format_bytes, format_seconds
from tests.support.events import T0, EventFeed, EventRecorder
from tests.support.tasks import Explodes, Leaf, Number, Root, Scaled

# --- task types for the real runs --------------------------------------------------------------


@labtech.task
class Interrupts:
    value: int

    def run(self) -> int:
        raise KeyboardInterrupt


# --- recorded event streams --------------------------------------------------------------------


def counts(progress: RunProgress, type_name: str) -> dict[str, int]:
    c = progress.types[type_name]
    return {
        "total": c.total,
        "queued": c.queued,
        "running": c.running,
        "loaded": c.loaded,
        "done": c.done,
        "failed": c.failed,
        "skipped": c.skipped,
    }


def zero(**values: int) -> dict[str, int]:
    base = dict.fromkeys(("total", "queued", "running", "loaded", "done", "failed", "skipped"), 0)
    base.update(values)
    return base


LEAF1, LEAF2, LEAF3 = Leaf(n=1), Leaf(n=2), Leaf(n=3)
ROOT = Root(leaves=[LEAF1, LEAF2, LEAF3])


def started_run() -> RunProgress:
    progress = RunProgress()
    EventFeed(T0, observer=progress).start({"Leaf": 3, "Root": 1}, cached=1)
    return progress


def test_a_new_model_is_pending_and_empty() -> None:
    progress = RunProgress()
    assert progress.state == "pending"
    assert progress.elapsed(now=T0) == 0.0
    assert progress.eta(now=T0) is None
    assert progress.totals == TypeCounts()
    assert progress.summary(now=T0) == "pending, 0/0 done, 0 from cache, 0 running, 0 failed, 0 skipped, elapsed 0:00:00"


def test_run_started_announces_every_type_with_its_total() -> None:
    progress = started_run()
    assert progress.state == "running"
    assert progress.run_id == "run1"
    assert list(progress.types) == ["Leaf", "Root"]
    assert counts(progress, "Leaf") == zero(total=3)
    assert counts(progress, "Root") == zero(total=1)
    assert progress.totals.total == 4
    assert progress.totals.remaining == 4


def test_counts_follow_each_task_through_queued_running_and_done() -> None:
    progress = started_run()
    progress.observe(TaskQueued("Leaf[1]", "Leaf", LEAF1, cached=False, time=T0 + 1))
    assert counts(progress, "Leaf") == zero(total=3, queued=1)
    assert progress.active["Leaf[1]"].status == "queued"
    assert progress.active["Leaf[1]"].start is None

    start = datetime(2026, 1, 5, 14, 2, 55)
    progress.observe(TaskStarted("Leaf[1]", "run", start, 4242, time=T0 + 2))
    assert counts(progress, "Leaf") == zero(total=3, running=1)
    row = progress.active["Leaf[1]"]
    assert (row.status, row.start, row.pid, row.task_type, row.task) == ("running", start, 4242, "Leaf", LEAF1)

    # A second start announcement for the same task (process runners re-announce after a pause) counts once.
    progress.observe(TaskStarted("Leaf[1]", "run", start, 4242, time=T0 + 2.5))
    assert counts(progress, "Leaf") == zero(total=3, running=1)

    progress.observe(TaskSucceeded("Leaf[1]", LEAF1, duration=1.5, time=T0 + 3))
    assert counts(progress, "Leaf") == zero(total=3, done=1)
    assert "Leaf[1]" not in progress.active
    assert progress.durations == {"Leaf[1]": 1.5}
    assert progress.task_types["Leaf[1]"] == "Leaf"
    assert progress.tasks["Leaf[1]"] is LEAF1


def test_a_cache_load_shows_as_loading_then_counts_as_loaded_not_done() -> None:
    progress = started_run()
    progress.observe(TaskQueued("Leaf[1]", "Leaf", LEAF1, cached=True, time=T0 + 1))
    progress.observe(TaskStarted("Leaf[1]", "load", datetime(2026, 1, 5, 14, 0, 0), 77, time=T0 + 1))
    assert progress.active["Leaf[1]"].status == "loading"
    assert counts(progress, "Leaf") == zero(total=3, running=1)
    progress.observe(TaskLoaded("Leaf[1]", LEAF1, time=T0 + 2))
    assert counts(progress, "Leaf") == zero(total=3, loaded=1)
    assert progress.active == {}
    assert progress.totals.finished == 1


def test_a_task_that_finishes_without_a_start_event_leaves_the_queue() -> None:
    progress = started_run()
    progress.observe(TaskQueued("Leaf[1]", "Leaf", LEAF1, cached=True, time=T0 + 1))
    progress.observe(TaskLoaded("Leaf[1]", LEAF1, time=T0 + 2))
    assert counts(progress, "Leaf") == zero(total=3, loaded=1)


def test_active_rows_carry_resources_progress_and_the_last_output_line() -> None:
    progress = started_run()
    progress.observe(TaskQueued("Leaf[1]", "Leaf", LEAF1, cached=False, time=T0 + 1))
    progress.observe(TaskStarted("Leaf[1]", "run", datetime(2026, 1, 5, 14, 2, 55), 4242, time=T0 + 1))
    progress.observe(ResourceSample("Leaf[1]", cpu_percent=98.0, rss_bytes=3 * 2**20, children=2, threads=5, time=T0 + 2))
    progress.observe(TaskProgress("Leaf[1]", done=3, total=10, description="folds", time=T0 + 2))
    progress.observe(TaskLogLine("Leaf[1]", "stdout", logging.INFO, "fold 3 done", time=T0 + 2))
    progress.observe(TaskLogLine("Leaf[1]", "stderr", logging.ERROR, "warning: slow fold", time=T0 + 3))
    row = progress.active["Leaf[1]"]
    assert (row.cpu_percent, row.rss_bytes, row.children, row.threads) == (98.0, 3 * 2**20, 2, 5)
    assert (row.progress_done, row.progress_total, row.progress_description) == (3, 10, "folds")
    assert row.last_line == "warning: slow fold"
    assert list(progress.logs["Leaf[1]"]) == ["fold 3 done", "warning: slow fold"]

    # Later samples and progress replace the earlier ones.
    progress.observe(ResourceSample("Leaf[1]", cpu_percent=12.5, rss_bytes=2**20, time=T0 + 4))
    progress.observe(TaskProgress("Leaf[1]", done=7, total=None, description=None, time=T0 + 4))
    row = progress.active["Leaf[1]"]
    assert (row.cpu_percent, row.rss_bytes, row.children, row.threads) == (12.5, 2**20, 0, 0)
    assert (row.progress_done, row.progress_total, row.progress_description) == (7, None, None)


def test_events_about_tasks_that_are_not_active_change_no_row() -> None:
    progress = started_run()
    progress.observe(ResourceSample("Leaf[9]", cpu_percent=50.0, rss_bytes=1, time=T0 + 1))
    progress.observe(TaskProgress("Leaf[9]", 1, 2, "x", time=T0 + 1))
    progress.observe(TaskStarted("Leaf[9]", "run", datetime(2026, 1, 5), 1, time=T0 + 1))
    progress.observe(TaskLogLine("Leaf[9]", "log", logging.INFO, "late line", time=T0 + 1))
    assert progress.active == {}
    assert counts(progress, "Leaf") == zero(total=3)
    # Output is still kept for the log viewer, even when it arrives after the task left the table.
    assert list(progress.logs["Leaf[9]"]) == ["late line"]


def test_logs_are_kept_per_task_and_bounded_to_the_most_recent_lines() -> None:
    progress = started_run()
    for task_name in ("Leaf[1]", "Leaf[2]"):
        progress.observe(TaskQueued(task_name, "Leaf", LEAF1, cached=False, time=T0 + 1))
    extra = 137
    for index in range(LOG_LINES_PER_TASK + extra):
        progress.observe(TaskLogLine("Leaf[1]", "stdout", logging.INFO, f"line {index}", time=T0 + 2))
    progress.observe(TaskLogLine("Leaf[2]", "log", logging.WARNING, "only line", time=T0 + 2))
    progress.observe(TaskSucceeded("Leaf[1]", LEAF1, duration=1.0, time=T0 + 3))

    kept = list(progress.logs["Leaf[1]"])
    assert len(kept) == LOG_LINES_PER_TASK
    assert kept[0] == f"line {extra}"
    assert kept[-1] == f"line {LOG_LINES_PER_TASK + extra - 1}"
    assert list(progress.logs["Leaf[2]"]) == ["only line"]
    # The lines of a finished task stay available.
    assert "Leaf[1]" not in progress.active


def test_failures_keep_the_message_and_traceback_and_tell_failed_from_skipped() -> None:
    progress = started_run()
    trace = 'Traceback (most recent call last):\n  File "leaf.py", line 3, in run\nValueError: bad fold\n'
    progress.observe(TaskQueued("Leaf[1]", "Leaf", LEAF1, cached=False, time=T0 + 1))
    progress.observe(TaskStarted("Leaf[1]", "run", datetime(2026, 1, 5), 1, time=T0 + 1))
    progress.observe(TaskFailed("Leaf[1]", LEAF1, ValueError("bad fold"), trace, time=T0 + 2))
    reason = DependencyFailedError(ROOT, LEAF1)
    progress.observe(TaskSkipped("Root[1]", ROOT, reason, time=T0 + 2))

    assert counts(progress, "Leaf") == zero(total=3, failed=1)
    # The skipped task was never queued: it is counted under its task type all the same.
    assert counts(progress, "Root") == zero(total=1, skipped=1)
    assert progress.task_types["Root[1]"] == "Root"
    assert progress.active == {}
    failed, skipped = progress.failures
    assert (failed.name, failed.task, failed.message, failed.traceback, failed.skipped) == (
        "Leaf[1]",
        LEAF1,
        "bad fold",
        trace,
        False,
    )
    assert (skipped.name, skipped.task, skipped.skipped, skipped.traceback) == ("Root[1]", ROOT, True, "")
    assert skipped.message == f"Task '{ROOT}' was skipped because its dependency '{LEAF1}' failed."
    assert progress.totals.failed == 1
    assert progress.totals.skipped == 1


def test_elapsed_runs_until_the_run_finishes() -> None:
    progress = started_run()
    assert progress.elapsed(now=T0 + 42.5) == 42.5
    assert progress.elapsed(now=T0 - 5) == 0.0  # a clock behind the start never gives a negative duration
    progress.observe(RunFinished("run1", "finished", {}, time=T0 + 50))
    assert progress.elapsed(now=T0 + 2_000) == 50.0
    assert progress.finished_at == T0 + 50


def recorded_half_run() -> RunProgress:
    """4 tasks: Leaf[1] loaded, Leaf[2] and Leaf[3] ran (started at T0+1, done at T0+6 and T0+11), Root[1] running."""
    progress = started_run()
    feed = EventFeed(T0, observer=progress)
    feed.queue("Leaf[1]", "Leaf", 0.5, task=LEAF1, cached=True)
    feed.begin("Leaf[1]", 0.5, kind="load", start=datetime(2026, 1, 5, 14, 0, 0), pid=10)
    feed.load("Leaf[1]", 0.6, task=LEAF1)
    feed.queue("Leaf[2]", "Leaf", 1, task=LEAF2)
    feed.begin("Leaf[2]", 1, start=datetime(2026, 1, 5, 14, 0, 1), pid=11)
    feed.queue("Leaf[3]", "Leaf", 1, task=LEAF3)
    feed.begin("Leaf[3]", 1, start=datetime(2026, 1, 5, 14, 0, 1), pid=12)
    feed.succeed("Leaf[2]", 6, task=LEAF2, duration=5.0)
    feed.succeed("Leaf[3]", 11, task=LEAF3, duration=10.0)
    feed.queue("Root[1]", "Root", 11, task=ROOT)
    feed.begin("Root[1]", 11, start=datetime(2026, 1, 5, 14, 0, 11), pid=13)
    return progress


def test_eta_comes_from_the_pace_of_executed_tasks() -> None:
    progress = started_run()
    # Nothing executed yet: no estimate (a cache load says nothing about the pace of real work).
    assert progress.eta(now=T0 + 5) is None
    progress = recorded_half_run()
    # 2 tasks executed in the 10 s since the first task started: 5 s each, 1 task to go.
    assert progress.eta(now=T0 + 11) == pytest.approx(5.0)
    # 2 executed in 20 s: 10 s per task.
    assert progress.eta(now=T0 + 21) == pytest.approx(10.0)
    progress.observe(TaskSucceeded("Root[1]", ROOT, duration=1.0, time=T0 + 12))
    assert progress.eta(now=T0 + 12) == 0.0
    progress.observe(RunFinished("run1", "finished", {}, time=T0 + 12))
    assert progress.eta(now=T0 + 12) is None


def test_summary_reports_state_counts_elapsed_and_eta() -> None:
    progress = recorded_half_run()
    assert counts(progress, "Leaf") == zero(total=3, loaded=1, done=2)
    assert counts(progress, "Root") == zero(total=1, running=1)
    assert progress.summary(now=T0 + 11) == (
        "running, 3/4 done, 1 from cache, 1 running, 0 failed, 0 skipped, elapsed 0:00:11, ETA 0:00:05"
    )


@pytest.mark.parametrize("state", ["finished", "failed", "interrupted"])
def test_the_final_state_clears_active_tasks_and_stops_the_clock(state: str) -> None:
    progress = recorded_half_run()
    progress.observe(TaskQueued("Extra[1]", "Root", ROOT, cached=False, time=T0 + 11))
    assert progress.totals.queued == 1
    progress.observe(RunFinished("run1", state, {"loaded": 1, "done": 2}, time=T0 + 3_725))
    assert progress.state == state
    assert progress.active == {}
    assert progress.totals.running == 0
    assert progress.totals.queued == 0
    assert counts(progress, "Leaf") == zero(total=3, loaded=1, done=2)
    assert progress.eta(now=T0 + 9_999) is None
    # A run that ended early says how many of its tasks never ran.
    not_run = "" if state == "finished" else ", 1 not run"
    assert progress.summary(now=T0 + 9_999) == (
        f"{state}, 3/4 done, 1 from cache, 0 running, 0 failed, 0 skipped, elapsed 1:02:05{not_run}"
    )


def test_every_event_bumps_the_version() -> None:
    progress = RunProgress()
    progress.observe(RunStarted("r", total=0, counts_by_type={}, cached=0, time=T0))
    progress.observe(Event())  # unknown event types are counted but change nothing else
    progress(RunFinished("r", "finished", {}, time=T0 + 1))  # the model is itself an observer
    assert progress.version == 3
    assert progress.state == "finished"


def test_formatting_helpers() -> None:
    assert format_seconds(0) == "0:00:00"
    assert format_seconds(59.6) == "0:01:00"
    assert format_seconds(3_725) == "1:02:05"
    assert format_seconds(36_000) == "10:00:00"
    assert format_bytes(None) == ""
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(3 * 2**20) == "3.0 MiB"
    assert format_bytes(5 * 2**40) == "5120.0 GiB"


# --- real runs ---------------------------------------------------------------------------------


def test_a_real_serial_run_folds_into_matching_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    lab = labtech.Lab(storage=tmp_path / "storage", runner_backend="serial")
    lab.run_tasks([Number(value=1)])  # cached for the second run

    recorder = EventRecorder()
    scaled_one = Scaled(source=Number(value=1), factor=2)
    scaled_two = Scaled(source=Number(value=2), factor=3)
    explodes = Explodes(source=Number(value=3))
    downstream = Scaled(source=explodes, factor=4)
    with pytest.raises(LabError) as raised:
        lab.run_tasks([scaled_one, scaled_two, explodes, downstream], observers=[recorder])
    assert raised.value.results == {scaled_one: 2, scaled_two: 6}

    progress = recorder.progress
    finished = recorder.events[-1]
    assert isinstance(finished, RunFinished)
    assert progress.state == "failed" == finished.state
    assert counts(progress, "Number") == zero(total=3, loaded=1, done=2)
    assert counts(progress, "Scaled") == zero(total=3, done=2, skipped=1)
    assert counts(progress, "Explodes") == zero(total=1, failed=1)
    totals = progress.totals
    assert finished.counts == {"loaded": totals.loaded, "done": totals.done, "failed": totals.failed, "skipped": totals.skipped}
    assert progress.active == {}

    failed, skipped = progress.failures
    assert failed.name == recorder.name_of(explodes)
    assert failed.skipped is False
    assert failed.message == "cannot use 3"
    assert "Traceback (most recent call last)" in failed.traceback
    assert "ValueError: cannot use 3" in failed.traceback
    assert skipped.name == recorder.name_of(downstream)
    assert skipped.skipped is True
    assert skipped.message == f"Task '{downstream}' was skipped because its dependency '{explodes}' failed."
    assert sorted(progress.durations) == sorted(
        recorder.name_of(task) for task in (Number(value=2), Number(value=3), scaled_one, scaled_two)
    )

    # Output printed inside run() is attributed to the task that printed it.
    assert list(progress.logs[recorder.name_of(scaled_one)]) == ["scaling 1 by 2"]
    assert list(progress.logs[recorder.name_of(scaled_two)]) == ["scaling 2 by 3"]
    summary = progress.summary()
    assert summary.startswith("failed, 5/7 done, 1 from cache, 0 running, 1 failed, 1 skipped, elapsed 0:00:0")


def test_a_real_interrupted_run_ends_interrupted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    lab = labtech.Lab(storage=None, runner_backend="serial")
    recorder = EventRecorder()
    with pytest.raises(KeyboardInterrupt):
        lab.run_tasks([Number(value=1), Interrupts(value=1), Number(value=2)], observers=[recorder])
    progress = recorder.progress
    assert progress.state == "interrupted"
    assert progress.active == {}
    assert progress.totals.running == progress.totals.queued == 0
    assert counts(progress, "Number")["done"] >= 1
    assert counts(progress, "Interrupts") == zero(total=1)
    assert progress.summary().startswith("interrupted, ")


def test_a_recomputed_cache_entry_keeps_the_counts_consistent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreadable cache entry is re-run, which adds its dependencies to the run mid-way."""
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    lab = labtech.Lab(storage=tmp_path / "storage", runner_backend="serial")
    task = Scaled(source=Number(value=5), factor=2)
    lab.run_tasks([task])
    (data,) = (tmp_path / "storage").glob("pickle__*Scaled__*/data.pickle")
    data.write_bytes(b"not a pickle")

    recorder = EventRecorder()
    running_after_success: list[int] = []

    def snapshot(event: Event) -> None:
        if isinstance(event, TaskSucceeded):
            running_after_success.append(recorder.progress.totals.running)

    assert lab.run_tasks([Scaled(source=Number(value=5), factor=2)], observers=[recorder, snapshot]) == {task: 10}
    progress = recorder.progress
    assert progress.state == "finished"
    # When the re-run task succeeds nothing is running any more (the summary line must not say "1 running").
    assert running_after_success == [0]
    # Every task the run executed or loaded is counted against a total that includes it.
    for type_name, type_counts in progress.types.items():
        assert type_counts.finished <= type_counts.total, (type_name, type_counts)
    assert counts(progress, "Scaled") == zero(total=1, done=1)
    assert counts(progress, "Number") == zero(total=1, loaded=1)
    assert progress.summary().startswith("finished, 2/2 done, 1 from cache, 0 running, 0 failed, 0 skipped")


def test_totals_count_cache_loads_but_not_the_dependencies_of_cached_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    lab = labtech.Lab(storage=tmp_path / "storage", runner_backend="serial")
    cached = Scaled(source=Number(value=4), factor=2)
    lab.run_tasks([cached])

    recorder = EventRecorder()
    fresh = Scaled(source=Number(value=6), factor=2)
    assert lab.run_tasks([cached, fresh], observers=[recorder]) == {cached: 8, fresh: 12}
    started = recorder.events[0]
    assert isinstance(started, RunStarted)
    assert started.counts_by_type == {"Scaled": 2, "Number": 1}
    assert started.total == 3
    assert started.cached == 1
    progress = recorder.progress
    assert counts(progress, "Scaled") == zero(total=2, loaded=1, done=1)
    assert counts(progress, "Number") == zero(total=1, done=1)
    assert progress.summary().startswith("finished, 3/3 done, 1 from cache, 0 running, 0 failed, 0 skipped")
