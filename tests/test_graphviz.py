"""Graphviz diagrams of task types and task instances: DOT source, status colours, grouping, escaping, SVG."""

from __future__ import annotations

import re
import shutil
import sys
import xml.etree.ElementTree as ElementTree
from collections import Counter
from typing import Any

import graphviz
import pytest

import labtech_nb as labtech
from labtech_nb.diagram import (
    STATUS_COLOURS,
    build_graphviz_instance_diagram,
    build_graphviz_type_diagram,
    graphviz_available,
)


@labtech.task
class Leaf:
    name: str

    def run(self) -> str:
        return self.name


@labtech.task
class Mid:
    leaf: Leaf
    factor: int

    def run(self) -> int:
        return self.factor


@labtech.task
class Top:
    mids: list[Mid]
    best: Mid

    def run(self) -> int:
        return 0


@labtech.task
class Collect:
    items: dict[str, Leaf]

    def run(self) -> int:
        return len(self.items)


# --- reading DOT source -------------------------------------------------------------------------

_ID = r'"(?:[^"\\]|\\.)*"|<(?:[^<>]|<[^<>]*>)*>|[^\s\[\]=;"]+'
_STATEMENT = re.compile(
    rf"^\t(?P<tail>{_ID})(?: -> (?P<head>{_ID}))?(?: \[(?P<attrs>(?:(?:{_ID})=(?:{_ID}) ?)*)\])?$", re.MULTILINE
)
_ATTRIBUTE = re.compile(rf"(?P<key>{_ID})=(?P<value>{_ID})")


def _unquote(token: str) -> str:
    if token.startswith('"'):
        return re.sub(r'\\"', '"', token[1:-1])
    return token


def _parse(source: str) -> tuple[list[tuple[str, dict[str, str]]], list[tuple[str, str, dict[str, str]]]]:
    """The node statements ``(id, attributes)`` and edge statements ``(tail, head, attributes)`` of DOT source.

    Attribute values keep their DOT form except for the surrounding quotes (HTML labels keep their ``<...>``).
    """
    nodes: list[tuple[str, dict[str, str]]] = []
    edges: list[tuple[str, str, dict[str, str]]] = []
    body = source[source.index("{\n") + 2 : source.rindex("}")]
    matched = 0
    for statement in _STATEMENT.finditer(body):
        matched += len(statement.group(0)) + 1
        attributes = {match["key"]: _unquote(match["value"]) for match in _ATTRIBUTE.finditer(statement["attrs"] or "")}
        tail = _unquote(statement["tail"])
        if statement["head"] is not None:
            edges.append((tail, _unquote(statement["head"]), attributes))
        elif tail not in ("graph", "node", "edge"):
            nodes.append((tail, attributes))
    assert matched == len(body), f"unparsed DOT statements in:\n{source}"
    return nodes, edges


def _svg_nodes(graph: Any) -> list[list[str]]:
    """Render with ``dot`` and return each drawn node's lines of text, in drawing order."""
    svg = graph.pipe(format="svg", encoding="utf-8")
    root = ElementTree.fromstring(svg)
    namespace = {"svg": "http://www.w3.org/2000/svg"}
    return [
        [text.text or "" for text in group.iterfind(".//svg:text", namespace)]
        for group in root.iterfind(".//svg:g[@class='node']", namespace)
    ]


def _type_nodes(source: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """A type diagram's node labels by type name, and its edges as (dependency, dependent, label) names."""
    nodes, edges = _parse(source)
    name_of = {}
    for node_id, attributes in nodes:
        (name,) = re.findall(r"<b>(.*?)</b>", attributes["label"])
        name_of[node_id] = name
    assert len(set(name_of.values())) == len(nodes), "one node per type"
    labels = {name_of[node_id]: attributes["label"] for node_id, attributes in nodes}
    return labels, [(name_of[tail], name_of[head], attributes["label"]) for tail, head, attributes in edges]


@pytest.fixture
def top() -> Top:
    leaves = [Leaf(name="a"), Leaf(name="b")]
    mids = [Mid(leaf=leaf, factor=factor) for leaf in leaves for factor in (1, 2)]
    return Top(mids=mids, best=Mid(leaf=Leaf(name="a"), factor=1))


def test_graphviz_is_available_here(monkeypatch):
    assert graphviz_available() is True
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert graphviz_available() is False
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "graphviz", None)
    assert graphviz_available() is False


# --- type diagrams ------------------------------------------------------------------------------


def test_type_diagram_has_one_node_per_type_and_one_edge_per_parameter(top):
    graph = build_graphviz_type_diagram([top, Collect(items={"x": Leaf(name="c")})])
    assert isinstance(graph, graphviz.Digraph)
    labels, edges = _type_nodes(graph.source)

    assert list(labels) == ["Top", "Collect", "Mid", "Leaf"]
    assert labels["Mid"].startswith("<<table")  # an HTML-like label: a box with one row per field
    assert re.findall(r"<td align='left'>(.*?)</td>", labels["Mid"]) == ["Leaf leaf", "int factor"]
    assert re.findall(r"<td align='left'>(.*?)</td>", labels["Top"]) == ["list[Mid] mids", "Mid best"]

    # One edge per (dependent, parameter, dependency), drawn between dependency and dependent.
    assert edges == [
        ("Mid", "Top", "mids (many)"),
        ("Mid", "Top", "best"),
        ("Leaf", "Collect", "items (many)"),
        ("Leaf", "Mid", "leaf"),
    ]
    assert "rankdir=BT" in graph.source
    assert "rankdir=LR" in build_graphviz_type_diagram([top], direction="LR").source


def test_type_diagram_escapes_hostile_annotations_and_renders():
    hostile = 'A<b>"x" & </table><script>alert(1)</script>\nnext'
    fields = {"__annotations__": {"value": hostile}, "run": lambda self: None, "__module__": __name__}
    hostile_type = labtech.task(type("HostileType", (), fields))
    graph = build_graphviz_type_diagram([hostile_type(value=1)])

    labels, edges = _type_nodes(graph.source)
    assert list(labels) == ["HostileType"] and edges == []
    assert "<script>" not in graph.source and "&lt;script&gt;" in graph.source
    ((title, *rows),) = _svg_nodes(graph)
    assert title == "HostileType"
    # The row shows the annotation as written (graphviz drops the newline inside an HTML-like label).
    assert re.sub(r"\s", "", "".join(rows)) == re.sub(r"\s", "", f"{hostile} value")


# --- instance diagrams --------------------------------------------------------------------------


def test_instance_diagram_has_one_node_per_task_and_one_edge_per_dependency(top):
    graph = build_graphviz_instance_diagram([top])
    nodes, edges = _parse(graph.source)

    labels = {node_id: attributes["label"] for node_id, attributes in nodes}
    assert len(nodes) == len(labels) == 7  # Top, four Mids (the best Mid equals the first), two Leaves
    (top_label,) = [label for label in labels.values() if label.startswith("Top")]
    assert sorted(labels.values()) == sorted(
        [top_label] + ["Mid\nfactor=1", "Mid\nfactor=2"] * 2 + ["Leaf\nname=&#x27;a&#x27;", "Leaf\nname=&#x27;b&#x27;"]
    )
    # Parameters holding tasks (bare or in collections) are drawn as edges, not in labels.
    assert top_label == "Top"
    assert all(attributes["fillcolor"] == "#ffffff" for _, attributes in nodes)

    # Edges, read as (dependency's label, dependent's label): each dependency once, wired to the right task.
    def label_of(task: Any) -> str:
        if isinstance(task, Leaf):
            return f"Leaf\nname=&#x27;{task.name}&#x27;"
        return top_label if isinstance(task, Top) else f"Mid\nfactor={task.factor}"

    drawn_edges = Counter((labels[tail], labels[head]) for tail, head, _ in edges)
    expected_edges = Counter(
        [(label_of(mid), label_of(top)) for mid in top.mids] + [(label_of(mid.leaf), label_of(mid)) for mid in top.mids]
    )
    assert drawn_edges == expected_edges
    assert len(edges) == 8  # Top's two references to the first Mid make one edge


@pytest.mark.parametrize("status", ["cached", "pending", "running", "done", "failed", "skipped"])
def test_instance_nodes_are_filled_by_status(top, status):
    first_mid = top.mids[0]
    graph = build_graphviz_instance_diagram([top], statuses={first_mid.leaf: status, first_mid: status})
    nodes, _ = _parse(graph.source)
    fills = [(attributes["label"], attributes["fillcolor"]) for _, attributes in nodes]
    coloured = sorted(fill for fill in fills if fill[1] != "#ffffff")
    assert coloured == sorted(
        [
            (f"Leaf\nname=&#x27;a&#x27;\n[{status}]", STATUS_COLOURS[status]),
            (f"Mid\nfactor=1\n[{status}]", STATUS_COLOURS[status]),
        ]
    )
    # Tasks without a status are drawn white and their labels name no status.
    assert all("[" not in label for label, fill in fills if fill == "#ffffff")
    assert len(fills) - len(coloured) == 5


def test_status_colours_are_distinct_for_distinct_outcomes():
    outcomes = ["pending", "running", "done", "cached", "failed", "skipped"]
    assert len({STATUS_COLOURS[outcome] for outcome in outcomes}) == len(outcomes)


def test_many_tasks_of_one_type_are_grouped_into_one_summarised_node():
    leaves = [Leaf(name=str(index)) for index in range(5)]
    collect = Collect(items={leaf.name: leaf for leaf in leaves})
    mid = Mid(leaf=leaves[0], factor=1)
    statuses = {leaves[0]: "done", leaves[1]: "cached", leaves[2]: "done", mid: "running"}

    graph = build_graphviz_instance_diagram([collect, mid], statuses=statuses, max_per_type=3)
    nodes, edges = _parse(graph.source)
    assert len(nodes) == 3
    ((group_id, group),) = [(node_id, attributes) for node_id, attributes in nodes if attributes["label"].startswith("Leaf")]
    assert group["label"] == "Leaf x5\n2 done, 1 cached"
    other = {attributes["label"].split("\n")[0]: (node_id, attributes) for node_id, attributes in nodes if node_id != group_id}
    assert set(other) == {"Collect", "Mid"}
    assert other["Mid"][1]["label"] == "Mid\nfactor=1\n[running]"
    assert other["Mid"][1]["fillcolor"] == STATUS_COLOURS["running"]
    # Five Leaf -> Collect dependencies become one edge from the group.
    assert sorted((tail, head) for tail, head, _ in edges) == sorted((group_id, node_id) for node_id, _ in other.values())

    # Up to max_per_type tasks of a type are drawn one by one.
    nodes, edges = _parse(build_graphviz_instance_diagram([collect, mid], max_per_type=5).source)
    assert sum(attributes["label"].startswith("Leaf\n") for _, attributes in nodes) == 5
    assert len(edges) == 6
    nodes, _ = _parse(build_graphviz_instance_diagram([collect], max_per_type=3).source)
    assert [attributes["label"] for _, attributes in nodes if attributes["label"].startswith("Leaf")] == ["Leaf x5"]


HOSTILE_VALUES = [
    "<b>bold</b> & co",
    '"double" quotes',
    "it's",
    '<script>alert("x")</script>',
    "<<table>>",
]


def test_hostile_parameter_values_are_escaped_in_dot_source_and_svg():
    tasks = [Leaf(name=value) for value in HOSTILE_VALUES]
    graph = build_graphviz_instance_diagram(tasks)

    assert "<script>" not in graph.source and "<b>" not in graph.source and "<<table>>" not in graph.source
    nodes, edges = _parse(graph.source)
    assert len(nodes) == len(HOSTILE_VALUES) and edges == []
    for _, attributes in nodes:
        assert '"' not in attributes["label"] and "<" not in attributes["label"]

    svg = graph.pipe(format="svg")
    assert svg.startswith(b"<?xml") or b"<svg" in svg
    drawn = _svg_nodes(graph)
    assert sorted(drawn) == sorted(["Leaf", f"name={value!r}"] for value in HOSTILE_VALUES)


@pytest.mark.parametrize(
    "value",
    ["line one\nline two", "C:\\new\\table", "\\N \\G \\l", "'single' \"double\""],
    ids=["newline", "backslashes", "dot-escapes", "both-quotes"],
)
def test_newlines_and_backslashes_in_values_are_shown_as_written(value):
    """A value's repr is drawn as one line of text: neither a raw newline nor a DOT escape like ``\\n`` or ``\\N``."""
    graph = build_graphviz_instance_diagram([Leaf(name=value)])
    nodes, _ = _parse(graph.source)
    assert len(nodes) == 1
    assert nodes[0][1]["label"].count("\n") == 1  # only the line break between the type and its parameters
    assert _svg_nodes(graph) == [["Leaf", f"name={value!r}"]]


def _same_named_types() -> tuple[type, type]:
    def make() -> type:
        @labtech.task
        class Train:
            lr: float

            def run(self) -> float:
                return self.lr

        return Train

    return make(), make()


def test_task_types_sharing_a_name_get_separate_nodes():
    first, second = _same_named_types()
    tasks = [first(lr=1.0), second(lr=2.0)]

    nodes, _ = _parse(build_graphviz_instance_diagram(tasks).source)
    assert sorted(attributes["label"] for _, attributes in nodes) == ["Train\nlr=1.0", "Train\nlr=2.0"]
    assert sorted(lines[1] for lines in _svg_nodes(build_graphviz_instance_diagram(tasks))) == ["lr=1.0", "lr=2.0"]
    assert len(_svg_nodes(build_graphviz_type_diagram(tasks))) == 2


def test_diagrams_render_to_svg(top):
    statuses = {top: "failed", top.mids[0]: "done", top.mids[0].leaf: "cached"}
    for graph in (
        build_graphviz_type_diagram([top]),
        build_graphviz_instance_diagram([top], statuses=statuses),
        build_graphviz_instance_diagram([top], statuses=statuses, max_per_type=1),
    ):
        svg = graph.pipe(format="svg")
        assert svg.startswith(b"<?xml") or b"<svg" in svg
    drawn = _svg_nodes(build_graphviz_instance_diagram([top], statuses=statuses))
    assert len(drawn) == 7
    assert [(lines[0], lines[-1]) for lines in drawn if lines[0] == "Top"] == [("Top", "[failed]")]
    # One node per type in the type diagram (the HTML-like labels draw the fields as further text).
    assert sorted(lines[0] for lines in _svg_nodes(build_graphviz_type_diagram([top]))) == ["Leaf", "Mid", "Top"]
