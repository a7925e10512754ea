"""Text and HTML renderings of a run's progress, shared by the dashboard and its saved outputs."""

from __future__ import annotations

import html
from datetime import datetime

from labtech_nb.engine.progress import ActiveTask, RunProgress, format_bytes, format_seconds

STATE_COLOURS = {"running": "#1f6feb", "finished": "#1a7f37", "failed": "#cf222e", "interrupted": "#9a6700", "pending": "#57606a"}


def header_html(progress: RunProgress) -> str:
    """The dashboard's header: state, elapsed time, counts and ETA."""
    totals = progress.totals
    state = progress.state if progress.state != "pending" else "starting"
    colour = STATE_COLOURS.get(progress.state, "#57606a")
    eta = progress.eta()
    parts = [
        f"<b style='color:{colour}'>{html.escape(state)}</b>",
        f"elapsed {format_seconds(progress.elapsed())}",
        f"{totals.done} done",
        f"{totals.loaded} from cache",
        f"{totals.failed} failed",
        f"{totals.skipped} skipped",
        f"{totals.remaining} remaining",
    ]
    if eta is not None:
        parts.append(f"ETA {format_seconds(eta)}")
    return " &middot; ".join(parts)


def _progress_text(active: ActiveTask) -> str:
    if active.progress_done is None:
        return ""
    done = f"{active.progress_done:g}"
    text = f"{done}/{active.progress_total:g}" if active.progress_total else done
    return f"{text} {active.progress_description}" if active.progress_description else text


def _since(start: datetime | None) -> str:
    return start.strftime("%H:%M:%S") if start else ""


def active_rows(progress: RunProgress) -> list[list[str]]:
    """Rows of the active-task table: name, status, since, CPU, memory, progress."""
    rows = []
    for active in sorted(progress.active.values(), key=lambda item: (item.start is None, item.start or datetime.max)):
        if active.status == "queued":
            continue
        cpu = f"{active.cpu_percent:.0f}%" if active.cpu_percent is not None else ""
        rows.append(
            [active.name, active.status, _since(active.start), cpu, format_bytes(active.rss_bytes), _progress_text(active)]
        )
    return rows


ACTIVE_COLUMNS = ["task", "status", "since", "CPU", "memory", "progress"]


def table_html(columns: list[str], rows: list[list[str]], *, empty: str = "") -> str:
    """An HTML table with escaped cells."""
    if not rows:
        return f"<i>{html.escape(empty)}</i>" if empty else ""
    head = "".join(f"<th style='text-align:left;padding:0 8px'>{html.escape(column)}</th>" for column in columns)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding:0 8px'>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def type_rows(progress: RunProgress) -> list[list[str]]:
    """Per-type counts: type, done/total, from cache, failed, skipped."""
    return [
        [name, f"{counts.done + counts.loaded}/{counts.total}", str(counts.loaded), str(counts.failed), str(counts.skipped)]
        for name, counts in progress.types.items()
    ]


TYPE_COLUMNS = ["task type", "done", "from cache", "failed", "skipped"]


def summary_text(progress: RunProgress, title: str = "labtech_nb run") -> str:
    """A plain-text summary of the run (for terminals, GitHub, nbviewer and nbval)."""
    lines = [f"{title}: {progress.summary()}"]
    for name, done, loaded, failed, skipped in type_rows(progress):
        extra = "".join(f", {count} {label}" for label, count in (("failed", failed), ("skipped", skipped)) if count != "0")
        lines.append(f"  {name}: {done} ({loaded} from cache{extra})")
    for failure in progress.failures[:10]:
        lines.append(
            f"  {'skipped' if failure.skipped else 'failed'}: {failure.name}: {failure.message.splitlines()[0] if failure.message else ''}"
        )
    if len(progress.failures) > 10:
        lines.append(f"  ... and {len(progress.failures) - 10} more failures")
    return "\n".join(lines)


def summary_html(progress: RunProgress) -> str:
    """An HTML summary of the run: header and per-type table."""
    return f"<div>{header_html(progress)}</div>" + table_html(TYPE_COLUMNS, type_rows(progress))
