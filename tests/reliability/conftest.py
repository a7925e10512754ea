"""Prints what the reliability tests did (faults injected, inputs fuzzed, entries verified, peaks)."""

from __future__ import annotations

from typing import Any

from tests.reliability.helpers import FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("labtech_nb reliability figures")
    for name, value in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{name}: {value}")
