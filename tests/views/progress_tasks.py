"""Task types that report in-task progress; module-level so that every runner backend can import them."""

from __future__ import annotations

import time

import labtech_nb as labtech


@labtech.task
class IterateFolds:
    """Iterates with ``labtech_nb.progress`` (reports 0/n first, then after each item)."""

    n: int
    step_seconds: float

    def run(self) -> int:
        done = 0
        for _ in labtech.progress(range(self.n), desc="folds"):
            time.sleep(self.step_seconds)
            done += 1
        return done


@labtech.task
class ReportEpochs:
    """Calls ``labtech_nb.report_progress`` after each step."""

    n: int
    step_seconds: float

    def run(self) -> int:
        for epoch in range(self.n):
            time.sleep(self.step_seconds)
            labtech.report_progress(epoch + 1, self.n, "epochs")
        return self.n


@labtech.task
class IterateUnsized:
    """Iterates a generator (no length) with ``labtech_nb.progress``, with and without an explicit total."""

    n: int
    give_total: bool

    def run(self) -> list[int]:
        items = (index * index for index in range(self.n))
        total = self.n if self.give_total else None
        return list(labtech.progress(items, desc="items", total=total))
