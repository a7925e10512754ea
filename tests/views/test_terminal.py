"""The terminal view: plain summary lines off a terminal, tqdm bars and the "top" table on one."""

from __future__ import annotations

import fcntl
import io
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import labtech_nb as labtech
from labtech_nb.engine.events import Event
from labtech_nb.exceptions import DependencyFailedError, LabError
from labtech_nb.views.run_progress import RunProgress
from labtech_nb.views.terminal import TerminalView, format_top
from tests.support.events import T0, EventFeed
from tests.support.tasks import Leaf, Root


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def text_view(**kwargs: Any) -> tuple[TerminalView, io.StringIO, FakeClock]:
    stream = io.StringIO()
    clock = FakeClock(T0)
    view = TerminalView(stream=stream, interactive=False, clock=clock, **kwargs)
    return view, stream, clock


def play(view: TerminalView, clock: FakeClock, events: list[Event], time_scale: float = 1.0) -> None:
    """Deliver each event with the clock at its time (its offset from T0 multiplied by ``time_scale``)."""
    for event in events:
        clock.now = T0 + (event.time - T0) * time_scale
        view(event)


LEAVES = [Leaf(n=1), Leaf(n=2), Leaf(n=3)]
ROOTS = [Root(leaves=LEAVES[:2]), Root(leaves=LEAVES)]


def recorded_run(final_state: str = "failed") -> list[Event]:
    """5 tasks: Leaf[1] loaded, Leaf[2] and Leaf[3] run, Root[1] fails, Root[2] skipped."""
    feed = EventFeed(T0)
    start = datetime(2026, 1, 5, 14, 2, 55)
    return [
        feed.start({"Leaf": 3, "Root": 2}, offset=0, cached=1),
        feed.queue("Leaf[1]", "Leaf", offset=1, task=LEAVES[0], cached=True),
        feed.begin("Leaf[1]", offset=1, kind="load", start=start, pid=100),
        feed.load("Leaf[1]", offset=1, task=LEAVES[0]),
        feed.queue("Leaf[2]", "Leaf", offset=2, task=LEAVES[1]),
        feed.begin("Leaf[2]", offset=2, start=start, pid=101),
        feed.queue("Leaf[3]", "Leaf", offset=2, task=LEAVES[2]),
        feed.begin("Leaf[3]", offset=2, start=start, pid=102),
        feed.succeed("Leaf[2]", offset=7, task=LEAVES[1], duration=5.0),
        feed.sample("Leaf[3]", 99.0, 2**20, offset=10),
        feed.succeed("Leaf[3]", offset=12, task=LEAVES[2], duration=10.0),
        feed.queue("Root[1]", "Root", offset=12, task=ROOTS[0]),
        feed.begin("Root[1]", offset=12, start=start, pid=103),
        feed.sample("Root[1]", 50.0, 2**20, offset=19.9),
        feed.fail("Root[1]", ValueError("negative leaf"), "Traceback ...\nValueError: negative leaf\n", offset=20, task=ROOTS[0]),
        feed.skip("Root[2]", ROOTS[1], DependencyFailedError(ROOTS[1], ROOTS[0]), offset=20),
        feed.finish(final_state, offset=25, counts={"loaded": 1, "done": 2, "failed": 1, "skipped": 1}),
    ]


# --- off a terminal: plain lines ---------------------------------------------------------------


def test_plain_lines_for_start_periodic_summaries_and_the_final_summary() -> None:
    view, stream, clock = text_view(summary_interval=10)
    play(view, clock, recorded_run())
    assert stream.getvalue().splitlines() == [
        "labtech_nb: running 5 tasks (Leaf: 3, Root: 2)",
        # At +10 s: 1 executed in the 8 s since the first task started; 3 of 5 tasks unfinished.
        "labtech_nb: running, 2/5 done, 1 from cache, 1 running, 0 failed, 0 skipped, elapsed 0:00:10, ETA 0:00:24",
        # Nothing at +12 or +19.9 s (under 10 s since the last line); at +20 s: 3 executed in 18 s, 1 to go.
        "labtech_nb: running, 3/5 done, 1 from cache, 0 running, 1 failed, 0 skipped, elapsed 0:00:20, ETA 0:00:06",
        "labtech_nb: failed, 3/5 done, 1 from cache, 0 running, 1 failed, 1 skipped, elapsed 0:00:25",
        "  Leaf: 3/3 (1 from cache)",
        "  Root: 0/2 (0 from cache, 1 failed, 1 skipped)",
    ]
    assert "\x1b" not in stream.getvalue()
    assert view.draw_count == 4


def test_a_longer_summary_interval_writes_fewer_lines() -> None:
    view, stream, clock = text_view(summary_interval=15)
    play(view, clock, recorded_run())
    lines = stream.getvalue().splitlines()
    assert lines[0] == "labtech_nb: running 5 tasks (Leaf: 3, Root: 2)"
    # Only the event at +19.9 s is 15 s or more after the start line: 2 executed in 17.9 s, 2 to go.
    assert lines[1] == (
        "labtech_nb: running, 3/5 done, 1 from cache, 1 running, 0 failed, 0 skipped, elapsed 0:00:20, ETA 0:00:18"
    )
    assert lines[2].startswith("labtech_nb: failed, 3/5 done")
    assert len(lines) == 5


def test_no_periodic_lines_when_the_run_is_shorter_than_the_interval() -> None:
    view, stream, clock = text_view()  # default summary_interval: 10 s
    play(view, clock, recorded_run("interrupted"), time_scale=0.1)
    assert stream.getvalue().splitlines() == [
        "labtech_nb: running 5 tasks (Leaf: 3, Root: 2)",
        "labtech_nb: interrupted, 3/5 done, 1 from cache, 0 running, 1 failed, 1 skipped, elapsed 0:00:25",
        "  Leaf: 3/3 (1 from cache)",
        "  Root: 0/2 (0 from cache, 1 failed, 1 skipped)",
    ]


def test_without_bars_the_final_summary_has_no_per_type_lines() -> None:
    view, stream, clock = text_view(show_bars=False, summary_interval=10)
    play(view, clock, recorded_run("finished"))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "labtech_nb: running 5 tasks (Leaf: 3, Root: 2)"
    assert lines[-1] == "labtech_nb: finished, 3/5 done, 1 from cache, 0 running, 1 failed, 1 skipped, elapsed 0:00:25"
    assert not [line for line in lines if line.startswith("  ")]


def run_small_lab(fail: bool = False, **options: Any) -> dict[Any, Any]:
    lab = labtech.Lab(storage=None, runner_backend="serial")
    leaves = [Leaf(n=1), Leaf(n=-2 if fail else 2), Leaf(n=3)]
    return lab.run_tasks([Root(leaves=leaves)], **options)


@pytest.mark.parametrize("mode", ["text", "auto", "TEXT"])
def test_run_tasks_writes_plain_lines_to_stderr_off_a_terminal(
    mode: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", mode)
    assert run_small_lab() == {Root(leaves=[Leaf(n=1), Leaf(n=2), Leaf(n=3)]): 6}
    out, err = capfd.readouterr()
    assert out == ""
    assert "\x1b" not in err
    lines = err.splitlines()
    assert lines[0] in ("labtech_nb: running 4 tasks (Root: 1, Leaf: 3)", "labtech_nb: running 4 tasks (Leaf: 3, Root: 1)")
    assert re.fullmatch(
        r"labtech_nb: finished, 4/4 done, 0 from cache, 0 running, 0 failed, 0 skipped, elapsed 0:00:0\d", lines[1]
    )
    assert sorted(lines[2:]) == ["  Leaf: 3/3 (0 from cache)", "  Root: 1/1 (0 from cache)"]


def test_run_tasks_reports_failures_in_the_final_lines(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "text")
    with pytest.raises(LabError, match=r"Failed to complete 1 submitted task\(s\)"):
        run_small_lab(fail=True)
    err = capfd.readouterr().err
    assert "\x1b" not in err
    assert re.search(r"^labtech_nb: failed, 3/4 done, 0 from cache, 0 running, 1 failed, 0 skipped, elapsed ", err, re.MULTILINE)
    assert "  Root: 0/1 (0 from cache, 1 failed)\n" in err


@pytest.mark.parametrize(
    ("options", "expect_start", "expect_type_lines"),
    [
        ({}, True, True),
        ({"disable_progress": True}, True, False),
        ({"disable_top": True}, True, True),
        ({"disable_progress": True, "disable_top": True}, False, False),
    ],
)
def test_run_tasks_honours_disable_progress_and_disable_top_off_a_terminal(
    options: dict[str, bool],
    expect_start: bool,
    expect_type_lines: bool,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "text")
    run_small_lab(**options)
    err = capfd.readouterr().err
    assert ("labtech_nb: running 4 tasks" in err) is expect_start
    assert ("labtech_nb: finished, 4/4 done" in err) is expect_start
    assert ("  Leaf: 3/3 (0 from cache)" in err) is expect_type_lines
    assert ("  Root: 1/1 (0 from cache)" in err) is expect_type_lines
    if not expect_start:
        assert err == ""


def test_a_view_observing_every_run_of_a_lab_shows_each_run_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Lab(observers=...)` sends every run to the same view: the second run must not inherit the first's counts."""
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    stream = io.StringIO()
    view = TerminalView(stream=stream, interactive=False)
    lab = labtech.Lab(storage=None, runner_backend="serial", observers=[view])
    with pytest.raises(LabError):
        lab.run_tasks([Root(leaves=[Leaf(n=-1)])])
    first_run = stream.getvalue()
    assert "labtech_nb: failed, 1/2 done, 0 from cache, 0 running, 1 failed, 0 skipped" in first_run

    stream.seek(0)
    stream.truncate()
    lab.run_tasks([Leaf(n=7), Leaf(n=8)])
    lines = stream.getvalue().splitlines()
    assert lines[0] == "labtech_nb: running 2 tasks (Leaf: 2)"
    assert lines[1].startswith("labtech_nb: finished, 2/2 done, 0 from cache, 0 running, 0 failed, 0 skipped, elapsed ")
    assert lines[2:] == ["  Leaf: 2/2 (0 from cache)"]


def test_progress_off_writes_nothing(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LABTECH_NB_PROGRESS", "off")
    run_small_lab()
    assert capfd.readouterr() == ("", "")


# --- drawing in place (interactive) into a buffer ----------------------------------------------


def test_interactive_view_draws_bars_and_table_then_a_final_summary_after_failures() -> None:
    stream = io.StringIO()
    clock = FakeClock(T0)
    view = TerminalView(stream=stream, interactive=True, clock=clock, min_interval=0.25)
    play(view, clock, recorded_run())
    output = stream.getvalue()
    assert re.search(r"Leaf: 3/3 \[\d\d:\d\d, [^\]]*tasks/s\] \|[^|]*\| 100% \[\d\d:\d\d remaining\]", output)
    assert re.search(r"Root: 0/2 \[\d\d:\d\d, [^\]]*\] \|[^|]*\|   0% \[", output)
    # Drawn at +7 s (Leaf[3] left running) and at +10 s, with its first resource sample.
    assert re.search(r"1 active tasks as at \d\d:\d\d:\d\d\. Up to top 10 by start_time:", output)
    assert "Leaf[3] running since 14:02:55 CPU: 99.0% MEM:" in output
    assert output.rstrip("\n").endswith(
        "labtech_nb: failed, 3/5 done, 1 from cache, 0 running, 1 failed, 1 skipped, elapsed 0:00:25"
    )


def test_interactive_view_without_bars_or_table() -> None:
    for show_bars, show_top in ((False, True), (True, False)):
        stream = io.StringIO()
        clock = FakeClock(T0)
        view = TerminalView(stream=stream, interactive=True, clock=clock, show_bars=show_bars, show_top=show_top)
        play(view, clock, recorded_run("finished"))
        output = stream.getvalue()
        assert (re.search(r"Leaf: \d/3", output) is not None) is show_bars
        assert ("active tasks as at" in output) is show_top


# --- the "top" table ---------------------------------------------------------------------------

TOTAL_MEMORY = 1_000


def active_progress(*rows: tuple[str, str, int, datetime, float | None, int | None]) -> RunProgress:
    """A model with one active task per row: (name, kind, pid, start, cpu, rss bytes)."""
    progress = RunProgress()
    feed = EventFeed(T0, run_id="r", observer=progress)
    feed.start({"Fit": len(rows) + 1})
    feed.queue("Fit[99]", "Fit", task=object())  # queued tasks are not in the table
    for name, kind, pid, start, cpu, rss in rows:
        feed.queue(name, "Fit", task=object(), cached=kind == "load")
        feed.begin(name, kind=kind, pid=pid, start=start)
        if cpu is not None and rss is not None:
            children, threads = (2, 4) if kind == "run" else (12, 16)
            feed.sample(name, cpu, rss, children=children, threads=threads)
    return progress


NOW = datetime(2026, 1, 5, 14, 3, 11)
FIT03 = ("Fit[03]", "run", 4242, datetime(2026, 1, 5, 14, 2, 55), 98.0, 12)
FIT04 = ("Fit[04]", "run", 77, datetime(2026, 1, 5, 14, 1, 30), 10.0, 123)
FIT10 = ("Fit[10]", "load", 123456, datetime(2026, 1, 5, 14, 3, 5), 5.5, 5)


def top(
    progress: RunProgress, top_format: str = "$name $status since $start_time CPU: $cpu MEM: $rss", **kwargs: Any
) -> list[str]:
    options: dict[str, Any] = {"top_sort": "start_time", "top_n": 10, **kwargs}
    return format_top(progress, top_format=top_format, now=NOW, total_memory=TOTAL_MEMORY, **options)


def test_top_header_and_the_default_line_format() -> None:
    lines = top(active_progress(FIT03, FIT04))
    assert lines == [
        "2 active tasks as at 14:03:11. Up to top 10 by start_time:",
        "Fit[04] running since 14:01:30 CPU: 10.0% MEM: 12.3%",
        "Fit[03] running since 14:02:55 CPU: 98.0% MEM:  1.2%",
    ]


def test_top_pads_name_and_status_left_and_every_other_column_right() -> None:
    lines = top(active_progress(FIT03, FIT10), "[$name|$status|$pid|$start_time|$cpu|$rss|$children|$threads]")
    assert lines[1:] == [
        "[Fit[03]|running|  4242|14:02:55|98.0%|1.2%| 2| 4]",
        "[Fit[10]|loading|123456|14:03:05| 5.5%|0.5%|12|16]",
    ]
    narrow = top(
        active_progress(("A[1]", "run", 5, FIT03[3], 1.0, 1), ("LongName[2]", "load", 12345, FIT10[3], 100.0, 1)),
        "[$name|$status|$pid|$cpu]",
    )
    assert narrow[1:] == ["[A[1]       |running|    5|  1.0%]", "[LongName[2]|loading|12345|100.0%]"]


def test_top_shows_a_dash_for_metrics_not_yet_sampled() -> None:
    lines = top(active_progress(("Fit[1]", "run", 9, FIT03[3], None, None)), "$name $pid $cpu $rss $children $threads")
    assert lines[1] == "Fit[1] 9 - - - -"


@pytest.mark.parametrize(
    ("top_sort", "order"),
    [
        ("start_time", ["Fit[04]", "Fit[03]", "Fit[10]"]),
        ("-start_time", ["Fit[10]", "Fit[03]", "Fit[04]"]),
        ("name", ["Fit[03]", "Fit[04]", "Fit[10]"]),
        ("-name", ["Fit[10]", "Fit[04]", "Fit[03]"]),
        ("cpu", ["Fit[10]", "Fit[04]", "Fit[03]"]),
        ("-cpu", ["Fit[03]", "Fit[04]", "Fit[10]"]),
        ("pid", ["Fit[04]", "Fit[03]", "Fit[10]"]),
        ("-pid", ["Fit[10]", "Fit[03]", "Fit[04]"]),
        ("rss", ["Fit[10]", "Fit[03]", "Fit[04]"]),
        ("-rss", ["Fit[04]", "Fit[03]", "Fit[10]"]),
        ("status", ["Fit[10]", "Fit[03]", "Fit[04]"]),
    ],
)
def test_top_sorts_by_the_underlying_value_of_any_field(top_sort: str, order: list[str]) -> None:
    lines = top(active_progress(FIT03, FIT04, FIT10), "$name", top_sort=top_sort)
    assert lines[0] == f"3 active tasks as at 14:03:11. Up to top 10 by {top_sort}:"
    assert lines[1:] == order


def test_top_sorts_numbers_as_numbers_not_text() -> None:
    rows = [(f"Fit[{i}]", "run", pid, FIT03[3], cpu, 1) for i, (pid, cpu) in enumerate([(9, 9.0), (10, 100.0), (100, 10.0)])]
    assert top(active_progress(*rows), "$pid", top_sort="pid")[1:] == ["  9", " 10", "100"]
    assert top(active_progress(*rows), "$cpu", top_sort="-cpu")[1:] == ["100.0%", " 10.0%", "  9.0%"]


def test_top_n_caps_the_lines_and_padding_follows_the_lines_shown() -> None:
    lines = top(active_progress(FIT03, FIT04, FIT10), "$name|$pid", top_sort="-cpu", top_n=2)
    # FIT10's six-digit pid is not shown, so it does not widen the column.
    assert lines == ["3 active tasks as at 14:03:11. Up to top 2 by -cpu:", "Fit[03]|4242", "Fit[04]|  77"]
    assert top(active_progress(FIT03, FIT04), top_n=0) == ["2 active tasks as at 14:03:11. Up to top 0 by start_time:"]


def test_top_with_no_active_tasks_is_just_the_header() -> None:
    assert top(active_progress()) == ["0 active tasks as at 14:03:11. Up to top 10 by start_time:"]


def test_top_keeps_literal_text_and_dollar_escapes() -> None:
    assert top(active_progress(FIT03), "$$ $name: ${cpu}!")[1] == "$ Fit[03]: 98.0%!"


# --- a real terminal ---------------------------------------------------------------------------

CHILD_SCRIPT = textwrap.dedent(
    """
    import sys
    import time

    import labtech_nb as labtech


    @labtech.task
    class Leaf:
        n: int

        def run(self):
            for k in range(2):
                print(f"leaf {self.n} line {k} " + "x" * 40)
                time.sleep(0.1)
            return self.n


    @labtech.task
    class Root:
        leaves: list

        def run(self):
            for k in range(3):
                print(f"root of {len(self.leaves)} line {k} " + "y" * 40)
                time.sleep(0.2)
            return sum(leaf.result for leaf in self.leaves)


    if __name__ == "__main__":
        lab = labtech.Lab(storage=None, runner_backend=sys.argv[1], max_workers=2)
        leaves = [Leaf(n=i) for i in range(3)]
        roots = [Root(leaves=leaves[:2]), Root(leaves=leaves)]
        options = {name: True for name in sys.argv[2:]}
        results = lab.run_tasks(roots, **options)
        print("RESULTS", list(results.values()), flush=True)
    """
)

EXPECTED_TASK_LINES = [f"leaf {n} line {k} " + "x" * 40 for n in range(3) for k in range(2)] + [
    f"root of {count} line {k} " + "y" * 40 for count in (2, 3) for k in range(3)
]


def run_in_pty(tmp_path: Path, *args: str, timeout: float = 60.0) -> str:
    """Run the child script with a pseudo-terminal as its stdin, stdout and stderr; return what it wrote."""
    script = tmp_path / "child.py"
    script.write_text(CHILD_SCRIPT)
    package_root = str(Path(labtech.__file__).resolve().parent.parent)
    env = {
        **os.environ,
        "LABTECH_NB_PROGRESS": "auto",
        "TERM": "xterm",
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    }
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    try:
        process = subprocess.Popen(
            [sys.executable, str(script), *args], stdin=slave, stdout=slave, stderr=slave, cwd=tmp_path, env=env, close_fds=True
        )
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end of the terminal
                break
            if not data:
                break
            chunks.append(data)
        else:
            os.kill(process.pid, signal.SIGKILL)
            pytest.fail(f"child did not finish in {timeout} s; output so far: {b''.join(chunks)[-2000:]!r}")
        assert process.wait(timeout=10) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    finally:
        os.close(master)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    return b"".join(chunks).decode()


def bar_pattern(desc: str, n: int, total: int) -> str:
    percent = round(100 * n / total)
    return rf"{desc}: {n}/{total} \[\d\d:\d\d, *[\d.?]+ ?tasks/s\] \|[^|\r\n]*\| +{percent}% \[[\d:?]+ remaining\]"


@pytest.fixture(scope="module", params=["thread", "fork"])
def default_terminal_output(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return run_in_pty(tmp_path_factory.mktemp("pty"), request.param)


def test_terminal_shows_a_finished_bar_per_type(default_terminal_output: str) -> None:
    output = default_terminal_output
    assert "RESULTS [1, 3]" in output
    assert re.search(bar_pattern("Leaf", 3, 3), output), output[-3000:]
    assert re.search(bar_pattern("Root", 2, 2), output), output[-3000:]
    # Bars start empty, and advance only as tasks succeed.
    assert re.search(bar_pattern("Leaf", 0, 3), output)
    assert re.search(bar_pattern("Root", 0, 2), output)
    assert not re.search(r"Leaf: [4-9]/3|Root: [3-9]/2", output)


def test_terminal_shows_the_top_table_of_active_tasks(default_terminal_output: str) -> None:
    output = default_terminal_output
    assert re.search(r"\d+ active tasks as at \d\d:\d\d:\d\d\. Up to top 10 by start_time:", output)
    assert re.search(r"(Leaf|Root)\[\d\] running since \d\d:\d\d:\d\d CPU: +(-|[\d.]+%) MEM: +(-|[\d.]+%)", output)


def test_task_output_lines_arrive_whole_on_their_own_lines(default_terminal_output: str) -> None:
    output = default_terminal_output
    for line in EXPECTED_TASK_LINES:
        # The terminal turns "\n" into "\r\n": each printed line is logged under its header, intact.
        pattern = rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d/(Leaf|Root)\[\d\]/INFO: Captured STDOUT:\r\n{re.escape(line)}\r\n"
        assert len(re.findall(pattern, output)) == 1, (line, output[-3000:])


@pytest.mark.parametrize(
    ("option", "bars", "table"),
    [("disable_progress", False, True), ("disable_top", True, False)],
)
def test_terminal_honours_disable_options(tmp_path: Path, option: str, bars: bool, table: bool) -> None:
    output = run_in_pty(tmp_path, "thread", option)
    assert "RESULTS [1, 3]" in output
    assert (re.search(bar_pattern("Leaf", 3, 3), output) is not None) is bars
    assert (re.search(r"Leaf: \d/3", output) is not None) is bars
    assert ("active tasks as at" in output) is table
    for line in EXPECTED_TASK_LINES:
        assert f"Captured STDOUT:\r\n{line}\r\n" in output


def test_terminal_with_both_disabled_draws_nothing(tmp_path: Path) -> None:
    output = run_in_pty(tmp_path, "thread", "disable_progress", "disable_top")
    assert "RESULTS [1, 3]" in output
    assert "\x1b" not in output
    assert "active tasks as at" not in output
    assert not re.search(r"Leaf: \d/3", output)
    for line in EXPECTED_TASK_LINES:
        assert f"Captured STDOUT:\r\n{line}\r\n" in output
