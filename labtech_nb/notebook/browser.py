"""The cache browser: page through cached results, filter and sort them, inspect, load and uncache.

Every button calls a plain method (``select``, ``load_result``, ``request_uncache``, ``confirm``...),
so the browser can be driven and tested without a front end. Selection follows cache keys, never row
positions, so it survives filtering, sorting and paging.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

import ipywidgets as widgets

from labtech_nb.cache_entries import CacheEntries, CacheEntry, delete_entries
from labtech_nb.engine.progress import format_bytes
from labtech_nb.engine.run import storage_is_busy

PAGE_SIZE = 50
_UNCHANGED: Any = object()
SORT_COLUMNS = ("key", "task_type", "start", "duration", "size", "code_version", "stale", "parameters")
TABLE_COLUMNS = ("task type", "parameters", "code_version", "started", "duration", "size", "state")


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _state(entry: CacheEntry) -> str:
    if not entry.importable:
        return "orphaned"
    return "stale" if entry.stale else "current"


def entry_cells(entry: CacheEntry) -> list[str]:
    """The table cells of one entry (plain text)."""
    started = entry.start.strftime("%Y-%m-%d %H:%M") if entry.start else "-"
    duration = f"{entry.duration:.2f}s" if entry.duration is not None else "-"
    return [
        entry.task_type,
        _short(entry.parameters_text()),
        entry.code_version or "",
        started,
        duration,
        format_bytes(entry.size) or "-",
        _state(entry),
    ]


class CacheBrowser:
    """Browse a lab's cache in a notebook.

    Args:
        lab: the lab whose storage is browsed.
        task_types: only entries of these types (None: every entry).
        page_size: rows per page.
    """

    def __init__(self, lab: Any, *, task_types: Any = None, page_size: int = PAGE_SIZE) -> None:
        self.lab = lab
        self.task_types = task_types
        self.page_size = page_size
        self.selected: set[str] = set()
        self.page = 0
        self.sort_column = "key"
        self.descending = False
        self.loaded_result: Any = None
        self._pending: tuple[str, list[str]] | None = None
        self._build_widgets()
        self.refresh()

    # --- data -----------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-list the storage and redraw (selections of entries that still exist are kept)."""
        self.entries = CacheEntries(self.lab.storage, self.task_types)
        self.selected &= set(self.entries.keys)
        chosen = self.type_filter.value
        options = ["(all types)", *self.entries.type_names()]
        self._drawing = True
        try:
            self.type_filter.options = options
            self.type_filter.value = chosen if chosen in options else "(all types)"
        finally:
            self._drawing = False
        self._pending = None
        self.page = min(self.page, self.page_count() - 1)
        self._redraw()

    def matching(self) -> list[CacheEntry]:
        """Entries passing the filters, in the chosen order."""
        chosen = self.type_filter.value
        entries = self.entries.filter(task_type=None if chosen in (None, "(all types)") else chosen, text=self.search.value)
        if self.sort_column != "key" or self.descending:
            entries = sorted(entries, key=lambda entry: entry.sort_value(self.sort_column), reverse=self.descending)
        return entries

    def page_entries(self) -> list[CacheEntry]:
        """The entries on the current page."""
        if (
            self.type_filter.value in (None, "(all types)")
            and not self.search.value.strip()
            and self.sort_column == "key"
            and not self.descending
        ):
            # Unfiltered, in key order: describe only this page's entries.
            return list(self.entries[self.page * self.page_size : (self.page + 1) * self.page_size])
        return self.matching()[self.page * self.page_size : (self.page + 1) * self.page_size]

    def page_count(self) -> int:
        """How many pages the matching entries fill."""
        unfiltered = self.type_filter.value in (None, "(all types)") and not self.search.value.strip()
        count = len(self.entries) if unfiltered else len(self.matching())
        return max(math.ceil(count / self.page_size), 1)

    # --- actions (what the buttons call) --------------------------------------------------------

    def set_filter(self, *, task_type: Any = _UNCHANGED, text: Any = _UNCHANGED) -> None:
        """Filter by task type (None: all types) and/or by text over keys, types and parameters.

        An argument left out keeps its current filter.
        """
        if task_type is not _UNCHANGED:
            self.type_filter.value = task_type or "(all types)"
        if text is not _UNCHANGED:
            self.search.value = text or ""
        self.page = 0
        self._redraw()

    def sort_by(self, column: str, *, descending: bool = False) -> None:
        """Sort by a column (see ``SORT_COLUMNS``)."""
        if column not in SORT_COLUMNS:
            self._say(f"Cannot sort by {column!r}; choose one of {', '.join(SORT_COLUMNS)}.", error=True)
            return
        self.sort_column, self.descending = column, descending
        self.sort.value, self.sort_descending.value = column, descending
        self._redraw()

    def go_to_page(self, page: int) -> None:
        """Show page ``page`` (0-based, clamped)."""
        self.page = min(max(page, 0), self.page_count() - 1)
        self._redraw()

    def select(self, key: str, selected: bool = True) -> None:
        """Select or unselect one entry by key."""
        if selected:
            self.selected.add(key)
        else:
            self.selected.discard(key)
        self._pending = None
        self._redraw()

    def select_all_matching(self) -> None:
        """Select every entry that passes the filters (on every page)."""
        self.selected |= {entry.key for entry in self.matching()}
        self._pending = None
        self._redraw()

    def clear_selection(self) -> None:
        """Unselect everything."""
        self.selected.clear()
        self._pending = None
        self._redraw()

    def show_details(self, key: str) -> None:
        """Show an entry's full parameters, dependencies, metadata and size."""
        entry = self.entries.describe(key)
        dependencies = _nested_tasks(entry.parameters)
        parts = [
            f"<b>{html.escape(entry.task_type)}</b> <code>{html.escape(entry.key)}</code>",
            f"<div>state: {_state(entry)}; size: {html.escape(format_bytes(entry.size) or 'unknown')}; "
            f"code_version: {html.escape(str(entry.code_version))} (current: {html.escape(str(entry.current_code_version))})</div>",
            f"<div>parameters:</div><pre>{html.escape(json.dumps(entry.parameters, indent=2, ensure_ascii=False, default=str))}</pre>",
        ]
        if dependencies:
            parts.append(
                "<div>dependencies:</div><ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in dependencies) + "</ul>"
            )
        if entry.error:
            parts.append(f"<div style='color:#cf222e'>{html.escape(entry.error)}</div>")
        metadata = {name: value for name, value in entry.metadata.items() if name != "task"}
        parts.append(f"<div>metadata:</div><pre>{html.escape(json.dumps(metadata, indent=2, default=str))}</pre>")
        self.details.value = "".join(parts)
        self.details_key: str | None = key

    def load_result(self, key: str, *, bind_to: str | None = None) -> Any:
        """Load an entry's result (through its task type's cache); optionally bind it to a notebook name."""
        try:
            task = self.entries.rebuild_task(key)
            cache = type(task)._lt_options.cache
            result = cache.load_result_with_meta(self.lab.storage, task).value
        except Exception as error:
            self._say(f"Could not load the result of {key}: {type(error).__name__}: {error}", error=True)
            return None
        self.loaded_result = result
        message = f"Loaded the result of {key} ({type(result).__qualname__})."
        if bind_to:
            if not bind_to.isidentifier():
                self._say(f"{bind_to!r} is not a valid Python name; the result is in browser.loaded_result.", error=True)
                return result
            shell = _shell()
            if shell is not None:
                shell.user_ns[bind_to] = result
                message += f" It is now the variable {bind_to}."
        self._say(message)
        return result

    def request_uncache(self, which: str = "selected") -> str:
        """First step of uncaching ``'selected'``, ``'stale'`` or ``'orphaned'`` entries: states what would go."""
        if storage_is_busy(self.lab.storage):
            return self._say("A run is using this storage; uncache when it has finished.", error=True)
        if which == "selected":
            keys = sorted(self.selected)
        elif which == "stale":
            keys = [entry.key for entry in self.entries if entry.stale]
        elif which == "orphaned":
            keys = [entry.key for entry in self.entries if entry.orphaned]
        else:
            return self._say(f"Unknown set of entries {which!r}.", error=True)
        if not keys:
            self._pending = None
            self._redraw()
            return self._say(f"No {which} entries to uncache.")
        size = sum(self.entries.describe(key).size or 0 for key in keys)
        self._pending = (which, keys)
        self._redraw()
        return self._say(
            f"Delete {len(keys)} {which} entr{'y' if len(keys) == 1 else 'ies'} ({format_bytes(size)})? Click Confirm to delete them."
        )

    def confirm(self) -> str:
        """Second step: delete exactly the entries stated by `request_uncache`, reporting each failure."""
        if self._pending is None:
            return self._say("Nothing to confirm: choose what to uncache first.", error=True)
        if storage_is_busy(self.lab.storage):
            return self._say("A run is using this storage; uncache when it has finished.", error=True)
        which, keys = self._pending
        self._pending = None
        outcome = delete_entries(self.lab.storage, keys)
        failed = {key: error for key, error in outcome.items() if error is not None}
        self.selected -= set(outcome) - set(failed)
        self.refresh()
        if failed:
            details = "; ".join(f"{key}: {error}" for key, error in failed.items())
            return self._say(f"Deleted {len(keys) - len(failed)} of {len(keys)} {which} entries. Failed: {details}", error=True)
        return self._say(f"Deleted {len(keys)} {which} entr{'y' if len(keys) == 1 else 'ies'}.")

    def cancel(self) -> str:
        """Abandon a pending uncache."""
        self._pending = None
        self._redraw()
        return self._say("Nothing deleted.")

    # --- widgets --------------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        self.type_filter = widgets.Dropdown(options=["(all types)"], description="Type:")
        self.search = widgets.Text(placeholder="search keys and parameters", description="Filter:", continuous_update=False)
        self.sort = widgets.Dropdown(options=list(SORT_COLUMNS), value="key", description="Sort by:")
        self.sort_descending = widgets.Checkbox(value=False, description="descending", indent=False)
        self.previous_button = widgets.Button(description="◀", layout=widgets.Layout(width="3em"))
        self.next_button = widgets.Button(description="▶", layout=widgets.Layout(width="3em"))
        self.page_label = widgets.HTML(layout=widgets.Layout(flex="0 0 auto"))
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.select_all_button = widgets.Button(description="Select all matching")
        self.clear_button = widgets.Button(description="Clear selection")
        self.uncache_button = widgets.Button(description="Uncache selected", button_style="danger")
        self.uncache_stale_button = widgets.Button(description="Uncache stale", button_style="warning")
        self.uncache_orphaned_button = widgets.Button(description="Uncache orphaned", button_style="warning")
        self.confirm_button = widgets.Button(description="Confirm", button_style="danger", layout=widgets.Layout(display="none"))
        self.cancel_button = widgets.Button(description="Cancel", layout=widgets.Layout(display="none"))
        self.bind_name = widgets.Text(placeholder="variable name (optional)", layout=widgets.Layout(width="14em"))
        self.load_button = widgets.Button(description="Load result", tooltip="Load the result of the entry shown in the details")
        self.status = widgets.HTML()
        self.details = widgets.HTML()
        self.details_key = None
        self.header = widgets.HTML()
        self.rows: list[tuple[widgets.Checkbox, widgets.HTML, widgets.Button, widgets.HBox]] = []
        for _ in range(self.page_size):
            checkbox = widgets.Checkbox(indent=False, layout=widgets.Layout(width="2em"))
            cells = widgets.HTML()
            show = widgets.Button(description="details", layout=widgets.Layout(width="6em"))
            row = widgets.HBox([checkbox, show, cells], layout=widgets.Layout(display="none"))
            self.rows.append((checkbox, cells, show, row))
            checkbox.observe(self._checkbox_changed, names="value")
            show.on_click(self._details_clicked)
        self._row_keys: list[str | None] = [None] * self.page_size
        self._drawing = False

        self.type_filter.observe(lambda change: self._guard(self.set_filter, task_type=change["new"]), names="value")
        self.search.observe(lambda change: self._guard(self.set_filter, text=change["new"]), names="value")
        self.sort.observe(
            lambda change: self._guard(self.sort_by, change["new"], descending=self.sort_descending.value), names="value"
        )
        self.sort_descending.observe(
            lambda change: self._guard(self.sort_by, self.sort.value, descending=change["new"]), names="value"
        )
        self.previous_button.on_click(lambda _: self._guard(self.go_to_page, self.page - 1))
        self.next_button.on_click(lambda _: self._guard(self.go_to_page, self.page + 1))
        self.refresh_button.on_click(lambda _: self._guard(self.refresh))
        self.select_all_button.on_click(lambda _: self._guard(self.select_all_matching))
        self.clear_button.on_click(lambda _: self._guard(self.clear_selection))
        self.uncache_button.on_click(lambda _: self._guard(self.request_uncache, "selected"))
        self.uncache_stale_button.on_click(lambda _: self._guard(self.request_uncache, "stale"))
        self.uncache_orphaned_button.on_click(lambda _: self._guard(self.request_uncache, "orphaned"))
        self.confirm_button.on_click(lambda _: self._guard(self.confirm))
        self.cancel_button.on_click(lambda _: self._guard(self.cancel))
        self.load_button.on_click(lambda _: self._guard(self._load_shown))

        head = "".join(f"<th style='text-align:left;padding:0 8px'>{html.escape(column)}</th>" for column in TABLE_COLUMNS)
        self.table_head = widgets.HTML(f"<table><tr>{head}</tr></table>")
        self.root = widgets.VBox(
            [
                self.header,
                widgets.HBox([self.type_filter, self.search]),
                widgets.HBox(
                    [
                        self.sort,
                        self.sort_descending,
                        self.previous_button,
                        self.page_label,
                        self.next_button,
                        self.refresh_button,
                    ]
                ),
                widgets.HBox(
                    [
                        self.select_all_button,
                        self.clear_button,
                        self.uncache_button,
                        self.uncache_stale_button,
                        self.uncache_orphaned_button,
                    ]
                ),
                widgets.HBox([self.confirm_button, self.cancel_button]),
                self.status,
                widgets.VBox([row for *_, row in self.rows]),
                widgets.HBox([self.load_button, self.bind_name]),
                self.details,
            ]
        )

    def _guard(self, action: Any, *args: Any, **kwargs: Any) -> None:
        """Run a button's action; errors are shown in the status line (ipywidgets would swallow them)."""
        if self._drawing:
            return
        try:
            action(*args, **kwargs)
        except Exception as error:
            self._say(f"{type(error).__name__}: {error}", error=True)

    def _checkbox_changed(self, change: dict[str, Any]) -> None:
        if self._drawing:
            return
        for index, (checkbox, *_rest) in enumerate(self.rows):
            if checkbox is change["owner"] and self._row_keys[index] is not None:
                self._guard(self.select, self._row_keys[index], change["new"])

    def _details_clicked(self, button: widgets.Button) -> None:
        for index, (_checkbox, _cells, show, _row) in enumerate(self.rows):
            if show is button and self._row_keys[index] is not None:
                self._guard(self.show_details, self._row_keys[index])

    def _load_shown(self) -> None:
        if self.details_key is None:
            self._say("Click 'details' on an entry first, then Load result.", error=True)
            return
        self.load_result(self.details_key, bind_to=self.bind_name.value.strip() or None)

    def _redraw(self) -> None:
        entries = self.page_entries()
        busy = storage_is_busy(self.lab.storage)
        self._drawing = True
        try:
            with self.root.hold_sync():
                total = len(self.entries)
                self.header.value = f"<b>{total}</b> cached entries in {html.escape(repr(self.lab.storage))}; <b>{len(self.selected)}</b> selected"
                self.page_label.value = f"page {self.page + 1} of {self.page_count()}"
                for index, (checkbox, cells, _show, row) in enumerate(self.rows):
                    if index < len(entries):
                        entry = entries[index]
                        self._row_keys[index] = entry.key
                        checkbox.value = entry.key in self.selected
                        cells.value = " · ".join(html.escape(cell) for cell in entry_cells(entry))
                        row.layout.display = "flex"
                    else:
                        self._row_keys[index] = None
                        row.layout.display = "none"
                for button in (self.uncache_button, self.uncache_stale_button, self.uncache_orphaned_button, self.confirm_button):
                    button.disabled = busy
                pending = "flex" if self._pending is not None else "none"
                self.confirm_button.layout.display = pending
                self.cancel_button.layout.display = pending
        finally:
            self._drawing = False

    def _say(self, message: str, *, error: bool = False) -> str:
        colour = "#cf222e" if error else "#1a7f37"
        self.status.value = f"<span style='color:{colour}'>{html.escape(message)}</span>"
        self.last_message = message
        return message

    # --- display --------------------------------------------------------------------------------

    def summary(self) -> str:
        """A plain-text summary and the first page of entries."""
        lines = [f"Cache browser: {len(self.entries)} entries in {self.lab.storage!r}"]
        for entry in list(self.entries[: self.page_size]):
            lines.append("  " + " | ".join(entry_cells(entry)))
        if len(self.entries) > self.page_size:
            lines.append(f"  ... and {len(self.entries) - self.page_size} more")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = dict(self.root._repr_mimebundle_() or {})
        bundle["text/plain"] = self.summary()
        head = "".join(f"<th>{html.escape(column)}</th>" for column in TABLE_COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in entry_cells(entry)) + "</tr>"
            for entry in list(self.entries[: self.page_size])
        )
        bundle["text/html"] = f"<p>{len(self.entries)} cached entries</p><table><tr>{head}</tr>{body}</table>"
        return bundle


def _nested_tasks(parameters: Any, path: str = "") -> list[str]:
    found = []
    if isinstance(parameters, dict):
        if parameters.get("_is_task"):
            return [f"{path}: {parameters.get('__class__', '?').rpartition('.')[2]}"]
        for name, value in parameters.items():
            found += _nested_tasks(value, f"{path}.{name}" if path else name)
    elif isinstance(parameters, list):
        for index, value in enumerate(parameters):
            found += _nested_tasks(value, f"{path}[{index}]")
    return found


def _shell() -> Any:
    import sys

    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None
