"""The benchmark suite runs end to end (smoke sizes) on both libraries and reports every scenario.

This runs ``benchmarks/run.py --smoke`` as a subprocess. It may create ``.venv-labtech`` (labtech
1.1.0 and scikit-learn from PyPI) at the repository root the first time; later runs reuse it.
Timings are recorded but never asserted: only that every scenario produced numbers for both
libraries and a ratio, except where labtech lacks the feature (the cache browser, the dashboard):
there labtech_nb alone reports, and the table shows "—" for labtech.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = {"trivial", "fanout", "listing", "big_results", "load", "tutorial", "dashboard", "floor"}
#: Metrics only labtech_nb reports, because labtech has no such feature.
LABTECH_NB_ONLY = {
    ("listing", "browser_first_page_s"),
    ("dashboard", "no_view_s"),
    ("dashboard", "dashboard_s"),
    ("dashboard", "dashboard_overhead_pct"),
    ("dashboard", "dashboard_observer_pct"),
    ("dashboard", "frontend_messages"),
}


@pytest.mark.timeout(900)  # creating .venv-labtech can take a few minutes; the smoke run itself ~1 min
def test_benchmark_smoke_run_reports_every_scenario_for_both_libraries(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--smoke", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert completed.returncode == 0, completed.stderr[-5000:]

    report = json.loads((tmp_path / "results.json").read_text())
    table = (tmp_path / "results.md").read_text()
    assert table.startswith("# labtech_nb vs labtech")
    # A labtech_nb-only row shows "—" for labtech and for the ratio, not "failed".
    (browser_row,) = [line for line in table.splitlines() if "browse_cache() to first page" in line]
    cells = [cell.strip() for cell in browser_row.strip("|").split("|")]
    assert cells[3] == "—" and cells[5] == "—" and cells[4] not in ("—", "failed"), browser_row
    assert report["config"]["smoke"] is True
    assert report["machine"]["library_versions"]["labtech"] == "1.1.0"
    assert set(report["scenarios"]) == SCENARIOS
    reported = {
        (name, metric)
        for name, scenario in report["scenarios"].items()
        for case in scenario["cases"].values()
        for metric in case["metrics"]
    }
    assert reported >= LABTECH_NB_ONLY, LABTECH_NB_ONLY - reported

    for name, scenario in report["scenarios"].items():
        assert scenario["cases"], name
        for case_name, case in scenario["cases"].items():
            assert case["metrics"], (name, case_name)
            for metric_name, metric in case["metrics"].items():
                where = (name, case_name, metric_name)
                only_labtech_nb = (name, metric_name) in LABTECH_NB_ONLY
                assert metric["not_measured"] == (["labtech"] if only_labtech_nb else []), where
                for library in ("labtech", "labtech_nb") if not only_labtech_nb else ("labtech_nb",):
                    summary = metric[library]
                    assert summary is not None, (*where, library)
                    assert len(summary["values"]) == 1, (*where, library)
                    # An overhead in per cent can come out below 0 when the machine is noisy.
                    lowest = -math.inf if metric["unit"] == "%" else 0
                    assert math.isfinite(summary["median"]) and summary["median"] >= lowest, (*where, library)
                if only_labtech_nb:
                    assert metric["labtech"] is None and metric["ratio"] is None, where
                else:
                    assert isinstance(metric["ratio"], float) and math.isfinite(metric["ratio"]), where
            # Each measurement succeeded (run.py checks it ran the intended library); the dashboard
            # scenario does not run on labtech at all.
            libraries = ("labtech_nb",) if name == "dashboard" else ("labtech", "labtech_nb")
            assert set(case["runs"]) == set(libraries), (name, case_name, set(case["runs"]))
            for library in libraries:
                (record,) = case["runs"][library]
                assert record["ok"], (name, case_name, library, record)
            # labtech_nb leaves no worker process behind once a scenario's main process has exited.
            (record,) = case["runs"]["labtech_nb"]
            assert not record.get("leftover_processes"), (name, case_name, record["leftover_processes"])
