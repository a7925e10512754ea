"""``%labtech`` magics in an in-process IPython shell, and the plain functions behind them."""

from __future__ import annotations

import builtins
import re
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import labtech_nb as labtech
from labtech_nb import diagram as diagram_module
from labtech_nb.diagram import MermaidDiagram, build_task_diagram
from labtech_nb.engine.background import BackgroundRun
from labtech_nb.engine.run import RECENT_RUNS
from labtech_nb.exceptions import LabError
from labtech_nb.notebook import commands
from labtech_nb.notebook.commands import CommandError
from labtech_nb.notebook.magics import HELP, _parsers
from labtech_nb.runners import SerialRunnerBackend, ThreadRunnerBackend

from .nb_tasks import Trivial, wait_until

SUBCOMMANDS = ["run", "status", "stop", "cache", "uncache", "diagram", "timeline", "help"]

SETUP = """
import threading, time
import labtech_nb as labtech

calls = []
gate = threading.Event()
active, peak, lock = [0], [0], threading.Lock()

@labtech.task
class Square:
    x: int

    def run(self) -> int:
        calls.append(self.x)
        return self.x * self.x

@labtech.task
class Pair:
    a: Square
    b: Square

    def run(self) -> int:
        return self.a.result + self.b.result

@labtech.task
class OnMainThread:
    x: int

    def run(self) -> bool:
        return threading.current_thread() is threading.main_thread()

@labtech.task
class Busy:
    x: int

    def run(self) -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.3)
        with lock:
            active[0] -= 1
        return self.x

@labtech.task
class Waits:
    x: int

    def run(self) -> int:
        if not gate.wait(20):
            raise TimeoutError("gate never opened")
        return self.x

@labtech.task
class Named:
    name: str

    def run(self) -> str:
        return self.name.upper()

lab = labtech.Lab(storage=STORAGE, runner_backend="serial")
"""


@pytest.fixture(scope="module")
def shell() -> Any:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "labtech_nb")
    yield ip
    ip.run_line_magic("unload_ext", "labtech_nb")
    ip.reset(new_session=False)


@pytest.fixture
def ip(shell: Any, tmp_path: Path) -> Any:
    """The shell with a fresh namespace: task types, ``lab`` (serial, storage in tmp_path), no runs."""
    shell.reset(new_session=False)
    RECENT_RUNS.clear()
    result = shell.run_cell(SETUP.replace("STORAGE", repr(str(tmp_path / "storage"))))
    result.raise_error()
    yield shell
    shell.user_ns["gate"].set()
    for run in list(RECENT_RUNS):
        if run.handle is not None:
            run.handle._done.wait(20)
    RECENT_RUNS.clear()


def magic(ip: Any, line: str) -> Any:
    return ip.run_line_magic("labtech", line)


def magic_output(ip: Any, line: str) -> tuple[Any, str]:
    with capture_output() as captured:
        value = magic(ip, line)
    return value, captured.stdout


def usage_error(ip: Any, line: str) -> str:
    """The message of the UsageError ``%labtech line`` raises; also checks the cell shows no traceback."""
    with pytest.raises(UsageError) as raised:
        magic(ip, line)
    message = str(raised.value)
    assert message.strip(), line
    assert "\n\n" not in message.strip(), f"more than one paragraph: {message!r}"
    assert "Traceback" not in message
    with capture_output() as captured:
        result = ip.run_cell(f"%labtech {line}")
    assert isinstance(result.error_in_exec, UsageError)
    shown = captured.stdout + captured.stderr
    assert "Traceback" not in shown and "SystemExit" not in shown
    assert shown.strip() == f"UsageError: {message}"
    return message


def ev(ip: Any, expression: str) -> Any:
    return ip.ev(expression)


# --- run ------------------------------------------------------------------------------------------


def test_run_a_task_a_list_and_a_comprehension(ip: Any) -> None:
    assert magic(ip, "run Square(x=3)") == {ev(ip, "Square(x=3)"): 9}
    assert magic(ip, "run [Square(x=1), Square(x=2)]") == {ev(ip, "Square(x=1)"): 1, ev(ip, "Square(x=2)"): 4}
    results = magic(ip, "run [Square(x=i) for i in range(4)]")
    assert list(results.values()) == [0, 1, 4, 9]
    assert magic(ip, "run (Square(x=i) for i in range(5, 7))") == {ev(ip, "Square(x=5)"): 25, ev(ip, "Square(x=6)"): 36}
    assert magic(ip, "run Pair(a=Square(x=1), b=Square(x=10))") == {ev(ip, "Pair(a=Square(x=1), b=Square(x=10))"): 101}
    assert sorted(ev(ip, "calls")) == [0, 1, 2, 3, 5, 6, 10]  # each task ran once; the rest were cached


def test_run_keeps_string_literals_in_the_tasks_expression(ip: Any) -> None:
    ip.user_ns["svm"] = "a variable that must not be used"
    assert magic(ip, "run Named(name='svm')") == {ev(ip, "Named(name='svm')"): "SVM"}
    assert magic(ip, 'run Named(name="two  spaces")') == {ev(ip, "Named(name='two  spaces')"): "TWO  SPACES"}
    assert list(magic(ip, "run [Named(name=n) for n in ('x', 'y')]").values()) == ["X", "Y"]


def test_run_bust_cache_reruns_cached_tasks(ip: Any) -> None:
    magic(ip, "run Square(x=2)")
    magic(ip, "run Square(x=2)")
    assert ev(ip, "calls") == [2]
    assert magic(ip, "run --bust-cache Square(x=2)") == {ev(ip, "Square(x=2)"): 4}
    assert ev(ip, "calls") == [2, 2]


def test_run_backend_uses_that_backend_for_this_run_only(ip: Any) -> None:
    assert list(magic(ip, "run OnMainThread(x=1)").values()) == [True]  # the lab's serial backend
    assert list(magic(ip, "run --backend thread OnMainThread(x=2)").values()) == [False]
    assert isinstance(ev(ip, "lab.runner_backend"), SerialRunnerBackend)
    assert list(magic(ip, "run OnMainThread(x=3)").values()) == [True]


def test_run_workers_limits_concurrency(ip: Any) -> None:
    assert magic(ip, "run --backend thread --workers 2 [Busy(x=i) for i in range(4)]") == {
        ev(ip, f"Busy(x={i})"): i for i in range(4)
    }
    assert ev(ip, "peak[0]") == 2
    assert ev(ip, "lab.max_workers") is None
    ip.run_cell("peak[0] = 0")
    magic(ip, "run --backend thread --workers 4 [Busy(x=i) for i in range(10, 14)]")
    assert ev(ip, "peak[0]") > 2


def test_run_updates_the_labs_last_run_also_with_backend_options(ip: Any) -> None:
    magic(ip, "run Square(x=1)")
    assert ev(ip, "lab.last_run") is RECENT_RUNS[-1]
    magic(ip, "run --backend thread --workers 2 Square(x=2)")
    assert ev(ip, "lab.last_run") is RECENT_RUNS[-1], "lab.last_run must be the run the magic just did"


def test_run_o_stores_the_results(ip: Any) -> None:
    value, _ = magic_output(ip, "run -o res [Square(x=1), Square(x=4)]")
    assert value is None
    assert ev(ip, "res") == {ev(ip, "Square(x=1)"): 1, ev(ip, "Square(x=4)"): 16}


def test_run_background_returns_a_handle_that_can_be_waited_for(ip: Any) -> None:
    handle = magic(ip, "run --background Square(x=5)")
    assert isinstance(handle, BackgroundRun)
    assert handle.wait(15) == {ev(ip, "Square(x=5)"): 25}
    stored = magic(ip, "run --background --backend thread -o bg Waits(x=1)")
    assert isinstance(stored, BackgroundRun)
    assert ev(ip, "bg") is stored
    assert not stored.done
    ip.user_ns["gate"].set()
    assert stored.wait(15) == {ev(ip, "Waits(x=1)"): 1}


def test_run_lab_chooses_among_several_labs(ip: Any, tmp_path: Path) -> None:
    ip.run_cell(f"other = labtech.Lab(storage={str(tmp_path / 'other')!r}, runner_backend='serial')").raise_error()
    message = usage_error(ip, "run Square(x=1)")
    assert "Several Labs found (lab, other)" in message and "--lab NAME" in message
    assert magic(ip, "run --lab other Square(x=1)") == {ev(ip, "Square(x=1)"): 1}
    assert ev(ip, "other.is_cached(Square(x=1))")
    assert not ev(ip, "lab.is_cached(Square(x=1))")
    assert "No variable named 'missing'" in usage_error(ip, "run --lab missing Square(x=1)")
    assert "'calls' is a list, not a Lab" in usage_error(ip, "run --lab calls Square(x=1)")


def test_run_without_any_lab_is_a_usage_error(ip: Any) -> None:
    ip.run_cell("del lab").raise_error()
    assert "No Lab found in the notebook" in usage_error(ip, "run Square(x=1)")


# --- status, stop ---------------------------------------------------------------------------------


def test_status_lists_the_runs_of_the_kernel(ip: Any) -> None:
    assert magic_output(ip, "status")[1].strip() == "No runs yet in this kernel."
    magic(ip, "run [Square(x=1), Square(x=2)]")
    magic(ip, "run [Square(x=1), Square(x=3)]")
    value, output = magic_output(ip, "status")
    assert value is None
    lines = output.strip().splitlines()
    assert lines[0].split() == ["run", "mode", "state", "done", "cached", "failed", "skipped", "remaining", "total"]
    assert lines[1].split() == ["1", "foreground", "finished", "2", "0", "0", "0", "0", "2"]
    assert lines[2].split() == ["2", "foreground", "finished", "1", "1", "0", "0", "0", "2"]


def test_stop_stops_the_active_background_run(ip: Any) -> None:
    handle = magic(ip, "run --background --backend thread --workers 1 [Waits(x=1), Waits(x=2)]")
    wait_until(lambda: handle.progress.totals.running == 1, message="the first task never started")
    status = magic_output(ip, "status")[1].strip().splitlines()
    assert status[1].split()[:3] == ["1", "background", "running"]
    assert magic_output(ip, "stop")[1].strip() == "Stopping: running tasks will finish and be cached."
    ip.user_ns["gate"].set()
    with pytest.raises(LabError, match="Run stopped before completing 1 submitted task") as raised:
        handle.wait(15)
    assert raised.value.results == {ev(ip, "Waits(x=1)"): 1}
    assert handle.state == "interrupted"
    assert magic_output(ip, "status")[1].strip().splitlines()[1].split()[:4] == ["1", "background", "interrupted", "1"]
    assert "There is no active run" in usage_error(ip, "stop")


def test_stop_twice_or_force_terminates(ip: Any) -> None:
    handle = magic(ip, "run --background --backend thread --workers 1 [Waits(x=1), Waits(x=2)]")
    wait_until(lambda: handle.progress.totals.running == 1, message="the first task never started")
    assert magic_output(ip, "stop 1")[1].strip() == "Stopping: running tasks will finish and be cached."
    assert magic_output(ip, "stop 1 --force")[1].strip() == "Terminating running tasks."
    assert handle.stop_requests == 2
    ip.user_ns["gate"].set()
    with pytest.raises(LabError):
        handle.wait(15)
    assert "No run numbered '7'" in usage_error(ip, "stop 7")


# --- cache, uncache -------------------------------------------------------------------------------


def _cache_text(value: Any, output: str) -> str:
    """What ``%labtech cache`` showed: a browser's text summary, or the printed listing."""
    if value is None:
        return output
    bundle = value._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    return str(bundle["text/plain"])


@pytest.mark.parametrize("line", ["cache Square", "cache", "cache Square Pair"])
def test_cache_shows_the_cached_entries(ip: Any, line: str) -> None:
    magic(ip, "run [Square(x=1), Square(x=2), Square(x=3)]")
    text = _cache_text(*magic_output(ip, line))
    assert text.count("Square") >= 3 or "3 entries" in text, text
    for x in (1, 2, 3):
        assert re.search(rf"\bx\"?[=:]\s*{x}\b", text), text  # x=1 in a repr, "x": 1 in JSON


def test_cache_of_a_name_that_is_not_a_task_type_is_a_usage_error(ip: Any) -> None:
    assert "'calls' is not a task type" in usage_error(ip, "cache calls")
    assert "NameError" in usage_error(ip, "cache Nope")


def test_uncache_yes_deletes_exactly_those_entries(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builtins, "input", lambda prompt="": pytest.fail("--yes must not ask"))
    magic(ip, "run [Square(x=i) for i in range(1, 5)]")
    value, output = magic_output(ip, "uncache --yes [Square(x=1), Square(x=3)]")
    assert value is None
    assert output.strip() == "Deleted 2 cache entries."
    assert [ev(ip, f"lab.is_cached(Square(x={i}))") for i in range(1, 5)] == [False, True, False, True]
    assert magic_output(ip, "uncache --yes Square(x=1)")[1].strip() == "None of these tasks is cached; nothing to delete."


def test_uncache_without_yes_asks_first(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["n", "y"])
    prompts: list[str] = []

    def fake_input(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr(builtins, "input", fake_input)
    magic(ip, "run [Square(x=1), Square(x=2)]")
    assert magic_output(ip, "uncache Square(x=1)")[1].strip() == "Nothing deleted."
    assert ev(ip, "lab.is_cached(Square(x=1))")
    assert magic_output(ip, "uncache Square(x=1)")[1].strip() == "Deleted 1 cache entry."
    assert not ev(ip, "lab.is_cached(Square(x=1))")
    assert ev(ip, "lab.is_cached(Square(x=2))")
    assert prompts == ["Delete 1 cache entry? [y/N] "] * 2


# --- diagram, timeline ----------------------------------------------------------------------------


def test_diagram_returns_a_mermaid_diagram_whose_text_is_its_source(ip: Any) -> None:
    value, output = magic_output(ip, "diagram Pair(a=Square(x=1), b=Square(x=2))")
    assert output == ""
    assert isinstance(value, MermaidDiagram)
    expected = build_task_diagram([ev(ip, "Pair(a=Square(x=1), b=Square(x=2))")])
    bundle = value._repr_mimebundle_()
    assert bundle["text/plain"] == expected == value.source
    assert bundle["text/vnd.mermaid"] == expected
    assert bundle["text/markdown"] == f"```mermaid\n{expected}\n```"
    assert expected.startswith("classDiagram\n    direction BT\n")
    assert "Pair <-- Square: a" in expected and "Pair <-- Square: b" in expected
    assert "direction LR" in magic(ip, "diagram --direction LR Square(x=1)").source
    assert "direction TB" in magic(ip, "diagram --mermaid --direction TB Square(x=1)").source


def test_diagram_graphviz_returns_a_digraph(ip: Any) -> None:
    import graphviz

    assert diagram_module.graphviz_available(), "dot is installed on this machine"
    types_graph = magic(ip, "diagram --graphviz Pair(a=Square(x=1), b=Square(x=2))")
    assert isinstance(types_graph, graphviz.Digraph)
    assert "rankdir=BT" in types_graph.source
    # Node ids are positional; the labels carry the type names, and Square feeds Pair.
    assert re.search(r"\btype1 -> type0 \[label=a\]", types_graph.source)
    assert "<b>Pair</b>" in types_graph.source and "<b>Square</b>" in types_graph.source
    instances = magic(ip, "diagram --instances --direction LR Pair(a=Square(x=1), b=Square(x=2))")
    assert isinstance(instances, graphviz.Digraph)
    assert "rankdir=LR" in instances.source
    assert "x=1" in instances.source and "x=2" in instances.source
    assert instances.source.count(" -> ") == 2
    assert instances.pipe(format="svg").startswith(b"<?xml")


@pytest.mark.parametrize("option", ["--graphviz", "--instances"])
def test_diagram_graphviz_falls_back_to_mermaid_without_dot(ip: Any, monkeypatch: pytest.MonkeyPatch, option: str) -> None:
    monkeypatch.setattr(diagram_module, "graphviz_available", lambda: False)
    value, output = magic_output(ip, f"diagram {option} Square(x=1)")
    assert output.strip() == (
        "Graphviz (the graphviz package and its 'dot' program) is not installed; showing the mermaid diagram instead."
    )
    assert isinstance(value, MermaidDiagram)
    assert value.source == build_task_diagram([ev(ip, "Square(x=1)")])


def test_timeline_returns_a_figure_after_a_run(ip: Any) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    assert "There is no run yet" in usage_error(ip, "timeline")
    magic(ip, "run [Square(x=i) for i in range(3)]")
    figures = [magic(ip, "timeline"), magic(ip, "timeline 1")]
    try:
        for figure in figures:
            assert isinstance(figure, Figure)
            assert len(figure.axes) == 2
    finally:
        for figure in figures:
            plt.close(figure)
    magic(ip, "run [Square(x=i) for i in range(3)]")  # all cached: loads are drawn too
    figure = magic(ip, "timeline 2")
    plt.close(figure)
    assert isinstance(figure, Figure)
    assert "No run numbered '9'" in usage_error(ip, "timeline 9")


# --- help -----------------------------------------------------------------------------------------


def test_help_mentions_every_subcommand(ip: Any) -> None:
    value, output = magic_output(ip, "help")
    assert value is None
    assert output.strip() == HELP.strip()
    assert list(_parsers()) == SUBCOMMANDS
    for name in SUBCOMMANDS:
        assert re.search(rf"^  {name}\b", HELP, re.M), name
    with capture_output() as captured:
        ip.run_line_magic("pinfo", "%labtech")
    for name in SUBCOMMANDS:
        assert re.search(rf"^  {name}\b", captured.stdout, re.M), name
    assert ip.find_line_magic("labtech").__doc__ == HELP


def test_an_empty_line_shows_the_help(ip: Any) -> None:
    with pytest.raises(UsageError) as raised:
        magic(ip, "")
    assert str(raised.value) == HELP


# --- bad input ------------------------------------------------------------------------------------

BAD_LINES = {
    "bogus": r"unknown subcommand 'bogus'\. Subcommands: run, status, stop, cache, uncache, diagram, timeline, help",
    "run --nope Square(x=1)": r"unrecognized arguments: --nope",
    "run": r"the following arguments are required: tasks",
    "run -o": r"argument -o: expected one argument",
    "run nosuch": r"could not evaluate 'nosuch': NameError",
    "run Square(x=": r"could not evaluate 'Square\(x=': SyntaxError",
    "run 42": r"'42' is a int, not a task or a list of tasks",
    "run [Square(x=1), 5]": r"contains 5, which is not a task",
    "run Square": r"'Square' is a task type, not a task: construct tasks from it, e\.g\. Square\(\.\.\.\)",
    "run --workers 0 Square(x=1)": r"--workers must be at least 1, got 0",
    "run --workers two Square(x=1)": r"argument --workers: invalid int value: 'two'",
    "run --backend nosuch Square(x=1)": r"Unrecognised runner_backend: nosuch",
    'run "unclosed': r"cannot parse the line",
    "status now": r"unrecognized arguments: now",
    "stop": r"There is no active run",
    "uncache": r"the following arguments are required: tasks",
    "uncache nosuch": r"NameError",
    "diagram 5": r"'5' is a int",
    "diagram --direction XY Square(x=1)": r"argument --direction: invalid choice: 'XY'",
    "diagram --graphviz --mermaid Square(x=1)": r"not allowed with argument",
    "help me": r"unrecognized arguments: me",
}


@pytest.mark.parametrize("line", list(BAD_LINES))
def test_bad_input_is_a_one_paragraph_usage_error(ip: Any, line: str) -> None:
    message = usage_error(ip, line)
    assert message.startswith("%labtech"), message
    assert re.search(BAD_LINES[line], message), message


def test_a_failing_run_is_not_a_usage_error(ip: Any) -> None:
    ip.run_cell(
        "@labtech.task\nclass Fails:\n    x: int\n\n    def run(self) -> int:\n        raise ValueError('no')\n"
    ).raise_error()
    with pytest.raises(LabError, match="Failed to complete 1 submitted task"):
        magic(ip, "run Fails(x=1)")


# --- loading and reloading ------------------------------------------------------------------------


def test_reload_ext_keeps_the_magic_working(ip: Any) -> None:
    ip.run_line_magic("reload_ext", "labtech_nb")
    assert ip.find_line_magic("labtech") is not None
    assert magic(ip, "run Square(x=7)") == {ev(ip, "Square(x=7)"): 49}
    ip.run_line_magic("unload_ext", "labtech_nb")
    try:
        assert ip.find_line_magic("labtech") is None
        assert "Line magic function `%labtech` not found" in str(_cell_error(ip, "%labtech help"))
    finally:
        ip.run_line_magic("load_ext", "labtech_nb")
    assert magic_output(ip, "help")[1].strip() == HELP.strip()


def _cell_error(ip: Any, cell: str) -> BaseException | None:
    with capture_output():
        result = ip.run_cell(cell)
    return result.error_in_exec


# --- the plain functions behind the magics --------------------------------------------------------


def test_find_lab() -> None:
    lab, other = labtech.Lab(storage=None), labtech.Lab(storage=None)
    assert commands.find_lab({"lab": lab, "x": 1, "_": other, "_3": other}) is lab
    assert commands.find_lab({"lab": lab, "other": other}, "other") is other
    with pytest.raises(CommandError, match=r"Several Labs found \(a, b\); choose one with --lab NAME"):
        commands.find_lab({"b": lab, "a": other})
    with pytest.raises(CommandError, match="No Lab found in the notebook"):
        commands.find_lab({"x": 1})
    with pytest.raises(CommandError, match="No variable named 'nope'"):
        commands.find_lab({"lab": lab}, "nope")
    with pytest.raises(CommandError, match="'x' is a int, not a Lab"):
        commands.find_lab({"lab": lab, "x": 1}, "x")


def test_as_task_list() -> None:
    one, two = Trivial(i=1), Trivial(i=2)
    assert commands.as_task_list(one, "one") == [one]
    assert commands.as_task_list([one, two], "xs") == [one, two]
    assert commands.as_task_list((t for t in (one, two)), "gen") == [one, two]
    assert commands.as_task_list({one: 1}, "d") == [one]
    assert commands.as_task_list([], "empty") == []
    with pytest.raises(CommandError, match="'Trivial' is a task type, not a task"):
        commands.as_task_list(Trivial, "Trivial")
    with pytest.raises(CommandError, match="'s' is a str, not a task or a list of tasks"):
        commands.as_task_list("Trivial(i=1)", "s")
    with pytest.raises(CommandError, match="'n' is a int"):
        commands.as_task_list(3, "n")
    with pytest.raises(CommandError, match=r"'xs' contains <class '[\w.]*Trivial'>, which is not a task"):
        commands.as_task_list([one, Trivial], "xs")


def test_lab_with() -> None:
    lab = labtech.Lab(storage=None, runner_backend="serial", max_workers=3)
    assert commands.lab_with(lab) is lab
    changed = commands.lab_with(lab, backend="thread", workers=2)
    assert changed is not lab
    assert isinstance(changed.runner_backend, ThreadRunnerBackend) and changed.max_workers == 2
    assert changed.storage is lab.storage
    assert isinstance(lab.runner_backend, SerialRunnerBackend) and lab.max_workers == 3
    only_workers = commands.lab_with(lab, workers=1)
    assert only_workers.runner_backend is lab.runner_backend and only_workers.max_workers == 1
    with pytest.raises(CommandError, match="--workers must be at least 1, got 0"):
        commands.lab_with(lab, workers=0)
    with pytest.raises(CommandError, match="Unrecognised runner_backend: warp"):
        commands.lab_with(lab, backend="warp")


def test_run_tasks_foreground_and_background(tmp_path: Path) -> None:
    lab = labtech.Lab(storage=tmp_path / "s", runner_backend="thread")
    tasks = [Trivial(i=1), Trivial(i=2)]
    assert commands.run_tasks(lab, tasks) == {tasks[0]: 1, tasks[1]: 2}
    handle = commands.run_tasks(lab, tasks, background=True)
    assert isinstance(handle, BackgroundRun)
    assert handle.wait(15) == {tasks[0]: 1, tasks[1]: 2}
    assert handle.progress.totals.loaded == 2
    busted = commands.run_tasks(lab, tasks, bust_cache=True, background=True)
    busted.wait(15)
    assert busted.progress.totals.done == 2


def test_status_rows_and_format_status(tmp_path: Path) -> None:
    RECENT_RUNS.clear()
    assert commands.status_rows() == []
    assert commands.format_status([]) == "No runs yet in this kernel."
    lab = labtech.Lab(storage=tmp_path / "s", runner_backend="serial")
    lab.run_tasks([Trivial(i=1)])
    lab.run_tasks_in_background([Trivial(i=1), Trivial(i=2)]).wait(15)
    rows = commands.status_rows()
    assert rows == [
        {
            "run": 1,
            "mode": "foreground",
            "state": "finished",
            "done": 1,
            "cached": 0,
            "failed": 0,
            "skipped": 0,
            "remaining": 0,
            "total": 1,
        },
        {
            "run": 2,
            "mode": "background",
            "state": "finished",
            "done": 1,
            "cached": 1,
            "failed": 0,
            "skipped": 0,
            "remaining": 0,
            "total": 2,
        },
    ]
    text = commands.format_status(rows).splitlines()
    assert text[0] == "run  mode        state     done  cached  failed  skipped  remaining  total"
    assert text[2] == "2    background  finished  1     1       0       0        0          2    "
    RECENT_RUNS.clear()


def test_find_run_and_stop_run(tmp_path: Path) -> None:
    RECENT_RUNS.clear()
    with pytest.raises(CommandError, match="There is no run yet"):
        commands.find_run(None, active_only=False)
    with pytest.raises(CommandError, match="There is no active run"):
        commands.find_run(None, active_only=True)
    gate = tmp_path / "gate"
    markers = tmp_path / "markers"
    markers.mkdir()
    from .nb_tasks import Gated

    labs = [labtech.Lab(storage=tmp_path / f"s{i}", runner_backend="thread", max_workers=1) for i in range(2)]
    handles = [
        lab.run_tasks_in_background([Gated(i=10 * n + k, gate=str(gate), markers=str(markers)) for k in range(2)])
        for n, lab in enumerate(labs)
    ]
    try:
        wait_until(lambda: all(h._run in RECENT_RUNS for h in handles))
        with pytest.raises(CommandError, match=r"2 runs are active; name one, e\.g\. %labtech stop 2"):
            commands.find_run(None, active_only=True)
        assert commands.find_run(None, active_only=False) is handles[1]._run
        assert commands.find_run("1", active_only=True) is handles[0]._run
        for bad in ("3", "0x", "-5"):
            with pytest.raises(CommandError, match=f"No run numbered '{bad}'"):
                commands.find_run(bad, active_only=False)
        assert commands.stop_run(handles[0]._run) == "Stopping: running tasks will finish and be cached."
        assert handles[0].stop_requests == 1
        assert commands.stop_run(handles[1]._run, force=True) == "Terminating running tasks."
    finally:
        gate.touch()
        for handle in handles:
            with pytest.raises(LabError):
                handle.wait(15)
    # A foreground run (no handle) is stopped through the run itself.
    lab = labtech.Lab(storage=None, runner_backend="serial")
    lab.run_tasks([Trivial(i=1)])
    run = commands.find_run(None, active_only=False)
    assert run.handle is None
    assert commands.stop_run(run) == "Stopping: running tasks will finish and be cached."
    assert commands.stop_run(run) == "Terminating running tasks."
    RECENT_RUNS.clear()


def test_uncache_and_cache_listing(tmp_path: Path) -> None:
    lab = labtech.Lab(storage=tmp_path / "s", runner_backend="serial")
    one, two, three = Trivial(i=1), Trivial(i=2), Trivial(i=3)
    assert commands.cache_listing(lab, [Trivial]) == "No cached tasks of these types."
    lab.run_tasks([one, two, three])
    listing = commands.cache_listing(lab, [Trivial]).splitlines()
    assert sorted(line.split("  started ")[0] for line in listing) == ["Trivial(i=1)", "Trivial(i=2)", "Trivial(i=3)"]
    assert all(re.fullmatch(r"Trivial\(i=\d\)  started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line) for line in listing)
    questions: list[str] = []
    assert commands.uncache(lab, [one, two, one], confirm=lambda q: questions.append(q) or False) == "Nothing deleted."
    assert questions == ["Delete 2 cache entries?"]
    assert lab.is_cached(one) and lab.is_cached(two)
    assert commands.uncache(lab, [one, two], confirm=lambda q: True) == "Deleted 2 cache entries."
    assert commands.uncache(lab, [one, three], confirm=None) == "Deleted 1 cache entry."
    assert commands.uncache(lab, [one], confirm=lambda q: pytest.fail("nothing to ask")) == (
        "None of these tasks is cached; nothing to delete."
    )
    assert [lab.is_cached(task) for task in (one, two, three)] == [False, False, False]
