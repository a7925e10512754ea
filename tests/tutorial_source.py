"""Reads the labtech tutorial's code blocks (shipped beside the repository in ``shared/seed``).

The snippets are executed as written, except for the import rewrite that the drop-in promise is
about (``import labtech`` becomes ``import labtech_nb as labtech``) and, where a test asks for it,
the removal of mlflow lines.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

TUTORIAL_PATH = Path(__file__).resolve().parents[2] / "shared" / "seed" / "labtech_tutorial.md"

_BLOCK = re.compile(r"^``` \{\.python \.code\}\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SECTION = re.compile(r"^### (.+)$", re.MULTILINE)


def tutorial_sections() -> list[tuple[str, list[str]]]:
    """Return ``(section title, [python blocks])`` in order; the intro's blocks have title ''."""
    if not TUTORIAL_PATH.exists():
        raise FileNotFoundError(
            f"The labtech tutorial is expected at {TUTORIAL_PATH} (the shared/ folder beside the repository)."
        )
    text = TUTORIAL_PATH.read_text()
    sections: list[tuple[str, list[str]]] = []
    starts = [(0, "")] + [(match.start(), match.group(1).strip()) for match in _SECTION.finditer(text)]
    for index, (start, title) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(text)
        sections.append((title, [block.group(1) for block in _BLOCK.finditer(text, start, end)]))
    return sections


def as_labtech_nb(code: str, *, without_mlflow: bool = False) -> str:
    """Rewrite labtech imports to labtech_nb; optionally drop the mlflow lines."""
    code = re.sub(r"^import labtech$", "import labtech_nb as labtech", code, flags=re.MULTILINE)
    code = code.replace("from labtech.", "from labtech_nb.")
    if without_mlflow:
        code = code.replace("@labtech.task(mlflow_run=True)", "@labtech.task")
        code = re.sub(r"^import mlflow\n|^mlflow\..*\n", "", code, flags=re.MULTILINE)
    return code


def new_module(name: str) -> types.ModuleType:
    """Create an importable module to execute snippets in (so cached tasks can be listed again)."""
    module = types.ModuleType(name)
    sys.modules[name] = module
    return module
