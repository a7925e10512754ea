"""Types for the hostile-input tests: Enum and built-in subclasses, and task types taking anything."""

from __future__ import annotations

import enum
from collections import namedtuple
from typing import Any

import labtech_nb as labtech


class Mood(enum.Enum):
    HAPPY = "<b>happy</b>"
    SAD = 2
    GLUM = 2  # an alias of SAD


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 10**30


class Tone(enum.StrEnum):
    LOUD = "<script>alert('loud')</script>"


class Perm(enum.Flag):
    READ = 1
    WRITE = 2


class MyStr(str):
    pass


class MyInt(int):
    pass


class MyFloat(float):
    pass


class MyDict(dict):  # type: ignore[type-arg]
    pass


class MyList(list):  # type: ignore[type-arg]
    pass


Point = namedtuple("Point", ["x", "y"])


@labtech.task
class Anything:
    a: Any
    b: Any = None

    def run(self) -> Any:
        return [self.a, self.b]


@labtech.task
class Wrapper:
    inner: Any

    def run(self) -> Any:
        return self.inner


# --- task types whose names are markup -----------------------------------------------------------------

EVIL_NAME = "<img src=x onerror=alert(1)>"
EVIL_TEXT = "<script>alert(1)</script>"
EVIL_MARKDOWN = "**bold** [click](javascript:alert(1)) `code` ```"
EVIL_MERMAID = 'A-->B; click A call alert() %%{init: {"theme": "x"}}%% "quote"'


def _evil_run(self: Any) -> Any:
    print(EVIL_TEXT)
    print(EVIL_MARKDOWN)
    if self.fail:
        raise ValueError(f"failed with {EVIL_TEXT} {EVIL_NAME}")
    return f"{EVIL_TEXT} {self.label}"


#: A task type whose class name is HTML; importable under that name, so cache listings can rebuild it.
EvilType: Any = labtech.task(
    type(
        EVIL_NAME,
        (),
        {
            "__annotations__": {"label": str, "fail": bool, "note": f"{EVIL_TEXT} {EVIL_MERMAID}"},
            "__module__": __name__,
            "__qualname__": EVIL_NAME,
            "fail": False,
            "note": EVIL_MARKDOWN,
            "run": _evil_run,
        },
    )
)
globals()[EVIL_NAME] = EvilType


def _plain_run(self: Any) -> Any:
    print(EVIL_TEXT)
    return EVIL_TEXT


#: A normally named task type holding markup in its parameters and in a (string) annotation.
Plain: Any = labtech.task(
    type(
        "Plain",
        (),
        {
            "__annotations__": {"text": "<script>alert('annotation')</script>", "child": Any},
            "__module__": __name__,
            "__qualname__": "Plain",
            "child": None,
            "run": _plain_run,
        },
    )
)
