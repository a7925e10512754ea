"""The benchmark suite runs end to end (smoke sizes) on both libraries and reports every scenario.

This runs ``benchmarks/run.py --smoke`` as a subprocess. It may create ``.venv-labtech`` (labtech
1.1.0 from PyPI) at the repository root the first time; later runs reuse it. Timings are recorded
but never asserted: only that every scenario produced numbers for both libraries and a ratio.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = {"trivial", "fanout", "listing", "big_results", "floor"}


@pytest.mark.timeout(900)  # creating .venv-labtech can take a few minutes; the smoke run itself ~30 s
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
    assert (tmp_path / "results.md").read_text().startswith("# labtech_nb vs labtech")
    assert report["config"]["smoke"] is True
    assert report["machine"]["library_versions"]["labtech"] == "1.1.0"
    assert set(report["scenarios"]) == SCENARIOS

    for name, scenario in report["scenarios"].items():
        assert scenario["cases"], name
        for case_name, case in scenario["cases"].items():
            assert case["metrics"], (name, case_name)
            for metric_name, metric in case["metrics"].items():
                where = (name, case_name, metric_name)
                for library in ("labtech", "labtech_nb"):
                    summary = metric[library]
                    assert summary is not None, (*where, library)
                    assert len(summary["values"]) == 1, (*where, library)
                    assert math.isfinite(summary["median"]) and summary["median"] >= 0, (*where, library)
                assert isinstance(metric["ratio"], float) and math.isfinite(metric["ratio"]), where
            # Each measurement succeeded (run.py checks it ran the intended library).
            for library in ("labtech", "labtech_nb"):
                (record,) = case["runs"][library]
                assert record["ok"], (name, case_name, library, record)
            # labtech_nb leaves no worker process behind once a scenario's main process has exited.
            (record,) = case["runs"]["labtech_nb"]
            assert not record.get("leftover_processes"), (name, case_name, record["leftover_processes"])
