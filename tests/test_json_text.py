"""JSON text of documents of any depth: the same text as the json module, or the same values."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labtech_nb.json_text import (
    MAX_INDENTED_LEVELS,
    _dumps_without_recursion,
    _loads_without_recursion,
    dumps,
    dumps_indented,
    loads,
)

DEEP = 5_000

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8))
documents = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=4), children, max_size=4)),
    max_leaves=25,
)


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = {"level": level, "inner": [value, 1.5]} if level % 2 else [value, None]
    return value


def nested_text(depth: int) -> str:
    text = '"bottom"'
    for level in range(depth):
        text = f'{{"level": {level}, "inner": [{text}, 1.5]}}' if level % 2 else f"[{text}, null]"
    return text


@settings(max_examples=300, derandomize=True, database=None)
@given(document=documents, ensure_ascii=st.booleans())
def test_the_encoder_without_recursion_writes_what_json_writes(document: Any, ensure_ascii: bool) -> None:
    assert _dumps_without_recursion(document, ensure_ascii, None) == json.dumps(document, ensure_ascii=ensure_ascii)


@settings(max_examples=300, derandomize=True, database=None)
@given(document=documents, indent=st.sampled_from([None, 2]))
def test_the_decoder_without_recursion_reads_what_json_reads(document: Any, indent: int | None) -> None:
    text = json.dumps(document, indent=indent)
    assert _loads_without_recursion(text) == json.loads(text)


def test_special_floats_keys_and_defaults_match_json() -> None:
    document = {"nan": math.nan, "inf": [math.inf, -math.inf], 1: True, None: 2.5, "é": "\ud800"}
    assert _dumps_without_recursion(document, True, None) == json.dumps(document)
    decoded = _loads_without_recursion(json.dumps(document))
    assert math.isnan(decoded["nan"]) and decoded["inf"] == [math.inf, -math.inf] and decoded["1"] is True
    assert _dumps_without_recursion({"x": {1, 2}}, False, str) == json.dumps({"x": {1, 2}}, ensure_ascii=False, default=str)


@pytest.mark.parametrize("text", ["", "[1,", '{"a" 1}', '{"a": 1,}', "[1] x", "[1 2]", "{1: 2}", "tru", '"open'])
def test_the_decoder_without_recursion_rejects_what_json_rejects(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    with pytest.raises(json.JSONDecodeError):
        _loads_without_recursion(text)


def test_the_encoder_without_recursion_rejects_what_json_rejects() -> None:
    circular: list[Any] = []
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular reference"):
        _dumps_without_recursion(circular, True, None)
    with pytest.raises(TypeError):
        _dumps_without_recursion([object()], True, None)


@pytest.mark.parametrize("depth", [1_500, DEEP], ids=["within the extra levels", "beyond them"])
def test_documents_too_deep_for_json_are_written_and_read(depth: int) -> None:
    document = nested(depth)
    with pytest.raises(RecursionError):
        json.dumps(document)
    text = dumps(document)
    assert text == nested_text(depth)
    with pytest.raises(RecursionError):
        json.loads(text)
    assert dumps(loads(text)) == text


def test_indented_text_is_jsons_up_to_the_indented_levels_then_one_line() -> None:
    shallow: Any = {"bottom": 1}
    for _ in range(MAX_INDENTED_LEVELS - 1):
        shallow = [shallow, 2]
    assert dumps_indented(shallow) == json.dumps(shallow, indent=2)
    assert "[\n" + "  " * MAX_INDENTED_LEVELS + '{"bottom": 1},\n' in dumps_indented([shallow])
    deep = nested(DEEP)
    text = dumps_indented(deep)
    assert dumps(loads(text)) == dumps(deep)
    assert text.count("\n") < 4 * MAX_INDENTED_LEVELS
