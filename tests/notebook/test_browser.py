"""The cache browser widget, driven through its widgets' state and ``button.click()``.

The storage holds entries of three types written with known start times, durations and result
sizes: ``Train`` (current), ``Score`` (stale: its code_version changed after its entries were written)
and ``Legacy`` (orphaned: its module was deleted).
"""

from __future__ import annotations

import html
import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import ipywidgets as widgets
import pytest

import labtech_nb as labtech
from labtech_nb.notebook import browser as browser_module
from labtech_nb.notebook.browser import CacheBrowser
from labtech_nb.storage import LocalStorage
from labtech_nb.types import ResultMeta, TaskResult
from tests.support.storage import FailingDeleteStorage, TaskModules, entry_files_size, listing

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

MAIN_SOURCE = """
import labtech_nb as labtech

@labtech.task(code_version="v3")
class Train:
    name: str
    lr: float = 0.1

    def run(self):
        return self.name

@labtech.task(code_version="{score_version}")
class Score:
    name: str
    model: Train

    def run(self):
        return 1.0

@labtech.task(cache=None)
class Waiter:
    n: int

    def run(self):
        if not self.context["gate"].wait(20):
            raise TimeoutError("the gate never opened")
        return self.n
"""

LEGACY_SOURCE = """
import labtech_nb as labtech

@labtech.task(code_version="v1")
class Legacy:
    name: str

    def run(self):
        return self.name
"""

BASE_START = datetime(2024, 3, 1, 8, 0)


@dataclass
class Spec:
    type_name: str
    name: str
    hour: int
    duration: float
    result_length: int
    key: str = ""
    size: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def result(self) -> str:
        return "x" * self.result_length

    @property
    def stale(self) -> bool:
        return self.type_name == "Score"

    @property
    def code_version(self) -> str:
        return "v3" if self.type_name == "Train" else "v1"


SPECS = [
    Spec("Train", "t01", 5, 3.5, 300),
    Spec("Train", "t02", 11, 0.25, 50),
    Spec("Train", "t03", 0, 7.0, 900),
    Spec("Train", "t04", 8, 1.5, 150),
    Spec("Train", "t05", 2, 12.0, 600),
    Spec("Train", "t06", 9, 0.75, 20),
    Spec("Train", "t07", 4, 5.25, 450),
    Spec("Score", "s01", 1, 9.5, 800),
    Spec("Score", "s02", 10, 2.0, 100),
    Spec("Score", "s03", 6, 0.5, 700),
    Spec("Legacy", "l01", 3, 4.0, 250),
    Spec("Legacy", "l02", 7, 6.5, 1000),
]


def format_size(count: int) -> str:
    return f"{count} B" if count < 1024 else f"{count / 1024:.1f} KiB"


@dataclass
class Scenario:
    lab: labtech.Lab
    storage_dir: Path
    main: ModuleType
    specs: dict[str, Spec]

    @property
    def names_in_key_order(self) -> list[str]:
        return [spec.name for spec in sorted(self.specs.values(), key=lambda spec: spec.key)]

    def key(self, name: str) -> str:
        return self.specs[name].key

    def keys(self, *names: str) -> set[str]:
        return {self.key(name) for name in names}

    def names_of_type(self, type_name: str) -> list[str]:
        return [name for name in self.names_in_key_order if self.specs[name].type_name == type_name]

    def save(self, task: Any, value: Any, start: datetime, duration: float) -> str:
        type(task)._lt_options.cache.save(
            self.lab.storage, task, TaskResult(value, ResultMeta(start=start, duration=timedelta(seconds=duration)))
        )
        return str(task.cache_key)


@pytest.fixture
def scenario(tmp_path: Path, task_modules: TaskModules) -> Scenario:
    suffix = uuid.uuid4().hex[:8]
    main_name, legacy_name = f"browser_main_{suffix}", f"browser_legacy_{suffix}"
    main = task_modules.write(main_name, MAIN_SOURCE.format(score_version="v1"))
    legacy = task_modules.write(legacy_name, LEGACY_SOURCE)
    storage_dir = tmp_path / "storage"
    scene = Scenario(labtech.Lab(storage=storage_dir, runner_backend="serial", notebook=False), storage_dir, main, {})
    trains: dict[str, Any] = {}
    for spec in SPECS:
        if spec.type_name == "Train":
            task = trains[spec.name] = main.Train(name=spec.name)
            spec.params = {"name": spec.name, "lr": 0.1}
        elif spec.type_name == "Score":
            task = main.Score(name=spec.name, model=trains["t0" + spec.name[-1]])
        else:
            task = legacy.Legacy(name=spec.name)
        spec.key = scene.save(task, spec.result, BASE_START + timedelta(hours=spec.hour), spec.duration)
        spec.size = entry_files_size(storage_dir / spec.key)
        scene.specs[spec.name] = spec
    # Score's code changes (stale entries); the Legacy module is deleted (orphaned entries).
    scene.main = task_modules.write(main_name, MAIN_SOURCE.format(score_version="v2"))
    task_modules.remove(legacy_name)
    return scene


@pytest.fixture
def browser(scenario: Scenario) -> CacheBrowser:
    return CacheBrowser(scenario.lab, page_size=5)


# --- reading what the user sees -------------------------------------------------------------------------


def visible_rows(browser: CacheBrowser) -> list[tuple[widgets.Checkbox, widgets.HTML, widgets.Button]]:
    return [(checkbox, cells, show) for checkbox, cells, show, row in browser.rows if row.layout.display != "none"]


def row_name(cells: widgets.HTML) -> str:
    match = re.search(r'"name": "([^"]*)"', html.unescape(cells.value))
    assert match is not None, cells.value
    return match.group(1)


def visible_names(browser: CacheBrowser) -> list[str]:
    return [row_name(cells) for _checkbox, cells, _show in visible_rows(browser)]


def row_of(browser: CacheBrowser, name: str) -> tuple[widgets.Checkbox, widgets.HTML, widgets.Button]:
    for row in visible_rows(browser):
        if row_name(row[1]) == name:
            return row
    raise AssertionError(f"{name} is not on the page: {visible_names(browser)}")


def text_of(value: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", value))


def status(browser: CacheBrowser) -> str:
    return text_of(browser.status.value)


def header(browser: CacheBrowser) -> str:
    return text_of(browser.header.value)


def go_to_first_page(browser: CacheBrowser) -> None:
    while not browser.page_label.value.startswith("page 1 "):
        browser.previous_button.click()


def names_on_every_page(browser: CacheBrowser) -> list[str]:
    go_to_first_page(browser)
    names = visible_names(browser)
    while True:
        label = browser.page_label.value
        browser.next_button.click()
        if browser.page_label.value == label:
            return names
        names += visible_names(browser)


def is_shown(button: widgets.Button) -> bool:
    return button.layout.display != "none"


# --- listing, filtering, sorting, paging ------------------------------------------------------------------


def test_first_page_shows_entries_in_key_order_with_their_cells(browser: CacheBrowser, scenario: Scenario) -> None:
    assert header(browser).startswith("12 cached entries in LocalStorage(")
    assert "0 selected" in header(browser)
    assert browser.page_label.value == "page 1 of 3"
    assert visible_names(browser) == scenario.names_in_key_order[:5]
    for _checkbox, cells, _show in visible_rows(browser):
        spec = scenario.specs[row_name(cells)]
        text = html.unescape(cells.value)
        assert text.startswith(spec.type_name + " · ")
        assert f" · {spec.code_version} · " in text
        assert (BASE_START + timedelta(hours=spec.hour)).strftime("%Y-%m-%d %H:%M") in text
        assert f"{spec.duration:.2f}s" in text
        assert format_size(spec.size) in text
        state = {"Train": "current", "Score": "stale", "Legacy": "orphaned"}[spec.type_name]
        assert text.endswith(" · " + state)


def test_paging_with_the_arrow_buttons(browser: CacheBrowser, scenario: Scenario) -> None:
    order = scenario.names_in_key_order
    browser.previous_button.click()
    assert browser.page_label.value == "page 1 of 3"

    browser.next_button.click()
    assert browser.page_label.value == "page 2 of 3"
    assert visible_names(browser) == order[5:10]
    browser.next_button.click()
    assert browser.page_label.value == "page 3 of 3"
    assert visible_names(browser) == order[10:]
    assert sum(1 for *_, row in browser.rows if row.layout.display == "none") == 3
    browser.next_button.click()
    assert browser.page_label.value == "page 3 of 3"
    assert visible_names(browser) == order[10:]

    browser.previous_button.click()
    assert browser.page_label.value == "page 2 of 3"
    assert visible_names(browser) == order[5:10]
    assert names_on_every_page(browser) == order


def test_filter_by_type_with_the_dropdown(browser: CacheBrowser, scenario: Scenario) -> None:
    assert list(browser.type_filter.options) == ["(all types)", "Legacy", "Score", "Train"]

    browser.type_filter.value = "Score"
    assert visible_names(browser) == scenario.names_of_type("Score")
    assert browser.page_label.value == "page 1 of 1"
    assert header(browser).startswith("12 cached entries")

    browser.type_filter.value = "Train"
    assert browser.page_label.value == "page 1 of 2"
    assert names_on_every_page(browser) == scenario.names_of_type("Train")

    browser.type_filter.value = "(all types)"
    assert browser.page_label.value == "page 1 of 3"
    assert names_on_every_page(browser) == scenario.names_in_key_order


def test_filter_by_text_searches_parameters_case_insensitively(browser: CacheBrowser, scenario: Scenario) -> None:
    browser.search.value = "T05"
    assert visible_names(browser) == ["t05"]
    assert browser.page_label.value == "page 1 of 1"

    # Nested parameters match too: s02 is built on the model t02.
    browser.search.value = "t02"
    assert sorted(visible_names(browser)) == ["s02", "t02"]

    browser.type_filter.value = "Score"
    assert visible_names(browser) == ["s02"]

    browser.search.value = "no such entry"
    assert visible_names(browser) == []
    assert browser.page_label.value == "page 1 of 1"

    browser.search.value = ""
    browser.type_filter.value = "(all types)"
    assert visible_names(browser) == scenario.names_in_key_order[:5]


def test_filter_by_key_text(browser: CacheBrowser, scenario: Scenario) -> None:
    browser.search.value = scenario.key("l02")[-10:]

    assert visible_names(browser) == ["l02"]


def test_changing_a_filter_goes_back_to_the_first_page(browser: CacheBrowser) -> None:
    browser.next_button.click()
    browser.next_button.click()
    assert browser.page_label.value == "page 3 of 3"

    browser.search.value = "t0"
    assert browser.page_label.value == "page 1 of 2"
    assert len(visible_names(browser)) == 5


SORT_VALUES: dict[str, Any] = {
    "key": lambda spec: spec.key,
    "task_type": lambda spec: spec.type_name,
    "start": lambda spec: spec.hour,
    "duration": lambda spec: spec.duration,
    "size": lambda spec: spec.size,
    "code_version": lambda spec: spec.code_version,
    "stale": lambda spec: spec.stale,
    "parameters": lambda spec: spec.name,  # every entry's parameters start with its name
}


@pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
@pytest.mark.parametrize("column", list(SORT_VALUES))
def test_sort_by_each_column(browser: CacheBrowser, scenario: Scenario, column: str, descending: bool) -> None:
    in_key_order = sorted(scenario.specs.values(), key=lambda spec: spec.key)
    expected = [spec.name for spec in sorted(in_key_order, key=SORT_VALUES[column], reverse=descending)]

    browser.sort.value = column
    browser.sort_descending.value = descending

    assert (browser.sort_column, browser.descending) == (column, descending)
    assert browser.page_label.value == "page 1 of 3"
    assert names_on_every_page(browser) == expected


def test_sorting_applies_to_the_filtered_entries(browser: CacheBrowser, scenario: Scenario) -> None:
    browser.type_filter.value = "Train"
    browser.sort.value = "duration"
    browser.sort_descending.value = True

    trains = [spec for spec in scenario.specs.values() if spec.type_name == "Train"]
    assert names_on_every_page(browser) == [spec.name for spec in sorted(trains, key=lambda spec: -spec.duration)]


def test_sorting_by_an_unknown_column_is_refused(browser: CacheBrowser, scenario: Scenario) -> None:
    browser.sort_by("colour")

    assert "Cannot sort by 'colour'" in status(browser)
    assert visible_names(browser) == scenario.names_in_key_order[:5]


# --- selection -------------------------------------------------------------------------------------------


def test_selection_follows_keys_through_a_resort_and_page_changes(browser: CacheBrowser, scenario: Scenario) -> None:
    first, fourth = visible_names(browser)[0], visible_names(browser)[3]
    row_of(browser, first)[0].value = True
    row_of(browser, fourth)[0].value = True
    assert browser.selected == scenario.keys(first, fourth)
    assert "2 selected" in header(browser)

    browser.sort.value = "duration"
    browser.sort_descending.value = True
    checked: list[str] = []
    go_to_first_page(browser)
    for _page in range(3):
        for checkbox, cells, _show in visible_rows(browser):
            if checkbox.value:
                checked.append(row_name(cells))
        browser.next_button.click()
    assert sorted(checked) == sorted([first, fourth])

    # Select one more on page 2 of the new order, unselect one of the first two.
    go_to_first_page(browser)
    browser.next_button.click()
    third = next(name for name in visible_names(browser) if name not in (first, fourth))
    row_of(browser, third)[0].value = True
    assert browser.selected == scenario.keys(first, fourth, third)
    browser.sort.value = "key"
    browser.sort_descending.value = False
    go_to_first_page(browser)
    row_of(browser, first)[0].value = False
    assert browser.selected == scenario.keys(fourth, third)
    assert "2 selected" in header(browser)
    assert [checkbox.value for checkbox, *_ in visible_rows(browser)] == [
        name in (fourth, third) for name in visible_names(browser)
    ]


def test_selection_survives_filtering(browser: CacheBrowser, scenario: Scenario) -> None:
    row_of(browser, visible_names(browser)[0])[0].value = True
    selected = set(browser.selected)

    browser.search.value = "no such entry"
    browser.search.value = ""

    assert browser.selected == selected
    assert visible_rows(browser)[0][0].value is True


def test_select_all_matching_selects_exactly_the_filtered_entries_on_every_page(
    browser: CacheBrowser, scenario: Scenario
) -> None:
    browser.type_filter.value = "Train"
    browser.select_all_button.click()

    assert browser.selected == scenario.keys(*scenario.names_of_type("Train"))
    assert "7 selected" in header(browser)
    browser.next_button.click()
    assert browser.page_label.value == "page 2 of 2"
    assert all(checkbox.value for checkbox, *_ in visible_rows(browser))

    browser.type_filter.value = "(all types)"
    for _page in range(3):
        for checkbox, cells, _show in visible_rows(browser):
            assert checkbox.value is (scenario.specs[row_name(cells)].type_name == "Train")
        browser.next_button.click()

    browser.clear_button.click()
    assert browser.selected == set()
    browser.search.value = "t02"
    browser.select_all_button.click()
    assert browser.selected == scenario.keys("t02", "s02")


# --- details and loading ------------------------------------------------------------------------------------


def test_details_show_parameters_dependencies_and_metadata(browser: CacheBrowser, scenario: Scenario) -> None:
    browser.type_filter.value = "Score"
    row_of(browser, "s02")[2].click()

    details = text_of(browser.details.value)
    spec = scenario.specs["s02"]
    assert "Score" in details and spec.key in details
    assert "state: stale" in details
    assert "code_version: v1 (current: v2)" in details
    assert f"size: {format_size(spec.size)}" in details
    parameters = json.loads(details.split("parameters:", 1)[1].split("dependencies:", 1)[0])
    assert parameters["name"] == "s02"
    assert parameters["model"]["name"] == "t02" and parameters["model"]["lr"] == 0.1
    assert "dependencies:model: Train" in details
    metadata = json.loads(details.split("metadata:", 1)[1])
    assert metadata["cache"] == "PickleCache"
    assert metadata["cache_key"] == spec.key
    assert metadata["start_timestamp"] == (BASE_START + timedelta(hours=spec.hour)).isoformat()
    assert metadata["duration_seconds"] == spec.duration
    assert "task" not in metadata


def test_details_of_an_orphaned_entry_say_why(browser: CacheBrowser) -> None:
    browser.type_filter.value = "Legacy"
    row_of(browser, "l01")[2].click()

    details = text_of(browser.details.value)
    assert "state: orphaned" in details
    assert "browser_legacy_" in details  # the module that no longer imports
    assert "dependencies:" not in details


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    fake = SimpleNamespace(user_ns={})
    monkeypatch.setattr(browser_module, "_shell", lambda: fake)
    return fake


def test_load_result_binds_it_to_a_notebook_variable(browser: CacheBrowser, scenario: Scenario, shell: SimpleNamespace) -> None:
    browser.search.value = "t04"
    row_of(browser, "t04")[2].click()
    browser.bind_name.value = "model_t04"
    browser.load_button.click()

    assert shell.user_ns == {"model_t04": scenario.specs["t04"].result}
    assert browser.loaded_result == scenario.specs["t04"].result
    assert "It is now the variable model_t04" in status(browser)
    assert scenario.key("t04") in status(browser)


def test_load_result_of_a_stale_entry(browser: CacheBrowser, scenario: Scenario, shell: SimpleNamespace) -> None:
    browser.type_filter.value = "Score"
    row_of(browser, "s03")[2].click()
    browser.bind_name.value = "old_score"
    browser.load_button.click()

    assert shell.user_ns["old_score"] == scenario.specs["s03"].result


def test_load_result_of_an_orphaned_entry_reports_an_error(
    browser: CacheBrowser, scenario: Scenario, shell: SimpleNamespace
) -> None:
    browser.type_filter.value = "Legacy"
    row_of(browser, "l02")[2].click()
    browser.bind_name.value = "legacy"
    browser.load_button.click()

    assert shell.user_ns == {}
    assert browser.loaded_result is None
    assert f"Could not load the result of {scenario.key('l02')}" in status(browser)


def test_load_result_with_an_invalid_name_binds_nothing(
    browser: CacheBrowser, scenario: Scenario, shell: SimpleNamespace
) -> None:
    browser.search.value = "t01"
    row_of(browser, "t01")[2].click()
    browser.bind_name.value = "<img src=x>"
    browser.load_button.click()

    assert shell.user_ns == {}
    assert browser.loaded_result == scenario.specs["t01"].result
    assert "'<img src=x>' is not a valid Python name" in status(browser)
    assert "<img" not in browser.status.value


def test_load_result_without_details_asks_for_an_entry(browser: CacheBrowser, shell: SimpleNamespace) -> None:
    browser.load_button.click()

    assert "Click 'details' on an entry first" in status(browser)
    assert shell.user_ns == {}


# --- uncaching ----------------------------------------------------------------------------------------------


def test_uncache_selected_is_two_step_and_deletes_exactly_the_selection(browser: CacheBrowser, scenario: Scenario) -> None:
    before = listing(scenario.storage_dir)
    names = visible_names(browser)
    doomed = [names[1], names[4]]
    for name in doomed:
        row_of(browser, name)[0].value = True
    assert not is_shown(browser.confirm_button)

    browser.uncache_button.click()

    size = sum(scenario.specs[name].size for name in doomed)
    assert f"Delete 2 selected entries ({format_size(size)})?" in status(browser)
    assert is_shown(browser.confirm_button) and is_shown(browser.cancel_button)
    assert listing(scenario.storage_dir) == before

    browser.confirm_button.click()

    assert listing(scenario.storage_dir) == before - scenario.keys(*doomed)
    assert status(browser) == "Deleted 2 selected entries."
    assert not is_shown(browser.confirm_button) and not is_shown(browser.cancel_button)
    assert browser.selected == set()
    assert header(browser).startswith("10 cached entries")
    assert "0 selected" in header(browser)
    remaining = [name for name in scenario.names_in_key_order if name not in doomed]
    assert names_on_every_page(browser) == remaining


def test_cancel_deletes_nothing(browser: CacheBrowser, scenario: Scenario) -> None:
    before = listing(scenario.storage_dir)
    row_of(browser, visible_names(browser)[0])[0].value = True
    browser.uncache_button.click()
    assert is_shown(browser.confirm_button)

    browser.cancel_button.click()

    assert status(browser) == "Nothing deleted."
    assert not is_shown(browser.confirm_button)
    assert listing(scenario.storage_dir) == before
    browser.confirm_button.click()
    assert "Nothing to confirm" in status(browser)
    assert listing(scenario.storage_dir) == before
    assert len(browser.selected) == 1


def test_changing_the_selection_after_the_request_deletes_nothing(browser: CacheBrowser, scenario: Scenario) -> None:
    before = listing(scenario.storage_dir)
    names = visible_names(browser)
    row_of(browser, names[0])[0].value = True
    browser.uncache_button.click()
    assert "Delete 1 selected entry" in status(browser)

    row_of(browser, names[1])[0].value = True
    assert not is_shown(browser.confirm_button)
    browser.confirm_button.click()

    assert listing(scenario.storage_dir) == before


def test_uncache_selected_with_nothing_selected(browser: CacheBrowser, scenario: Scenario) -> None:
    before = listing(scenario.storage_dir)
    browser.uncache_button.click()

    assert status(browser) == "No selected entries to uncache."
    assert not is_shown(browser.confirm_button)
    assert listing(scenario.storage_dir) == before


def test_uncache_selected_across_pages_and_filters(browser: CacheBrowser, scenario: Scenario) -> None:
    before = listing(scenario.storage_dir)
    browser.type_filter.value = "Train"
    browser.select_all_button.click()
    browser.type_filter.value = "Score"  # what is selected, not what is shown, is uncached
    browser.uncache_button.click()
    assert "Delete 7 selected entries" in status(browser)

    browser.confirm_button.click()

    assert listing(scenario.storage_dir) == before - scenario.keys(*scenario.names_of_type("Train"))
    assert status(browser) == "Deleted 7 selected entries."
    assert header(browser).startswith("5 cached entries")


def test_the_type_filter_is_kept_when_uncaching_removes_another_type(browser: CacheBrowser, scenario: Scenario) -> None:
    browser.type_filter.value = "Score"
    browser.uncache_orphaned_button.click()  # every Legacy entry: the type disappears from the storage
    browser.confirm_button.click()

    assert list(browser.type_filter.options) == ["(all types)", "Score", "Train"]
    assert browser.type_filter.value == "Score"
    assert visible_names(browser) == scenario.names_of_type("Score")


@pytest.mark.parametrize(
    ("which", "type_name"),
    [("stale", "Score"), ("orphaned", "Legacy")],
)
def test_uncache_stale_and_orphaned_entries(browser: CacheBrowser, scenario: Scenario, which: str, type_name: str) -> None:
    before = listing(scenario.storage_dir)
    button = browser.uncache_stale_button if which == "stale" else browser.uncache_orphaned_button
    doomed = scenario.names_of_type(type_name)
    row_of(browser, scenario.names_in_key_order[0])[0].value = True  # an unrelated selection is left alone

    button.click()

    size = sum(scenario.specs[name].size for name in doomed)
    count = f"{len(doomed)} {which} entries"
    assert f"Delete {count} ({format_size(size)})?" in status(browser)
    assert listing(scenario.storage_dir) == before

    browser.confirm_button.click()

    assert listing(scenario.storage_dir) == before - scenario.keys(*doomed)
    assert status(browser) == f"Deleted {count}."
    assert browser.selected == scenario.keys(scenario.names_in_key_order[0]) - scenario.keys(*doomed)
    assert type_name not in browser.type_filter.options
    button.click()
    assert status(browser) == f"No {which} entries to uncache."
    assert not is_shown(browser.confirm_button)


def test_a_partial_failure_is_reported_entry_by_entry(scenario: Scenario) -> None:
    failing = scenario.key("t02")
    lab = labtech.Lab(storage=FailingDeleteStorage(scenario.storage_dir, failing=failing), notebook=False)
    browser = CacheBrowser(lab, page_size=10)
    before = listing(scenario.storage_dir)
    browser.type_filter.value = "Train"
    for name in ("t01", "t02", "t03"):
        row_of(browser, name)[0].value = True

    browser.uncache_button.click()
    browser.confirm_button.click()

    message = status(browser)
    assert "Deleted 2 of 3 selected entries." in message
    assert f"{failing}: PermissionError: cannot remove {failing}: read-only" in message
    assert scenario.key("t01") not in message and scenario.key("t03") not in message
    assert listing(scenario.storage_dir) == before - scenario.keys("t01", "t03")
    assert browser.selected == {failing}
    assert row_of(browser, "t02")[0].value is True


def test_after_uncaching_the_last_page_a_real_page_is_shown(browser: CacheBrowser, scenario: Scenario) -> None:
    browser.next_button.click()
    browser.next_button.click()
    last_page = visible_names(browser)
    assert browser.page_label.value == "page 3 of 3" and len(last_page) == 2
    for name in last_page:
        row_of(browser, name)[0].value = True

    browser.uncache_button.click()
    browser.confirm_button.click()

    assert browser.page_label.value == "page 2 of 2"
    assert visible_names(browser) == [name for name in scenario.names_in_key_order if name not in last_page][5:]


# --- a run using the storage ------------------------------------------------------------------------------


@pytest.fixture
def running(scenario: Scenario) -> Iterator[Any]:
    """A background run on the scenario's storage (through another Lab object), held until the test ends."""
    gate = threading.Event()
    run_lab = labtech.Lab(storage=scenario.storage_dir, runner_backend="thread", context={"gate": gate}, notebook=False)
    handle = run_lab.run_tasks_in_background([scenario.main.Waiter(n=1)])
    try:
        yield gate
    finally:
        gate.set()
        handle.wait(timeout=10)


def uncache_buttons(browser: CacheBrowser) -> list[widgets.Button]:
    return [browser.uncache_button, browser.uncache_stale_button, browser.uncache_orphaned_button, browser.confirm_button]


def test_while_a_run_uses_the_storage_uncaching_is_disabled_and_refused(scenario: Scenario, running: threading.Event) -> None:
    browser = CacheBrowser(scenario.lab, page_size=5)
    before = listing(scenario.storage_dir)

    assert all(button.disabled for button in uncache_buttons(browser))
    row_of(browser, visible_names(browser)[0])[0].value = True
    browser.uncache_button.click()
    assert status(browser) == "A run is using this storage; uncache when it has finished."
    assert not is_shown(browser.confirm_button)
    assert browser.request_uncache("stale") == "A run is using this storage; uncache when it has finished."
    assert browser.request_uncache("orphaned") == "A run is using this storage; uncache when it has finished."
    browser.confirm_button.click()
    assert listing(scenario.storage_dir) == before

    running.set()
    _wait_until_free(scenario)
    browser.refresh_button.click()
    assert not any(button.disabled for button in uncache_buttons(browser))
    browser.uncache_stale_button.click()
    assert "Delete 3 stale entries" in status(browser)


def test_a_pending_uncache_is_refused_once_a_run_started(scenario: Scenario, browser: CacheBrowser) -> None:
    before = listing(scenario.storage_dir)
    browser.uncache_orphaned_button.click()
    assert "Delete 2 orphaned entries" in status(browser)

    gate = threading.Event()
    run_lab = labtech.Lab(storage=scenario.storage_dir, runner_backend="thread", context={"gate": gate}, notebook=False)
    handle = run_lab.run_tasks_in_background([scenario.main.Waiter(n=2)])
    try:
        browser.confirm_button.click()
        assert status(browser) == "A run is using this storage; uncache when it has finished."
        assert listing(scenario.storage_dir) == before
    finally:
        gate.set()
        handle.wait(timeout=10)


def _wait_until_free(scenario: Scenario) -> None:
    from labtech_nb.engine.run import storage_is_busy

    deadline = datetime.now() + timedelta(seconds=10)
    while storage_is_busy(scenario.lab.storage):
        assert datetime.now() < deadline, "the run did not end"
        threading.Event().wait(0.01)


# --- display --------------------------------------------------------------------------------------------


def test_mimebundle_has_the_widget_a_text_summary_and_an_html_table(browser: CacheBrowser, scenario: Scenario) -> None:
    bundle = browser._repr_mimebundle_()

    assert WIDGET_MIME in bundle
    assert bundle[WIDGET_MIME]["model_id"] == browser.root.model_id
    lines = bundle["text/plain"].splitlines()
    assert lines[0] == f"Cache browser: 12 entries in {scenario.lab.storage!r}"
    assert len(lines) == 1 + 5 + 1
    first_page = [scenario.specs[name] for name in scenario.names_in_key_order[:5]]
    for line, spec in zip(lines[1:6], first_page, strict=True):
        assert line.startswith(f"  {spec.type_name} | ")
        assert f'"name": "{spec.name}"' in line
        assert format_size(spec.size) in line
    assert lines[-1] == "  ... and 7 more"
    assert repr(browser) == bundle["text/plain"]

    page = bundle["text/html"]
    assert page.startswith("<p>12 cached entries</p><table>")
    assert "<th>task type</th>" in page and "<th>size</th>" in page
    assert page.count("<tr>") == 1 + 5
    positions = [page.index(f"&quot;name&quot;: &quot;{spec.name}&quot;") for spec in first_page]
    assert positions == sorted(positions)


def test_browse_cache_opens_a_browser_of_the_lab(scenario: Scenario) -> None:
    browser = scenario.lab.browse_cache()
    assert isinstance(browser, CacheBrowser)
    assert browser.page_label.value == "page 1 of 1"
    assert sorted(visible_names(browser)) == sorted(scenario.specs)

    trains_only = scenario.lab.browse_cache([scenario.main.Train])
    assert list(trains_only.type_filter.options) == ["(all types)", "Train"]
    assert visible_names(trains_only) == scenario.names_of_type("Train")
    assert header(trains_only).startswith("7 cached entries")


class CountingStorage(LocalStorage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened: list[str] = []

    def file_handle(self, key: str, filename: str, *, mode: str = "r") -> Any:
        self.opened.append(filename)
        return super().file_handle(key, filename, mode=mode)


def test_a_large_storage_opens_reading_only_the_first_page(tmp_path: Path) -> None:
    storage_dir = tmp_path / "bulk"
    storage_dir.mkdir()
    for index in range(2000):
        key = f"pickle__Bulk__{index:040x}"
        (storage_dir / key).mkdir()
        metadata = {"cache": "PickleCache", "task": {"_is_task": True, "__class__": "no_such_module_bulk.Bulk", "i": index}}
        (storage_dir / key / "metadata.json").write_text(json.dumps(metadata))
    storage = CountingStorage(storage_dir)
    lab = labtech.Lab(storage=storage, notebook=False)

    browser = CacheBrowser(lab)
    browser._repr_mimebundle_()

    assert header(browser).startswith("2000 cached entries")
    assert browser.page_label.value == "page 1 of 40"
    assert len(visible_rows(browser)) == 50
    assert storage.opened == ["metadata.json"] * 50
    browser.next_button.click()
    assert browser.page_label.value == "page 2 of 40"
    assert len(storage.opened) == 100


# --- HTML-hostile values ------------------------------------------------------------------------------------


def test_html_hostile_parameters_are_escaped_everywhere(scenario: Scenario) -> None:
    hostile = '<script>alert("x")</script>'
    quoted = "\"quoted\" & 'single'"
    for name in (hostile, quoted):
        scenario.save(scenario.main.Train(name=name), "value", BASE_START, 1.0)
    browser = CacheBrowser(scenario.lab, page_size=5)

    browser.search.value = "alert"
    (_checkbox, cells, show) = visible_rows(browser)[0]
    assert "<script" not in cells.value
    assert "&lt;script&gt;alert(\\&quot;x\\&quot;)&lt;/script&gt;" in cells.value
    show.click()
    assert "<script" not in browser.details.value
    assert "&lt;script&gt;" in browser.details.value

    browser.search.value = "single"
    (_checkbox, cells, show) = visible_rows(browser)[0]
    assert "'single'" not in cells.value and "&#x27;single&#x27;" in cells.value
    assert "&amp;" in cells.value
    show.click()
    assert "'single'" not in browser.details.value

    page = CacheBrowser(scenario.lab, page_size=50)._repr_mimebundle_()["text/html"]
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "'single'" not in page and "&#x27;single&#x27;" in page
