"""Mermaid task diagrams (LABTECH_API.md section 11): exact text, type formatting, traversal, escaping, display."""

from __future__ import annotations

import itertools
import re
import sys
import textwrap
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import IPython
import IPython.display
import pytest
from IPython.core.formatters import DisplayFormatter

from labtech_nb.diagram import MermaidDiagram, build_task_diagram, display_task_diagram
from tests.support.ipython import KernelShell, TerminalShell
from tests.tutorial_source import TUTORIAL_PATH, as_labtech_nb, new_module, tutorial_sections

_module_numbers = itertools.count()


@pytest.fixture
def make_module() -> Iterator[Callable[[str], types.ModuleType]]:
    """Execute task definitions in a fresh importable module (removed from ``sys.modules`` afterwards)."""
    names: list[str] = []

    def make(source: str) -> types.ModuleType:
        name = f"diagram_test_module_{next(_module_numbers)}"
        names.append(name)
        module = new_module(name)
        # dont_inherit: this file's ``from __future__ import annotations`` must not leak into the module.
        exec(compile(textwrap.dedent(source), f"<{name}>", "exec", dont_inherit=True), module.__dict__)
        return module

    yield make
    for name in names:
        sys.modules.pop(name, None)


# --- the labtech tutorial's diagram ----------------------------------------------------------------


def _tutorial_mermaid_block() -> str:
    text = TUTORIAL_PATH.read_text()
    blocks = re.findall(r"^```mermaid\n(.*?)\n```$", text, re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, "the tutorial should hold exactly one mermaid block"
    return blocks[0]


def test_tutorial_final_task_graph_gives_the_tutorial_diagram_exactly(make_module):
    (block,) = [
        block for title, blocks in tutorial_sections() if title.startswith("Bringing it all together") for block in blocks
    ]
    definitions, marker, _ = block.partition("# === Task Execution ===")
    assert marker, "the tutorial's final block should have a Task Execution part"
    module = make_module("import numpy as np\n")
    code = as_labtech_nb(definitions)
    exec(compile(code, "<tutorial: bringing it all together>", "exec", dont_inherit=True), module.__dict__)

    expected = _tutorial_mermaid_block()
    assert expected.startswith("classDiagram\n    direction BT\n")
    assert build_task_diagram([module.evaluation_task], direction="BT") == expected
    # The default direction is BT, and passing the same task twice changes nothing.
    assert build_task_diagram([module.evaluation_task, module.evaluation_task]) == expected


# --- the section 11 example ------------------------------------------------------------------------

REPORT_TRAIN_SPLIT = """
    import labtech_nb as labtech

    @labtech.task
    class Split:
        seed: int

        def run(self) -> dict[str, list[int]]:
            return {"train": [self.seed]}

    @labtech.task
    class Train:
        split: Split
        lr: float

        def run(self) -> float:
            return self.lr

    @labtech.task
    class Report:
        runs: list[Train]

        def run(self):
            return None
"""

SECTION_11_DIAGRAM = """classDiagram
    direction BT

    class Report
    Report : list[Train] runs
    Report : run()

    class Train
    Train : Split split
    Train : float lr
    Train : run() float

    class Split
    Split : int seed
    Split : run() dict[str, list[int]]


    Report <-- "many" Train: runs

    Train <-- Split: split"""


@pytest.mark.parametrize("future_annotations", [True, False], ids=["string-annotations", "real-annotations"])
def test_section_11_example_gives_the_documented_text(make_module, future_annotations):
    prefix = "from __future__ import annotations\n" if future_annotations else ""
    module = make_module(prefix + textwrap.dedent(REPORT_TRAIN_SPLIT))
    report = module.Report(runs=[module.Train(split=module.Split(seed=1), lr=0.1)])
    assert build_task_diagram([report]) == SECTION_11_DIAGRAM


def test_direction_option_is_written_as_given(make_module):
    module = make_module(REPORT_TRAIN_SPLIT)
    report = module.Report(runs=[module.Train(split=module.Split(seed=1), lr=0.1)])
    for direction in ("TB", "LR", "RL", "BT"):
        text = build_task_diagram([report], direction=direction)
        assert text.splitlines()[1] == f"    direction {direction}"
        assert text == SECTION_11_DIAGRAM.replace("direction BT", f"direction {direction}")


# --- edges ----------------------------------------------------------------------------------------

EDGE_TASKS = """
    from typing import Any
    import labtech_nb as labtech

    @labtech.task
    class Leaf:
        n: int

        def run(self) -> int:
            return self.n

    @labtech.task
    class Other:
        def run(self) -> str:
            return "other"

    @labtech.task
    class Direct:
        leaf: Leaf

        def run(self) -> int:
            return 1

    @labtech.task
    class Keyed:
        by_name: dict[str, Leaf]

        def run(self) -> int:
            return 1

    @labtech.task
    class Mixed:
        dep: Any

        def run(self) -> int:
            return 1

    @labtech.task
    class Root:
        items: tuple
        first: Any

        def run(self) -> int:
            return 1
"""


def _edge_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if " <-- " in line]


def test_bare_task_edges_are_not_many_and_collection_edges_are(make_module):
    module = make_module(EDGE_TASKS)
    direct = module.Direct(leaf=module.Leaf(n=1))
    keyed = module.Keyed(by_name={"a": module.Leaf(n=2), "b": module.Leaf(n=3)})

    assert _edge_lines(build_task_diagram([direct])) == ["    Direct <-- Leaf: leaf"]
    # A parameter holding a dict of tasks is a collection.
    assert _edge_lines(build_task_diagram([keyed])) == ['    Keyed <-- "many" Leaf: by_name']
    assert build_task_diagram([keyed]).splitlines()[4] == "    Keyed : dict[str, Leaf] by_name"


def test_an_edge_is_many_if_any_instance_held_a_collection(make_module):
    module = make_module(EDGE_TASKS)
    bare = module.Mixed(dep=module.Leaf(n=1))
    nested = module.Mixed(dep={"inner": [module.Leaf(n=2)]})
    assert _edge_lines(build_task_diagram([bare])) == ["    Mixed <-- Leaf: dep"]
    assert _edge_lines(build_task_diagram([nested])) == ['    Mixed <-- "many" Leaf: dep']
    # Whichever instance is seen first, one collection makes the (one) edge "many".
    assert _edge_lines(build_task_diagram([bare, nested])) == ['    Mixed <-- "many" Leaf: dep']
    assert _edge_lines(build_task_diagram([nested, bare])) == ['    Mixed <-- "many" Leaf: dep']


def test_classes_and_edges_follow_breadth_first_discovery_order(make_module):
    module = make_module(EDGE_TASKS)
    root = module.Root(
        items=(
            module.Mixed(dep=module.Direct(leaf=module.Leaf(n=1))),
            module.Other(),
            module.Mixed(dep=module.Keyed(by_name={})),
        ),
        first=module.Other(),
    )
    text = build_task_diagram([root])
    assert re.findall(r"^    class (\w+)$", text, re.MULTILINE) == ["Root", "Mixed", "Other", "Direct", "Keyed", "Leaf"]
    edges_part = text.split("\n\n\n", 1)[1]
    assert edges_part == (
        '    Root <-- "many" Mixed: items\n'
        '    Root <-- "many" Other: items\n'
        "    Root <-- Other: first\n"
        "\n"
        "    Mixed <-- Direct: dep\n"
        "    Mixed <-- Keyed: dep\n"
        "\n"
        "    Direct <-- Leaf: leaf"
    )
    # Several starting tasks are walked in the order given.
    assert re.findall(r"^    class (\w+)$", build_task_diagram([module.Other(), root]), re.MULTILINE)[:2] == ["Other", "Root"]


def test_types_without_edges_end_with_three_newlines(make_module):
    module = make_module(EDGE_TASKS)
    assert build_task_diagram([module.Leaf(n=1)]) == (
        "classDiagram\n    direction BT\n\n    class Leaf\n    Leaf : int n\n    Leaf : run() int\n\n\n"
    )
    text = build_task_diagram([module.Leaf(n=1), module.Other()], direction="LR")
    assert text == (
        "classDiagram\n    direction LR\n\n"
        "    class Leaf\n    Leaf : int n\n    Leaf : run() int\n\n"
        "    class Other\n    Other : run() str\n\n\n"
    )


# --- type text ------------------------------------------------------------------------------------


def test_string_annotations_print_as_written(make_module):
    module = make_module(
        """
        import typing
        import labtech_nb as labtech

        @labtech.task
        class Forward:
            later: "Later"
            maybe: "typing.Optional[Later]"
            spaced: "dict[ str,int ]"

            def run(self) -> "Later":
                return None

        @labtech.task
        class Later:
            def run(self):
                return None
        """
    )
    text = build_task_diagram([module.Forward(later=module.Later(), maybe=None, spaced={})])
    assert text.splitlines()[3:8] == [
        "    class Forward",
        "    Forward : Later later",
        "    Forward : typing.Optional[Later] maybe",
        "    Forward : dict[ str,int ] spaced",
        "    Forward : run() Later",
    ]
    assert "    Later : run()" in text.splitlines()


def test_real_generic_and_union_annotations_print_origin_names(make_module):
    module = make_module(
        """
        from typing import Protocol
        import labtech_nb as labtech

        class Shape(Protocol):
            def area(self) -> float: ...

        @labtech.task
        class Item:
            def run(self) -> None:
                return None

        @labtech.task
        class Holder:
            items: list[Item]
            by_name: dict[str, Item]
            label: str | None
            shape: Shape

            class Nested:
                pass

            def run(self) -> "Holder.Nested":
                return None
        """
    )
    text = build_task_diagram([module.Holder(items=[], by_name={}, label=None, shape=None)])
    assert text.splitlines()[3:9] == [
        "    class Holder",
        "    Holder : list[Item] items",
        "    Holder : dict[str, Item] by_name",
        "    Holder : str | None label",
        "    Holder : Shape shape",
        "    Holder : run() Nested",
    ]


def test_run_return_annotations(make_module):
    module = make_module(
        """
        import labtech_nb as labtech

        @labtech.task
        class ReturnsNone:
            def run(self) -> None:
                return None

        @labtech.task
        class Unannotated:
            def run(self):
                return None

        @labtech.task
        class Undefined:
            def run(self) -> "NoSuchName":
                return None
        """
    )
    assert build_task_diagram([module.ReturnsNone()]).splitlines()[4] == "    ReturnsNone : run() NoneType"
    assert build_task_diagram([module.Unannotated()]).splitlines()[4] == "    Unannotated : run()"
    with pytest.raises(NameError, match="NoSuchName"):
        build_task_diagram([module.Undefined()])


# --- traversal ------------------------------------------------------------------------------------

FAN_OUT_TASKS = """
    import labtech_nb as labtech

    @labtech.task
    class Shared:
        seed: int

        def run(self) -> int:
            return self.seed

    @labtech.task
    class Dependent:
        index: int
        shared: Shared

        def run(self) -> int:
            return self.index

    @labtech.task
    class Aggregate:
        dependents: list[Dependent]

        def run(self) -> int:
            return 0
"""


def _counting_dependencies(monkeypatch: pytest.MonkeyPatch, task_type: type) -> list[Any]:
    """Record every task of ``task_type`` whose dependencies the traversal asks for."""
    visits: list[Any] = []
    original = task_type._lt_dependencies

    def counted(self: Any) -> Any:
        visits.append(self)
        return original(self)

    monkeypatch.setattr(task_type, "_lt_dependencies", counted)
    return visits


def test_large_fan_out_visits_each_distinct_task_once(make_module, monkeypatch):
    module = make_module(FAN_OUT_TASKS)
    expected = build_task_diagram([module.Aggregate(dependents=[module.Dependent(index=0, shared=module.Shared(seed=7))])])
    shared_visits = _counting_dependencies(monkeypatch, module.Shared)
    dependent_visits = _counting_dependencies(monkeypatch, module.Dependent)

    # 5,000 distinct dependents, each holding its own (equal) Shared object.
    distinct = module.Aggregate(dependents=[module.Dependent(index=i, shared=module.Shared(seed=7)) for i in range(5_000)])
    started = time.perf_counter()
    assert build_task_diagram([distinct]) == expected
    assert len(dependent_visits) == 5_000
    assert len(shared_visits) == 1

    # 5,000 equal dependents (separate objects) collapse into one task.
    dependent_visits.clear()
    shared_visits.clear()
    equal = module.Aggregate(dependents=[module.Dependent(index=0, shared=module.Shared(seed=7)) for _ in range(5_000)])
    assert build_task_diagram([equal, equal]) == expected
    assert len(dependent_visits) == 1
    assert len(shared_visits) == 1
    assert time.perf_counter() - started < 10


# --- escaping -------------------------------------------------------------------------------------

HOSTILE_ANNOTATIONS = {
    "angles": "list<int> --> Other",
    "quotes": 'Literal["a", "b"]',
    "directive": "%%{init: {'theme': 'dark'}}%%",
    "semicolon": "int; class Evil",
    "braces": "{ evil }",
    "newline": "int\n    Evil <-- Hostile: injected\n    class Evil",
    "backtick": "`md` %% comment",
}


def _decode_mermaid_entities(text: str) -> str:
    named = {"lt": "<", "gt": ">", "quot": '"', "amp": "&", "nbsp": " "}
    return re.sub(r"#(\d+|[a-z]+);", lambda match: chr(int(match[1])) if match[1].isdigit() else named[match[1]], text)


def test_hostile_string_annotations_cannot_change_the_diagram_structure(make_module):
    fields = "\n".join(f"    {name}: {annotation!r}" for name, annotation in HOSTILE_ANNOTATIONS.items())
    module = make_module(
        f"import labtech_nb as labtech\n\n@labtech.task\nclass Hostile:\n{fields}\n\n    def run(self):\n        return None\n"
    )
    text = build_task_diagram([module.Hostile(**dict.fromkeys(HOSTILE_ANNOTATIONS, 1))])
    lines = text.split("\n")

    # Exactly the structure of a one-class diagram with these fields: nothing injected, nothing lost.
    assert lines[:4] == ["classDiagram", "    direction BT", "", "    class Hostile"]
    assert lines[-4:] == ["    Hostile : run()", "", "", ""]
    field_lines = lines[4:-4]
    assert len(field_lines) == len(HOSTILE_ANNOTATIONS)
    assert not any(line.startswith("    class ") or " <-- " in line for line in field_lines)
    for line, (name, annotation) in zip(field_lines, HOSTILE_ANNOTATIONS.items(), strict=True):
        assert line.startswith("    Hostile : ") and line.endswith(f" {name}")
        type_text = line.removeprefix("    Hostile : ").removesuffix(f" {name}")
        # Entity codes (``#lt;``, ``#59;``) aside, nothing mermaid treats as syntax is left.
        bare_text = re.sub(r"#(\d+|[a-z]+);", "", type_text)
        for dangerous in ("<", ">", '"', "%", ";", "{", "}", "`", "\n", "\r"):
            assert dangerous not in bare_text, (name, type_text)
        # What mermaid shows is the annotation as written (a newline shows as a space).
        assert _decode_mermaid_entities(type_text) == annotation.replace("\n", " ")


# --- display ----------------------------------------------------------------------------------------


@pytest.fixture
def leaf_diagram(make_module) -> tuple[list[Any], str]:
    module = make_module(EDGE_TASKS)
    tasks = [module.Direct(leaf=module.Leaf(n=1))]
    return tasks, build_task_diagram(tasks, direction="LR")


def test_display_prints_the_source_outside_a_kernel(leaf_diagram, capsys, monkeypatch):
    tasks, source = leaf_diagram
    displayed: list[Any] = []
    monkeypatch.setattr(IPython.display, "display", lambda *objects, **kwargs: displayed.extend(objects))
    for shell in (None, TerminalShell()):
        monkeypatch.setattr(IPython, "get_ipython", lambda shell=shell: shell)
        assert display_task_diagram(tasks, direction="LR") is None
        assert capsys.readouterr().out == source + "\n"
    assert displayed == []


def test_display_in_a_kernel_emits_markdown_mermaid_and_plain_text(leaf_diagram, capsys, monkeypatch):
    tasks, source = leaf_diagram
    displayed: list[Any] = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: KernelShell())
    monkeypatch.setattr(IPython.display, "display", lambda *objects, **kwargs: displayed.extend(objects))

    display_task_diagram(tasks, direction="LR")
    assert capsys.readouterr().out == ""
    (shown,) = displayed
    assert isinstance(shown, MermaidDiagram)
    bundle, _metadata = DisplayFormatter().format(shown)
    assert bundle == {
        "text/markdown": f"```mermaid\n{source}\n```",
        "text/vnd.mermaid": source,
        "text/plain": source,
    }


def test_mermaid_diagram_mimebundle_and_repr():
    source = "classDiagram\n    direction BT\n\n    class A\n    A : run()\n\n\n"
    diagram = MermaidDiagram(source)
    bundle = diagram._repr_mimebundle_()
    assert bundle["text/markdown"].startswith("```mermaid\nclassDiagram\n")
    assert bundle["text/markdown"].endswith("\n```")
    assert bundle["text/markdown"][len("```mermaid\n") : -len("\n```")] == source
    assert bundle["text/vnd.mermaid"] == source
    assert bundle["text/plain"] == source
    assert repr(diagram) == source
