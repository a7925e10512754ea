"""JSON text of documents nested deeper than Python's recursion limit allows.

The json module's encoder and decoder recurse once per nesting level, so they can neither write nor
read the metadata of a task at the top of a chain of about a thousand tasks. The functions here use
the json module whenever it copes, if need be with a higher recursion limit, and fall back to an
explicit stack (several times slower) for deeper documents; either way the text is the same.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Callable, Iterator
from json import JSONDecodeError
from json.scanner import NUMBER_RE
from typing import Any

#: `dumps_indented` indents this many levels; deeper levels are written on one line, as `dumps` does,
#: so a deeply nested document does not grow with the square of its depth.
MAX_INDENTED_LEVELS = 20

#: How many levels beyond the recursion limit json's own encoder and decoder are allowed, with the limit
#: raised while they run. Their frames are small: this takes well under a megabyte of stack.
EXTRA_LEVELS = 3_000
_RECURSION_LIMIT_LOCK = threading.Lock()

_WHITESPACE = re.compile(r"[ \t\n\r]*")
#: Reads a JSON string (the text after its opening quote), as json's own decoder does.
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_CONSTANTS = {"null": None, "true": True, "false": False, "NaN": float("nan"), "Infinity": float("inf")}
_END = object()


def dumps(value: Any, *, ensure_ascii: bool = True, default: Callable[[Any], Any] | None = None) -> str:
    """Return exactly ``json.dumps(value, ensure_ascii=ensure_ascii, default=default)``, however deep ``value`` nests.

    Raises:
        TypeError: a value (or dict key) has no JSON form and ``default`` gives none.
        ValueError: ``value`` contains itself.
    """
    try:
        return json.dumps(value, ensure_ascii=ensure_ascii, default=default)
    except RecursionError:
        pass
    try:
        return _with_extra_levels(lambda: json.dumps(value, ensure_ascii=ensure_ascii, default=default))
    except RecursionError:
        return _dumps_without_recursion(value, ensure_ascii, default)


def dumps_indented(value: Any, level: int = 0) -> str:
    """Format JSON like ``json.dumps(value, indent=2)``, several times faster for small documents.

    Levels beyond `MAX_INDENTED_LEVELS` are written on one line, as `dumps` writes them.
    """
    if level >= MAX_INDENTED_LEVELS:
        return dumps(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = "\n" + "  " * (level + 1)
        items = (f"{_string_text(_key_text(key))}: {dumps_indented(item, level + 1)}" for key, item in value.items())
        return "{" + inner + ("," + inner).join(items) + "\n" + "  " * level + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        inner = "\n" + "  " * (level + 1)
        return "[" + inner + ("," + inner).join(dumps_indented(item, level + 1) for item in value) + "\n" + "  " * level + "]"
    return _scalar_text(value)


#: json's own C function for a string's JSON text (ASCII only, as ``json.dumps`` writes it by default).
_string_text: Callable[[str], str] = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
_CONSTANT_TEXTS = {None: "null", True: "true", False: "false"}
_FINITE = float("inf")


def _scalar_text(value: Any) -> str:
    """``json.dumps(value)`` for a value that is not a dict or list, with the common types done directly."""
    value_type = type(value)
    if value_type is str:
        return _string_text(value)
    if value_type is int:
        return int.__repr__(value)
    if value_type is float and -_FINITE < value < _FINITE:
        return float.__repr__(value)
    if value is None or value_type is bool:
        return _CONSTANT_TEXTS[value]
    return json.dumps(value)


def loads(text: str) -> Any:
    """Return ``json.loads(text)``, however deep the document nests.

    Raises:
        json.JSONDecodeError: ``text`` is not JSON.
    """
    try:
        return json.loads(text)
    except RecursionError:
        pass
    try:
        return _with_extra_levels(lambda: json.loads(text))
    except RecursionError:
        return _loads_without_recursion(text)


def _with_extra_levels(call: Callable[[], Any]) -> Any:
    """Return ``call()``, run with the recursion limit raised by `EXTRA_LEVELS`."""
    with _RECURSION_LIMIT_LOCK:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(limit + EXTRA_LEVELS)
        try:
            return call()
        finally:
            sys.setrecursionlimit(limit)


# --- writing ------------------------------------------------------------------------------------------


def _key_text(key: Any) -> str:
    """A dict key as JSON writes it: strings as they are; numbers, booleans and None as their JSON text."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _dict_entries(mapping: dict[Any, Any], pieces: list[str], ensure_ascii: bool) -> Iterator[Any]:
    separator = ""
    for key, item in mapping.items():
        pieces.append(f"{separator}{json.dumps(_key_text(key), ensure_ascii=ensure_ascii)}: ")
        separator = ", "
        yield item


def _list_entries(items: list[Any] | tuple[Any, ...], pieces: list[str]) -> Iterator[Any]:
    separator = ""
    for item in items:
        pieces.append(separator)
        separator = ", "
        yield item


def _dumps_without_recursion(value: Any, ensure_ascii: bool, default: Callable[[Any], Any] | None) -> str:
    pieces: list[str] = []
    # Each frame: the container's remaining items (writing separators as they are taken), its closing bracket, its id.
    stack: list[tuple[Iterator[Any], str, int]] = []
    on_path: set[int] = set()
    item = value
    while True:
        while not isinstance(item, (dict, list, tuple, str, int, float)) and item is not None:
            if default is None:
                raise TypeError(f"Object of type {type(item).__name__} is not JSON serializable")
            item = default(item)
        if isinstance(item, (dict, list, tuple)) and item:
            if id(item) in on_path:
                raise ValueError("Circular reference detected")
            on_path.add(id(item))
            if isinstance(item, dict):
                pieces.append("{")
                stack.append((_dict_entries(item, pieces, ensure_ascii), "}", id(item)))
            else:
                pieces.append("[")
                stack.append((_list_entries(item, pieces), "]", id(item)))
        else:
            pieces.append(json.dumps(item, ensure_ascii=ensure_ascii))
        while stack:
            entries, closing, container = stack[-1]
            item = next(entries, _END)
            if item is not _END:
                break
            pieces.append(closing)
            on_path.discard(container)
            stack.pop()
        else:
            return "".join(pieces)


# --- reading ------------------------------------------------------------------------------------------


def _skip_space(text: str, position: int) -> int:
    return _WHITESPACE.match(text, position).end()  # type: ignore[union-attr]


def _read_key(text: str, position: int) -> tuple[str, int]:
    """Read ``"key":`` at ``position``; return the key and where its value starts."""
    if text[position : position + 1] != '"':
        raise JSONDecodeError("Expecting property name enclosed in double quotes", text, position)
    key, position = _scanstring(text, position + 1)
    position = _skip_space(text, position)
    if text[position : position + 1] != ":":
        raise JSONDecodeError("Expecting ':' delimiter", text, position)
    return key, _skip_space(text, position + 1)


def _read_scalar(text: str, position: int) -> tuple[Any, int]:
    if text[position : position + 1] == '"':
        return _scanstring(text, position + 1)
    number = NUMBER_RE.match(text, position)
    if number is not None:
        integer, fraction, exponent = number.groups()
        if fraction or exponent:
            return float(integer + (fraction or "") + (exponent or "")), number.end()
        return int(integer), number.end()
    if text.startswith("-Infinity", position):
        return float("-inf"), position + len("-Infinity")
    for word, constant in _CONSTANTS.items():
        if text.startswith(word, position):
            return constant, position + len(word)
    raise JSONDecodeError("Expecting value", text, position)


def _loads_without_recursion(text: str) -> Any:
    # Each frame: the container being filled and, for an object, the key its next value goes under.
    stack: list[list[Any]] = []
    position = _skip_space(text, 0)
    while True:
        opening = text[position : position + 1]
        if opening in ("{", "["):
            position = _skip_space(text, position + 1)
            if text[position : position + 1] != ("}" if opening == "{" else "]"):
                if opening == "{":
                    key, position = _read_key(text, position)
                    stack.append([{}, key])
                else:
                    stack.append([[], None])
                continue
            value: Any = {} if opening == "{" else []
            position += 1
        else:
            value, position = _read_scalar(text, position)
        # Put the value in its container; close every container that ends here.
        while True:
            if not stack:
                position = _skip_space(text, position)
                if position != len(text):
                    raise JSONDecodeError("Extra data", text, position)
                return value
            frame = stack[-1]
            container = frame[0]
            if isinstance(container, dict):
                container[frame[1]] = value
            else:
                container.append(value)
            position = _skip_space(text, position)
            delimiter = text[position : position + 1]
            if delimiter == ",":
                position = _skip_space(text, position + 1)
                if isinstance(container, dict):
                    frame[1], position = _read_key(text, position)
                break
            if delimiter != ("}" if isinstance(container, dict) else "]"):
                raise JSONDecodeError("Expecting ',' delimiter", text, position)
            position += 1
            stack.pop()
            value = container


__all__ = ["EXTRA_LEVELS", "MAX_INDENTED_LEVELS", "dumps", "dumps_indented", "loads"]
