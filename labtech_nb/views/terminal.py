"""The terminal view: a progress bar per task type and a table of the top active tasks.

On a terminal it draws tqdm bars and the table in place, at most a few times a second. Elsewhere
(CI logs, files, pipes) it writes plain summary lines now and then, never cursor codes.
"""

from __future__ import annotations

import string
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO

from labtech_nb import log
from labtech_nb.engine.capture import original_stream
from labtech_nb.engine.events import Event, RunFinished, RunStarted
from labtech_nb.engine.progress import ActiveTask, RunProgress

BAR_FORMAT = "{desc}: {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}] |{bar}| {percentage:3.0f}% [{remaining} remaining]"
LEFT_ALIGNED_FIELDS = ("name", "status")


def _total_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def top_fields(active: ActiveTask, total_memory: int) -> dict[str, tuple[Any, str]]:
    """The ``top_format`` fields of an active task: ``{field: (sort value, text)}``."""
    start = active.start
    rss_percent = 100.0 * active.rss_bytes / total_memory if active.rss_bytes is not None and total_memory else None
    vms_percent = 100.0 * active.vms_bytes / total_memory if active.vms_bytes is not None and total_memory else None
    return {
        "name": (active.name, active.name),
        "pid": (active.pid or 0, str(active.pid) if active.pid else "-"),
        "status": (active.status, active.status),
        "start_time": (start or datetime.max, start.strftime("%H:%M:%S") if start else "-"),
        "children": (active.children or 0, str(active.children) if active.children is not None else "-"),
        "threads": (active.threads or 0, str(active.threads) if active.threads is not None else "-"),
        "cpu": (active.cpu_percent or 0.0, f"{active.cpu_percent:.1f}%" if active.cpu_percent is not None else "-"),
        "rss": (rss_percent or 0.0, f"{rss_percent:.1f}%" if rss_percent is not None else "-"),
        "vms": (vms_percent or 0.0, f"{vms_percent:.1f}%" if vms_percent is not None else "-"),
    }


def format_top(
    progress: RunProgress, *, top_format: str, top_sort: str, top_n: int, now: datetime, total_memory: int
) -> list[str]:
    """The active-task table: a header line, then up to ``top_n`` task lines with padded columns."""
    rows = [top_fields(active, total_memory) for active in progress.active.values() if active.status != "queued"]
    descending = top_sort.startswith("-")
    sort_field = top_sort.lstrip("-")
    rows.sort(key=lambda row: row[sort_field][0], reverse=descending)
    shown = rows[:top_n]
    header = f"{len(rows)} active tasks as at {now:%H:%M:%S}. Up to top {top_n} by {top_sort}:"
    widths = {name: max((len(row[name][1]) for row in shown), default=0) for name in (shown[0] if shown else {})}
    template = string.Template(top_format)
    lines = [header]
    for row in shown:
        values = {
            name: text.ljust(widths[name]) if name in LEFT_ALIGNED_FIELDS else text.rjust(widths[name])
            for name, (_, text) in row.items()
        }
        lines.append(template.safe_substitute(values))
    return lines


class TerminalView:
    """Renders a `RunProgress` as text.

    Args:
        show_bars: draw the per-type bars (labtech's ``disable_progress`` turns them off).
        show_top: draw the active-task table (``disable_top``).
        top_format, top_sort, top_n: labtech's options for the table.
        stream: where to draw (default: the real stderr).
        interactive: draw in place (a terminal) or write summary lines (default: ``stream.isatty()``).
        min_interval: the least time between redraws on a terminal.
        summary_interval: the least time between summary lines off a terminal.
        clock: the time source (tests pass a fake one).
    """

    def __init__(
        self,
        *,
        show_bars: bool = True,
        show_top: bool = True,
        top_format: str = "$name $status since $start_time CPU: $cpu MEM: $rss",
        top_sort: str = "start_time",
        top_n: int = 10,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        min_interval: float = 0.25,
        summary_interval: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.progress = RunProgress()
        self.show_bars = show_bars
        self.show_top = show_top
        self.top_format = top_format
        self.top_sort = top_sort
        self.top_n = top_n
        self.stream = stream if stream is not None else original_stream(sys.stderr)
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)()) if interactive is None else interactive
        self.min_interval = min_interval if self.interactive else summary_interval
        self.clock = clock
        self.draw_count = 0
        self._run_draws = 0
        self._last_draw = float("-inf")
        self._bars: dict[str, Any] = {}
        self._top_lines: list[Any] = []
        self._writer_token: Any = None
        self._total_memory = _total_memory()

    def __call__(self, event: Event) -> None:
        self.progress.observe(event)
        if isinstance(event, RunStarted):
            self._run_draws = 0
            self._open()
            self._draw()
        elif isinstance(event, RunFinished):
            self._draw(final=True)
            self._close()
        elif self.clock() - self._last_draw >= self.min_interval:
            self._draw()

    # --- drawing --------------------------------------------------------------------------------

    def _open(self) -> None:
        if not self.interactive:
            totals = self.progress.totals
            per_type = ", ".join(f"{name}: {counts.total}" for name, counts in self.progress.types.items())
            self._write(f"labtech_nb: running {totals.total} tasks ({per_type})")
            return
        from tqdm import tqdm

        position = 0
        if self.show_bars:
            for name, counts in self.progress.types.items():
                self._bars[name] = tqdm(
                    total=counts.total,
                    desc=name,
                    unit="tasks",
                    file=self.stream,
                    position=position,
                    leave=True,
                    bar_format=BAR_FORMAT,
                )
                position += 1
        if self.show_top:
            for offset in range(self.top_n + 1):
                self._top_lines.append(
                    tqdm(total=0, file=self.stream, position=position + offset, leave=False, bar_format="{desc}")
                )
        self._writer_token = log.set_line_writer(lambda line: tqdm.write(line, file=self.stream))

    def _draw(self, final: bool = False) -> None:
        now = self.clock()
        self._last_draw = now
        self.draw_count += 1
        self._run_draws += 1
        if not self.interactive:
            if final:
                self._write_final()
            elif self.progress.state == "running" and self._run_draws > 1:
                self._write(f"labtech_nb: {self.progress.summary(now)}")
            return
        for name, bar in self._bars.items():
            counts = self.progress.types[name]
            bar.total = counts.total
            bar.n = counts.done + counts.loaded
            bar.refresh()
        if self._top_lines:
            lines = format_top(
                self.progress,
                top_format=self.top_format,
                top_sort=self.top_sort,
                top_n=self.top_n,
                now=datetime.fromtimestamp(now),
                total_memory=self._total_memory,
            )
            for index, line in enumerate(self._top_lines):
                line.set_description_str(lines[index] if index < len(lines) and not final else "", refresh=True)

    def _write_final(self) -> None:
        progress = self.progress
        self._write(f"labtech_nb: {progress.summary(self.clock())}")
        if self.show_bars:
            for name, counts in progress.types.items():
                extra = "".join(
                    f", {count} {label}" for label, count in (("failed", counts.failed), ("skipped", counts.skipped)) if count
                )
                self._write(f"  {name}: {counts.done + counts.loaded}/{counts.total} ({counts.loaded} from cache{extra})")

    def _close(self) -> None:
        if not self.interactive:
            return
        for line in self._top_lines:
            line.close()
        for bar in self._bars.values():
            bar.close()
        self._top_lines.clear()
        self._bars.clear()
        if self._writer_token is not None:
            log.reset_line_writer(self._writer_token)
            self._writer_token = None
        totals = self.progress.totals
        if self.progress.state != "finished" or totals.failed or totals.skipped:
            self._write(f"labtech_nb: {self.progress.summary(self.clock())}")

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()
